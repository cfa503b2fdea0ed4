"""The command line itself: help with examples, version, one-line errors for every kind of mistake."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import EXAMPLES

from bertkit import __version__


def run_main(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """`python -m bertkit ...` in a subprocess: the real entry point, as a user runs it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bertkit", *map(str, args)],
        capture_output=True,
        text=True,
        input=input,
        env=env,
        timeout=300,
    )


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"bertkit {__version__}"


COMMANDS = ["pretrain", "finetune", "predict", "evaluate", "embed", "export", "serve"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_ends_with_examples(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0
    after_the_options = result.stdout.rsplit("╰", 1)[1]
    assert "Examples" in after_the_options and f"bertkit {command} " in after_the_options
    assert "--model" in result.stdout


def test_finetune_help_groups_its_options_into_panels(cli):
    text = cli("finetune", "--help").stdout
    panels = ["Training", "Data", "Model & strategy", "Output & logging", "Multi-process", "Safety", "Task: qa"]
    starts = [text.index(f"╭─ {panel} ") for panel in panels]
    assert starts == sorted(starts)  # in this order, after the options most runs need
    for first in ("--task", "--model", "--train", "--eval", "--output", "--config"):
        assert text.index(first) < starts[0], first
    assert starts[0] < text.index("--learning-rate") < starts[1]  # Training
    assert starts[3] < text.index("--resume") < starts[4]  # Output & logging
    assert starts[4] < text.index("--num-processes") < starts[5]  # Multi-process
    assert starts[6] < text.index("--doc-stride")  # Task: qa
    assert text.index("╭─ Task: tagging ") < text.index("--tag-field") < starts[6]


def test_root_help_describes_pretrain_as_its_default_recipe_trains(cli):
    text = " ".join(cli("--help").stdout.split())
    assert "masked LM + next-sentence prediction" not in text and "with masked LM" in text


def test_bad_option_value_is_one_line_from_the_real_entry_point():
    result = run_main("finetune", "--batch-size", "many", "--model", "m")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--batch-size" in lines[0] and "Traceback" not in result.stderr


def test_unknown_option_is_one_line():
    result = run_main("predict", "--modle", "x", "in.txt")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--modle" in result.stderr


def test_hub_name_while_offline_says_to_pass_a_local_path(cli, tmp_path):
    result = cli(
        "finetune",
        "--model",
        "bert-base-uncased",
        "--train",
        EXAMPLES / "sentiment/train.tsv",
        "--output",
        tmp_path / "run",
    )
    assert result.exit_code == 2
    assert "bert-base-uncased" in result.stderr and "local model directory" in result.stderr
    assert not (tmp_path / "run").exists()


def test_directory_without_a_model_is_refused(cli, tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    result = cli("predict", "--model", empty, EXAMPLES / "sentiment/inputs.txt")
    assert result.exit_code == 2 and "no config.json" in result.stderr


def test_pretrained_model_without_bertkit_json_cannot_predict(cli, tiny_model):
    result = cli("predict", "--model", tiny_model, EXAMPLES / "sentiment/inputs.txt")
    assert result.exit_code == 2 and "bertkit.json" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = run_main("predict", "--model", tmp_path, "in.txt", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_bad_config_file_names_the_setting(cli, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: lots\n")
    result = cli("finetune", "--config", config, "--model", "m", "--train", "t.tsv", "--output", tmp_path / "o")
    assert result.exit_code == 2 and "epochs" in result.stderr and "run.yaml" in result.stderr
    config.write_text("learning_rat: 0.1\n")
    result = cli("finetune", "--config", config)
    assert result.exit_code == 2 and "unknown setting 'learning_rat'" in result.stderr


def test_every_option_lands_in_a_known_panel():
    from bertkit.cli.app import help_order
    from bertkit.cli.panels import ESSENTIALS, PANEL_ORDER, in_panels, task_panels
    from bertkit.settings import (
        EmbedSettings,
        EvaluateSettings,
        ExportSettings,
        FinetuneSettings,
        PredictSettings,
        PretrainSettings,
        ServeSettings,
    )

    classes = [PretrainSettings, FinetuneSettings, PredictSettings, EvaluateSettings, EmbedSettings]
    known = {None, *PANEL_ORDER, *task_panels().values()}
    for command, settings in zip(COMMANDS, [*classes, ExportSettings, ServeSettings]):
        placed = in_panels(command, settings, help_order(settings))
        assert {panel for _, panel in placed} <= known, command
        first = [f.name for f, panel in placed if panel is None and not f.metadata["argument"]]
        assert first == list(ESSENTIALS[command]), command  # the options most runs need, in that order
