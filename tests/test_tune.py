"""bertkit tune: a study leaves a best.yaml that finetune repeats, survives kill -9, shares its storage between
--jobs processes, and says what is wrong with a bad space file in one line; --layer-lr-decay's learning rates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from helpers import sentiment_data

# Every trial learns (the learning rate that the sentiment test uses, give or take): the study shows the best.
SPACE = "learning_rate: {low: 1.0e-3, high: 2.0e-3, log: true}\nlayer_lr_decay: {low: 0.8, high: 1.0}\nepochs: 4\n"
# For the tests of the study store: trials that need not learn, only take a moment.
QUICK_SPACE = "learning_rate: {low: 1.0e-4, high: 1.0e-3, log: true}\nepochs: 1\n"


def tune_args(model: Path, output: Path, space: Path, *extra: str) -> list[str]:
    return [
        "tune",
        *sentiment_data(model, output),
        "--space",
        str(space),
        "--batch-size",
        "16",
        "--seed",
        "1",
        *extra,
    ]


def open_study(output: Path):
    import optuna

    return optuna.load_study(study_name="bertkit-tune", storage=f"sqlite:///{output / 'study.db'}")


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(SPACE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def quick_space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "quick.yaml"
    path.write_text(QUICK_SPACE, encoding="utf-8")
    return path


def test_study_leaves_best_settings_that_finetune_repeats(tiny_model, space_file, tmp_path, cli):
    output = tmp_path / "search"
    result = cli(*tune_args(tiny_model, output, space_file, "--trials", "3", "--seeds", "1"))
    assert result.exit_code == 0, result.output
    for name in ("best.yaml", "trials.csv", "space.yaml", "history.png", "importances.png", "tune.json"):
        assert (output / name).is_file(), name
    summary = json.loads((output / "tune.json").read_text())
    assert summary["trials"] == {"complete": 3} and summary["metric"] == "accuracy"
    assert summary["best_value"] >= 0.8  # two balanced classes: chance is 0.5
    confirmation = json.loads((output / "confirmation.json").read_text())
    assert confirmation["seeds"] == [2] and confirmation["eval"]["tuned"]["runs"] == [
        confirmation["eval"]["tuned"]["mean"]
    ]
    assert confirmation["eval"]["tuned"]["mean"] >= 0.8 and confirmation["eval"]["default"]["sd"] == 0.0
    assert len((output / "trials.csv").read_text().splitlines()) == 4  # a header and a row per trial
    repeated = tmp_path / "repeated"
    again = cli("finetune", "--config", output / "best.yaml", "--output", repeated)
    assert again.exit_code == 0, again.output
    settings = (repeated / "settings.yaml").read_text()
    assert f"learning_rate: {summary['best_settings']['learning_rate']}" in settings
    assert json.loads((repeated / "metrics.json").read_text())["accuracy"] == summary["best_value"]


BAD_SPACES = {
    "learning_rate: {low: 1.0e-3}\n": "needs both low and high",
    "learning_rate: {low: 1.0e-3, high: 1.0e-4}\n": "must be below high",
    "lerning_rate: {low: 1.0e-5, high: 1.0e-4}\n": "'lerning_rate' is not a finetune setting",
    "pooling: {choices: [cls, max]}\n": "choice 'max' is not one of: cls, mean",
    "batch_size: {choices: [16, big]}\n": "it should be a int",
    "pooling: {low: 1, high: 2}\n": "is not a number",
    "learning_rate: {low: 0, high: 1.0e-4, log: true}\n": "a log range needs low above 0",
    "learning_rate: [1\n": "not valid YAML",
}


@pytest.mark.parametrize("text", BAD_SPACES)
def test_bad_space_file_is_one_line_naming_the_file(tiny_model, tmp_path, cli, text):
    space = tmp_path / "space.yaml"
    space.write_text(text, encoding="utf-8")
    result = cli(*tune_args(tiny_model, tmp_path / "search", space))
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.count("\n") == 0 and message.startswith(f"error: {space}") and BAD_SPACES[text] in message
    assert not (tmp_path / "search").exists()  # nothing written before the space is checked


def test_default_space_follows_the_task_and_leaves_fixed_settings_alone():
    from bertkit.settings import TuneSettings
    from bertkit.tasks import get_task
    from bertkit.tune.space import default_space

    classification = default_space(get_task("classification"), TuneSettings(task="classification"))
    assert "pooling" in classification and "micro_batches" not in classification
    assert classification["learning_rate"].log and classification["patience"].value == 2
    tagging = default_space(get_task("tagging"), TuneSettings(task="tagging", learning_rate=3e-5))
    assert "pooling" not in tagging and "learning_rate" not in tagging
    assert "micro_batches" not in tagging  # packed rows: the count changes speed, not the gradient


def test_crashed_trials_are_recorded_with_their_reason_and_the_study_goes_on(tiny_model, tmp_path, cli):
    from optuna.trial import TrialState

    space = tmp_path / "space.yaml"
    space.write_text("micro_batches: {choices: [3]}\n", encoding="utf-8")  # does not divide --batch-size 16
    output = tmp_path / "search"
    result = cli(*tune_args(tiny_model, output, space, "--trials", "2"))
    assert result.exit_code == 2 and "no trial completed" in result.output
    trials = open_study(output).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]  # the first crash did not end the study
    assert all("--micro-batches is 3" in t.user_attrs["fail_reason"] for t in trials)
    assert "--micro-batches is 3" in (output / "trials.csv").read_text()


def test_a_trial_is_never_pruned_at_its_first_evaluation(tmp_path):
    """Its first evaluation may fall inside its warm-up: a poor score there says little; a poor second one prunes."""
    from bertkit.settings import TuneSettings
    from bertkit.tune.study import make_study

    study = make_study(TuneSettings(task="classification", output=tmp_path, trials=5))
    for first, second in ((0.5, 0.6), (0.5, 0.7)):  # two finished trials give the median at each evaluation
        trial = study.ask()
        trial.report(first, 1)
        trial.report(second, 2)
        study.tell(trial, second)
    late_starter = study.ask()
    late_starter.report(0.0, 1)
    assert not late_starter.should_prune()
    late_starter.report(0.1, 2)
    assert late_starter.should_prune()


def test_layer_lr_decay_gives_each_layer_its_rate():
    from transformers import BertConfig, BertForSequenceClassification

    from bertkit.engine.setup import make_optimizer

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    model = BertForSequenceClassification(config)
    optimizer = make_optimizer(model, 1.0, 0.01, layer_lr_decay=0.5)
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    expected = {"classifier": 1.0, "pooler": 1.0, "layer.1.": 0.5, "layer.0.": 0.25, "embeddings": 0.125}
    for name, parameter in model.named_parameters():
        wanted = next(value for part, value in expected.items() if part in name)
        assert rate[id(parameter)] == pytest.approx(wanted), name
        assert decay[id(parameter)] == (0.0 if parameter.ndim < 2 or "LayerNorm" in name else 0.01), name
    assert optimizer.param_groups[0]["lr"] == 1.0  # the head first: the log shows the full rate
    plain = make_optimizer(model, 1.0, 0.01)
    assert len(plain.param_groups) == 2 and {g["lr"] for g in plain.param_groups} == {1.0}
    # The rates hold through the schedule: a LambdaLR scales each group's own rate.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5)
    assert sorted(set(scheduler.get_last_lr())) == [0.0625, 0.125, 0.25, 0.5]


# ---------------------------------------------------------------- the study store, across processes
def start(args: list[str]) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bertkit", *args],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]


@pytest.mark.slow
def test_kill_9_mid_study_then_rerun_keeps_finished_trials(tiny_model, quick_space, tmp_path):
    from optuna.trial import TrialState

    output = tmp_path / "search"
    args = tune_args(tiny_model, output, quick_space, "--trials", "3", "--seeds", "0")
    process = start(args)
    deadline = time.monotonic() + 180
    while not (output / "trials/0001/settings.yaml").is_file():  # trial 1 is under way
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "trial 1 never started"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = {t.number: t for t in open_study(output).trials}
    assert before[0].state == TrialState.COMPLETE and before[1].state == TrialState.RUNNING

    finish(start(args))
    after = {t.number: t for t in open_study(output).trials}
    assert after[0].datetime_complete == before[0].datetime_complete and after[0].value == before[0].value
    assert after[1].state == TrialState.FAIL and "interrupted" in after[1].user_attrs
    retry = [t for t in after.values() if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == before[1].params and retry[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in after.values()) == 3
    assert (output / "best.yaml").is_file()


@pytest.mark.slow
def test_jobs_share_one_storage_without_running_a_trial_twice(tiny_model, quick_space, tmp_path):
    from optuna.trial import TrialState

    output = tmp_path / "search"
    finish(start(tune_args(tiny_model, output, quick_space, "--trials", "4", "--jobs", "2", "--seeds", "0")))
    trials = open_study(output).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # Both workers may start a trial at the same moment as the count is reached: at most jobs - 1 more.
    assert 4 <= len(complete) <= 5 and len(complete) == len(trials)
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.params["learning_rate"] for t in trials}) == len(trials)  # no two workers drew alike
    runs = [t.user_attrs["run"] for t in trials]
    assert len(set(runs)) == len(runs)
    for t in trials:  # each run directory holds the run of its own trial, made once
        settings = (Path(t.user_attrs["run"]) / "settings.yaml").read_text()
        assert f"learning_rate: {t.params['learning_rate']}" in settings
        assert json.loads((Path(t.user_attrs["run"]) / "metrics.json").read_text())["accuracy"] == t.value


def test_a_new_study_tries_the_untuned_run_first(tiny_model, tmp_path, cli):
    from types import SimpleNamespace

    from bertkit.tune.space import Param, untuned_values

    space = tmp_path / "space.yaml"
    space.write_text(
        "learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}\nbatch_size: {choices: [8, 16]}\nepochs: 1\n"
    )
    output = tmp_path / "search"
    result = cli(*tune_args(tiny_model, output, space, "--trials", "2", "--seeds", "0"))
    assert result.exit_code == 0, result.output
    first, second = sorted(open_study(output).trials, key=lambda t: t.number)
    # finetune's default learning rate and the command's own --batch-size 16
    assert first.params == {"learning_rate": 5e-5, "batch_size": 16} and first.user_attrs["untuned"] is True
    assert second.params["learning_rate"] != 5e-5 and "untuned" not in second.user_attrs
    # a space that leaves the untuned run out gets no such trial
    narrow = {"learning_rate": Param("learning_rate", low=1e-4, high=1e-3, log=True)}
    assert untuned_values(narrow, SimpleNamespace(learning_rate=5e-5)) is None
