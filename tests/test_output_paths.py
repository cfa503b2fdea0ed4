"""Every place bertkit creates or writes a path (run directories, predictions, metrics) ends an operating-system
failure in the one-line error: the path, what went wrong, what to do; exit code 2; no traceback.

One test per kind: a file where a folder should be, a name the file system refuses, no permission, a full disk.
(The tests run as root, where permissions do not bite, so permission and full-disk failures are injected.)"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import EXAMPLES, finetune_through_cli

DATA = EXAMPLES / "regression"


@pytest.fixture(scope="module")
def model_dir(word_model, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("paths") / "run"
    finetune_through_cli(
        output, "--task", "regression", "--model", word_model, "--train", DATA / "train.csv", "--max-steps", "2"
    )
    return output / "model"


def one_line(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]) and "Traceback" not in result.output, (
        result.stderr
    )  # the error is one line, the last one (evaluate prints its table before writing)
    for word in words:
        assert word in errors[0], errors[0]


def test_run_directory_under_a_file(word_model, cli, tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli(
        "finetune",
        "--task",
        "regression",
        "--model",
        word_model,
        "--train",
        DATA / "train.csv",
        "--output",
        tmp_path / "file" / "run",
        "--max-steps",
        "1",
    )
    one_line(result, str(tmp_path / "file" / "run"), "not a folder")


def test_predictions_under_a_file(model_dir, cli, tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli("predict", "--model", model_dir, DATA / "dev.csv", "--output", tmp_path / "file" / "p.jsonl")
    one_line(result, "file", "not a folder")


def test_predictions_name_too_long(model_dir, cli, tmp_path):
    result = cli("predict", "--model", model_dir, DATA / "dev.csv", "--output", tmp_path / ("p" * 300 + ".jsonl"))
    one_line(result, "too long")


def test_no_permission_for_the_run_directory(word_model, cli, tmp_path, monkeypatch):
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.name == "denied":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    result = cli(
        "finetune",
        "--task",
        "regression",
        "--model",
        word_model,
        "--train",
        DATA / "train.csv",
        "--output",
        tmp_path / "denied",
        "--max-steps",
        "1",
    )
    one_line(result, "denied", "no permission", "choose a folder you can write to")


def test_disk_full_while_writing_metrics(model_dir, cli, tmp_path, monkeypatch):
    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    result = cli("evaluate", "--model", model_dir, DATA / "dev.csv", "--output", tmp_path / "metrics.json")
    one_line(result, "metrics.json", "disk is full")
    assert not list(tmp_path.iterdir())  # no half-written file, no temporary left behind
