"""Two processes through the real command line, for the run shapes not covered by test_multiprocess.py:
pretraining (its run directory is made by the main process alone, then --overwrite and --resume), and the
regression and multi-label tasks (prepared once, evaluated on every example once, resumed).

Ports are found free at run time. Runs are tiny: the machine's two cores are shared."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES, free_port
from helpers import CORPUS, run

pytestmark = pytest.mark.slow  # several processes

TINY = [
    "--layers",
    "2",
    "--hidden",
    "64",
    "--heads",
    "2",
    "--intermediate",
    "128",
    "--max-seq-length",
    "64",
    "--batch-size",
    "8",
    "--validation-fraction",
    "0.05",
    "--seed",
    "3",
    "--save-every",
    "4",
]


def test_pretraining_with_two_processes_overwrites_and_resumes(tiny_model, tmp_path):
    output = tmp_path / "pretrain"
    base = [
        "pretrain",
        str(CORPUS),
        "--output",
        str(output),
        "--tokenizer",
        str(tiny_model),
        *TINY,
        "--num-processes",
        "2",
    ]
    first = run([*base, "--max-steps", "4", "--main-process-port", str(free_port())])
    assert first.returncode == 0, first.stderr
    again = run([*base, "--max-steps", "4", "--overwrite", "--main-process-port", str(free_port())])
    assert again.returncode == 0, again.stderr
    assert json.loads((output / "metrics.json").read_text())["steps"] == 4
    resumed = run([*base, "--max-steps", "8", "--resume", "--main-process-port", str(free_port())])
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["steps"] == 8 and "mlm_loss" in metrics
    # Each step draws one batch per process: the epochs count them all, as the engine's step log does.
    logged = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    last_epoch = [record["epoch"] for record in logged if "epoch" in record][-1]
    assert 0 < metrics["epochs"] == pytest.approx(last_epoch, abs=1e-3)
    assert (output / "model/config.json").is_file() and (output / "settings.yaml").is_file()


def test_new_tasks_with_two_processes_evaluate_every_example_once_and_resume(word_model, tmp_path):
    for task in ("regression", "multilabel"):
        data = EXAMPLES / task
        output = tmp_path / task
        base = [
            "finetune",
            "--task",
            task,
            "--model",
            str(word_model),
            "--train",
            str(data / "train.csv"),
            "--eval",
            str(data / "dev.csv"),
            "--output",
            str(output),
            "--batch-size",
            "8",
            "--save-every",
            "3",
            "--eval-every",
            "3",
            "--eval-batch-size",
            "7",
            "--num-processes",
            "2",
        ]
        first = run([*base, "--max-steps", "3", "--main-process-port", str(free_port())])
        assert first.returncode == 0, first.stderr
        resumed = run([*base, "--max-steps", "6", "--resume", "--main-process-port", str(free_port())])
        assert resumed.returncode == 0, resumed.stderr
        metrics = json.loads((output / "metrics.json").read_text())
        assert metrics["steps"] == 6 and [entry["step"] for entry in metrics["history"]] == [3, 6]
        for entry in metrics["history"]:
            assert entry["metrics"]["eval_examples"] == entry["metrics"]["eval_outputs"] == 100
