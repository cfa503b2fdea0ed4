"""Several processes with Accelerate (DDP over gloo on this CPU): `--num-processes 2` trains like one
process with the same global batch, evaluates every example exactly once (uneven last batch included),
and resumes after SIGTERM to bit-identical weights.

The model has dropout switched off, so one and two processes differ only in the order of floating-point
sums. The runs use the step-sorted sampler with 2 micro-batches: each process's share of a step is
cut from the same length-sorted micro-batches (the other orders shard alike). Each run is tiny: the
machine's two cores are shared.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import EXAMPLES, free_port
from helpers import assert_same_weights, run, start, wait_for

pytestmark = pytest.mark.slow

DEV_EXAMPLES = 100


@pytest.fixture(scope="module")
def no_dropout_model(tiny_model, tmp_path_factory) -> Path:
    import shutil

    target = tmp_path_factory.mktemp("no-dropout") / "model"
    shutil.copytree(tiny_model, target)
    config = json.loads((target / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (target / "config.json").write_text(json.dumps(config))
    return target


def args(model: Path, output: Path, batch_size: int, *extra: str) -> list[str]:
    # --eval-batch-size 7: 15 evaluation batches, so the two processes get 8 and 7 and the last holds 2.
    return [
        "finetune",
        "--model",
        str(model),
        "--train",
        str(EXAMPLES / "sentiment/train.tsv"),
        "--eval",
        str(EXAMPLES / "sentiment/dev.tsv"),
        "--output",
        str(output),
        "--epochs",
        "3",
        "--seed",
        "1",
        "--lr",
        "1e-3",
        "--max-length",
        "48",
        "--eval-batch-size",
        "7",
        "--save-every",
        "10",
        "--batch-size",
        str(batch_size),
        "--batch-sampler",
        "step-sorted",
        "--micro-batches",
        "2",
        *extra,
    ]


@pytest.fixture(scope="module")
def runs(no_dropout_model, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("processes")
    one = run(args(no_dropout_model, base / "one", 16))
    assert one.returncode == 0, one.stderr
    two = run(args(no_dropout_model, base / "two", 8, "--num-processes", "2", "--main-process-port", str(free_port())))
    assert two.returncode == 0, two.stderr
    return {"one": base / "one", "two": base / "two"}


def test_two_processes_match_one_process_with_the_same_global_batch(runs):
    one = json.loads((runs["one"] / "metrics.json").read_text())
    two = json.loads((runs["two"] / "metrics.json").read_text())
    assert one["steps"] == two["steps"] == 75  # 400 examples, global batch 16, 3 epochs
    assert one["accuracy"] >= 0.85 and abs(one["accuracy"] - two["accuracy"]) <= 0.02
    assert abs(one["macro_f1"] - two["macro_f1"]) <= 0.02
    from safetensors.torch import load_file

    a, b = (
        load_file(str(runs["one"] / "model/model.safetensors")),
        load_file(str(runs["two"] / "model/model.safetensors")),
    )
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-3


def test_evaluation_counts_every_example_exactly_once(runs):
    for name in ("one", "two"):
        metrics = json.loads((runs[name] / "metrics.json").read_text())
        for entry in metrics["history"]:
            assert entry["metrics"]["eval_examples"] == DEV_EXAMPLES
            assert entry["metrics"]["eval_outputs"] == DEV_EXAMPLES  # no duplicates from the uneven last batch


def test_two_process_run_resumes_after_sigterm_bit_identical(runs, no_dropout_model, tmp_path):
    output = tmp_path / "interrupted"
    command = args(no_dropout_model, output, 8, "--num-processes", "2", "--main-process-port", str(free_port()))
    process = start(command)
    wait_for(process, lambda: (output / "checkpoints/step-00000020/trainer_state.json").is_file(), "step 20")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "continue with: bertkit finetune" in stderr and "--resume" in stderr
    assert stderr.count("error:") == 1  # the second process stays quiet

    # a fresh port: the first one may still be held in TIME_WAIT
    resumed = run(
        [
            *args(no_dropout_model, output, 8, "--num-processes", "2", "--main-process-port", str(free_port())),
            "--resume",
        ]
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in resumed.stderr
    assert_same_weights(runs["two"] / "model/model.safetensors", output / "model/model.safetensors")


def test_two_processes_pack_their_shares_of_a_step_as_one_process_packs_it(no_dropout_model, tmp_path):
    """Tagging's packed rows: each process packs its half of the step; the token-weighted losses, averaged
    across processes, sum the gradient one process takes over the whole step."""
    from test_packing import mixed_lengths

    train = mixed_lengths(tmp_path / "mixed.conll")

    def tagging(output: Path, batch_size: int, *extra: str) -> Path:
        command = ["finetune", "--task", "tagging", "--model", str(no_dropout_model), "--train", str(train)]
        command += ["--output", str(output), "--epochs", "1", "--seed", "1", "--lr", "1e-3"]
        result = run([*command, "--batch-size", str(batch_size), *extra])
        assert result.returncode == 0, result.stderr
        assert "batch_sampler: packed" in (output / "settings.yaml").read_text()
        return output / "model/model.safetensors"

    one = tagging(tmp_path / "one", 16)
    two = tagging(tmp_path / "two", 8, "--num-processes", "2", "--main-process-port", str(free_port()))
    from safetensors.torch import load_file

    a, b = load_file(str(one)), load_file(str(two))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4  # 2e-6 measured
