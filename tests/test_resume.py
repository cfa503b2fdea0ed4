"""Nothing lost: a fine-tuning run killed with SIGKILL at any moment and resumed with --resume ends
with bit-identical weights to a run that was never interrupted; SIGINT/SIGTERM save and say how to
resume; non-finite losses and full disks stop with one line and leave the last checkpoint intact.

Runs go through the real command line in subprocesses (`python -m bertkit`), so a kill is a real kill.
Pretraining inherits all of this from the engine; its cases join the table when it is merged.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from helpers import assert_same_weights, finetune_args, run, small_files, start, wait_for


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
