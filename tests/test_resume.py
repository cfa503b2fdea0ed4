"""Nothing lost: a fine-tuning run killed with SIGKILL at any moment and resumed with --resume ends
with bit-identical weights to a run that was never interrupted; SIGINT/SIGTERM save and say how to
resume; non-finite losses and full disks stop with one line and leave the last checkpoint intact.

Runs go through the real command line in subprocesses (`python -m bertkit`), so a kill is a real kill.
Pretraining inherits all of this from the engine; its cases join the table when it is merged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT

SEED_ARGS = ["--seed", "3", "--lr", "2e-3", "--batch-size", "4", "--max-length", "32", "--log-every", "5"]


def small_files(tmp_path: Path) -> tuple[Path, Path]:
    """80 training and 24 evaluation examples of the project's sentiment data (runs stay tiny)."""
    lines = (EXAMPLES / "sentiment/train.tsv").read_text(encoding="utf-8").splitlines()
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text("\n".join(lines[:81]) + "\n", encoding="utf-8")
    dev.write_text("\n".join([lines[0], *lines[300:324]]) + "\n", encoding="utf-8")
    return train, dev


def finetune_args(model: Path, train: Path, dev: Path, output: Path, *extra: str) -> list[str]:
    # 20 batches per epoch and 30 steps: the run crosses an epoch boundary; checkpoints every 6 steps.
    return [
        "finetune",
        "--model",
        str(model),
        "--train",
        str(train),
        "--eval",
        str(dev),
        "--output",
        str(output),
        "--max-steps",
        "30",
        "--save-every",
        "6",
        "--eval-every",
        "10",
        "--keep-checkpoints",
        "2",
        *SEED_ARGS,
        *extra,
    ]


def start(args: list[str], **env: str) -> subprocess.Popen:
    # One thread: on a busy 2-core machine two threads per run spin against each other (50x slower).
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "bertkit", *args],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    process = start(args, **env)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def wait_for(process: subprocess.Popen, condition, what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = tensors(a), tensors(b)
    assert first.keys() == second.keys()
    different = [name for name in first if not (first[name] == second[name]).all()]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def final_checkpoint(run_dir: Path) -> Path:
    return sorted((run_dir / "checkpoints").glob("step-*"))[-1]


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    """The uninterrupted run everything is compared with."""
    base = tmp_path_factory.mktemp("resume")
    train, dev = small_files(base)
    output = base / "reference"
    result = run(finetune_args(tiny_model, train, dev, output))
    assert result.returncode == 0, result.stderr
    return {"model": tiny_model, "train": train, "dev": dev, "output": output}


def checkpoint_exists(run_dir: Path, step: int):
    return lambda: (run_dir / "checkpoints" / f"step-{step:08d}" / "trainer_state.json").is_file()


def writing_checkpoint(run_dir: Path, step: int):
    return lambda: (run_dir / "checkpoints" / f".tmp-step-{step:08d}" / "trainer_state.json").is_file()


def run_started(run_dir: Path):
    return lambda: (run_dir / "settings.yaml").is_file()  # written just before training begins


# (moment to kill at, extra environment): before the first checkpoint; in the middle of writing the
# step-18 one (the test hook holds the write open), so the run resumes mid-epoch from step 12; and
# right after the epoch-end checkpoint (step 20).
KILL_MOMENTS = {
    "before-any-checkpoint": (lambda d: run_started(d), {}),
    "during-checkpoint-write": (lambda d: writing_checkpoint(d, 18), {"BERTKIT_TEST_SAVE_DELAY": "2"}),
    "after-epoch-end": (lambda d: checkpoint_exists(d, 20), {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(KILL_MOMENTS))
def test_killed_and_resumed_run_ends_bit_identical(reference, tmp_path, moment):
    condition, env = KILL_MOMENTS[moment]
    output = tmp_path / "run"
    args = finetune_args(reference["model"], reference["train"], reference["dev"], output)
    process = start(args, **env)
    wait_for(process, condition(output), moment)
    process.send_signal(signal.SIGKILL)
    process.wait()

    resumed = run([*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    if moment != "before-any-checkpoint":
        assert "Resuming from" in resumed.stderr and "examples seen" in resumed.stderr
    assert_same_weights(reference["output"] / "model/model.safetensors", output / "model/model.safetensors")
    assert_same_weights(
        final_checkpoint(reference["output"]) / "model.safetensors", final_checkpoint(output) / "model.safetensors"
    )
    assert not list((output / "checkpoints").glob(".tmp-*")), "a half-written checkpoint was left behind"
    steps = [line for line in (output / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(steps) == 6  # one line per 5 steps: the killed run's lines after the checkpoint were rewound
