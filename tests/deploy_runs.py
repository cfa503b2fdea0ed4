"""Small fine-tuned models of every task (from examples/) for the export and serve tests."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import EXAMPLES

# task -> (training options, a predict input file, an evaluate file)
TASK_RUNS = {
    "classification": (
        ["--train", EXAMPLES / "sentiment" / "train.tsv", "--epochs", "2", "--lr", "2e-3"],
        EXAMPLES / "sentiment" / "inputs.txt",
        EXAMPLES / "sentiment" / "test.tsv",
    ),
    "nli": (
        ["--train", EXAMPLES / "nli" / "train.tsv", "--max-steps", "6"],
        EXAMPLES / "nli" / "dev.tsv",
        EXAMPLES / "nli" / "dev.tsv",
    ),
    "tagging": (
        ["--train", EXAMPLES / "tagging" / "train.conll", "--max-steps", "6"],
        EXAMPLES / "tagging" / "sentences.txt",
        EXAMPLES / "tagging" / "dev.conll",
    ),
    "qa": (
        ["--train", EXAMPLES / "qa" / "train.jsonl", "--max-steps", "6", "--max-length", "96", "--doc-stride", "32"],
        EXAMPLES / "qa" / "questions.jsonl",
        EXAMPLES / "qa" / "dev.json",
    ),
    "regression": (
        ["--train", EXAMPLES / "regression" / "train.csv", "--max-steps", "6"],
        EXAMPLES / "regression" / "dev.csv",
        EXAMPLES / "regression" / "dev.csv",
    ),
    "multilabel": (
        ["--train", EXAMPLES / "multilabel" / "train.csv", "--max-steps", "6"],
        EXAMPLES / "multilabel" / "dev.csv",
        EXAMPLES / "multilabel" / "dev.csv",
    ),
}


def invoke(*args) -> tuple[int, str]:
    """Run the real CLI in this process; returns (exit code, stdout + stderr)."""
    from typer.testing import CliRunner

    from bertkit.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def finetune(tiny_model: Path, output: Path, task: str, *extra) -> Path:
    code, text = invoke(
        "finetune",
        "--task",
        task,
        "--model",
        tiny_model,
        "--output",
        output,
        "--batch-size",
        "16",
        "--seed",
        "1",
        *TASK_RUNS[task][0],
        *extra,
    )
    assert code == 0, text
    return output / "model"


def export(model: Path, output: Path, *extra) -> Path:
    code, text = invoke("export", "--model", model, "--output", output, *extra)
    assert code == 0, text
    return output


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_same_records(got, expected, tolerance: float = 1e-4, where: str = "") -> None:
    """Equal records, floats (probabilities, scores) within `tolerance`."""
    if isinstance(expected, float):
        assert abs(got - expected) <= tolerance, f"{where}: {got} != {expected}"
    elif isinstance(expected, dict):
        assert set(got) == set(expected), where
        for key in expected:
            assert_same_records(got[key], expected[key], tolerance, f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for number, (a, b) in enumerate(zip(got, expected)):
            assert_same_records(a, b, tolerance, f"{where}[{number}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"
