"""--report-to: TensorBoard events and a local MLflow file store under the run directory, read back."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES, free_port

from bertkit.errors import BertkitError
from bertkit.tracking import tracker_names

CORPUS = EXAMPLES / "corpus" / "stories.txt"


def events(directory) -> EventAccumulator:  # noqa: F821
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # The scalars are in the run's own folder; add_hparams writes the settings into a sub-folder beside them.
    assert list(directory.glob("events.out.tfevents.*")), f"no TensorBoard events in {directory}"
    accumulator = EventAccumulator(str(directory))
    accumulator.Reload()
    return accumulator


def log_lines(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tracked_run(tiny_model, tmp_path_factory):
    from typer.testing import CliRunner

    from bertkit.cli import app

    run = tmp_path_factory.mktemp("tracked") / "run"
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "--model",
            str(tiny_model),
            "--train",
            str(EXAMPLES / "sentiment/train.tsv"),
            "--eval",
            str(EXAMPLES / "sentiment/dev.tsv"),
            "--output",
            str(run),
            "--max-steps",
            "4",
            "--log-every",
            "1",
            "--eval-every",
            "2",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--report-to",
            "tensorboard,mlflow",
        ],
    )
    assert result.exit_code == 0, result.output
    return run


def test_tensorboard_has_every_logged_loss_and_metric(tracked_run):
    board = events(tracked_run / "tracking" / "finetune")
    losses = {event.step: event.value for event in board.Scalars("train/loss")}
    logged = {line["step"]: line["loss"] for line in log_lines(tracked_run) if "loss" in line}
    assert sorted(losses) == [1, 2, 3, 4] and set(losses) == set(logged)
    assert all(losses[step] == pytest.approx(logged[step], rel=1e-5) for step in logged)
    accuracy = {event.step: event.value for event in board.Scalars("eval/accuracy")}
    evaluated = {line["step"]: line["eval"]["accuracy"] for line in log_lines(tracked_run) if "eval" in line}
    assert accuracy.keys() == evaluated.keys() and 2 in accuracy
    assert all(accuracy[step] == pytest.approx(evaluated[step], rel=1e-5) for step in evaluated)
    assert "train/lr" in board.Tags()["scalars"]
    import yaml

    (saved,) = (tracked_run / "tracking" / "finetune").rglob("hparams.yml")  # Accelerate's copy of the hparams
    assert yaml.safe_load(saved.read_text())["task"] == "classification"


def test_mlflow_file_store_has_settings_and_metrics(tracked_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store only on request

    store = tracked_run / "tracking" / "mlruns"
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    experiment = client.get_experiment_by_name("finetune")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["task"] == "classification" and run.data.params["max_steps"] == "4"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    logged = {line["step"]: line["loss"] for line in log_lines(tracked_run) if "loss" in line}
    assert {m.step: m.value for m in history} == pytest.approx(logged)
    assert run.info.run_name == "run"


def test_pretrain_reports_to_tensorboard(tmp_path, cli):
    run = tmp_path / "pre"
    result = cli(
        "pretrain",
        CORPUS,
        "--output",
        run,
        "--layers",
        "1",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--intermediate",
        "64",
        "--vocab-size",
        "300",
        "--max-seq-length",
        "32",
        "--batch-size",
        "8",
        "--max-steps",
        "3",
        "--log-every",
        "1",
        "--eval-every",
        "3",
        "--report-to",
        "tensorboard",
    )
    assert result.exit_code == 0, result.output
    board = events(run / "tracking" / "pretrain")
    assert [event.step for event in board.Scalars("train/loss")] == [1, 2, 3]
    assert board.Scalars("eval/mlm_loss")[-1].value == pytest.approx(
        json.loads((run / "metrics.json").read_text())["mlm_loss"], rel=1e-5
    )


def test_no_tracking_by_default(tracked_run, tmp_path, tiny_model, cli):
    run = tmp_path / "plain"
    result = cli(
        "finetune",
        "--model",
        tiny_model,
        "--train",
        EXAMPLES / "sentiment/train.tsv",
        "--output",
        run,
        "--max-steps",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "32",
    )
    assert result.exit_code == 0, result.output
    assert not (run / "tracking").exists()


@pytest.mark.parametrize(
    "value,message",
    [
        ("wandb", r"--report-to names 'wandb'; choose from tensorboard, mlflow or none"),
        ("none,tensorboard", r"'none' cannot be combined"),
    ],
)
def test_bad_report_to_is_one_line(value, message):
    with pytest.raises(BertkitError, match=message):
        tracker_names(value)


def test_report_to_parses_lists():
    assert tracker_names("none") == [] and tracker_names(" TensorBoard , mlflow,tensorboard") == [
        "tensorboard",
        "mlflow",
    ]


def test_missing_tracker_package_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(
        BertkitError,
        match=r"--report-to mlflow: the mlflow package is not installed; pip install "
        r"'bertkit\[tracking\]'",
    ):
        tracker_names("mlflow")


@pytest.mark.slow
def test_two_processes_write_one_event_stream(tiny_model, tmp_path):
    """Under --num-processes 2 only the main process writes: one event file, each step logged once."""
    from helpers import run

    output = tmp_path / "two"
    done = run(
        [
            "finetune",
            "--model",
            str(tiny_model),
            "--train",
            str(EXAMPLES / "sentiment/train.tsv"),
            "--output",
            str(output),
            "--max-steps",
            "3",
            "--log-every",
            "1",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--num-processes",
            "2",
            "--main-process-port",
            str(free_port()),
            "--report-to",
            "tensorboard",
        ]
    )
    assert done.returncode == 0, done.stderr
    files = list((output / "tracking").rglob("events.out.tfevents.*"))
    assert len({name.name.split(".")[-2] for name in files}) == 1  # ...tfevents.TIME.HOST.PID.N: one process
    assert len(list((output / "tracking" / "finetune").glob("events.out.tfevents.*"))) == 1
    assert [event.step for event in events(output / "tracking" / "finetune").Scalars("train/loss")] == [1, 2, 3]
