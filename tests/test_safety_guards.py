"""Guards that keep a run's work safe: signals save and say how to resume, a non-finite loss stops
with the step named, a full disk keeps the previous checkpoint, outputs appear whole or not at all."""

from __future__ import annotations

import errno
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import finetune_args, small_files, start, wait_for


@pytest.fixture(autouse=True)
def one_thread():
    """In-process runs on one thread: on a busy 2-core machine two threads spin against each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return small_files(tmp_path_factory.mktemp("guards"))


def long_run(model: Path, files, output: Path) -> list[str]:
    train, dev = files
    return [*finetune_args(model, train, dev, output), "--max-steps", "400"]


@pytest.mark.slow
@pytest.mark.parametrize("number, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_prints_the_resume_command(tiny_model, files, tmp_path, number, code):
    output = tmp_path / "run"
    process = start(long_run(tiny_model, files, output))
    wait_for(process, lambda: (output / "checkpoints/step-00000006/trainer_state.json").is_file(), "a checkpoint")
    process.send_signal(number)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: stopped by {signal.Signals(number).name} at step ")
    assert "continue with: bertkit finetune" in last and last.endswith("--resume") and "--overwrite" not in last
    step = int(last.split(" at step ")[1].split(";")[0])
    assert (output / f"checkpoints/step-{step:08d}/trainer_state.json").is_file()


@pytest.mark.slow
def test_second_sigint_exits_at_once_keeping_the_last_complete_checkpoint(tiny_model, files, tmp_path):
    output = tmp_path / "run"
    # The test hook holds every checkpoint write open for 60 s: the second Ctrl-C must not wait for it (the
    # bound below leaves a busy machine time to shut the process down, and stays far from the 60 s).
    # No periodic saves: the only write is the one the first Ctrl-C asks for, so its handler has run before the
    # second is sent (two SIGINTs that arrive during one C call run the Python handler once).
    process = start([*long_run(tiny_model, files, output), "--save-every", "0"], BERTKIT_TEST_SAVE_DELAY="60")
    wait_for(process, lambda: (output / "log.jsonl").is_file(), "training")
    process.send_signal(signal.SIGINT)
    wait_for(process, lambda: any((output / "checkpoints").glob(".tmp-step-*/trainer_state.json")), "the save")
    began = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 130
    assert time.monotonic() - began < 40
    assert "interrupted twice" in stderr
    assert not list((output / "checkpoints").glob("step-*"))  # the half-written one never took a final name


class Toy(torch.nn.Module):
    """loss = w * x: one example carries x = inf, so the step that meets it has an infinite loss."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, input_ids, attention_mask=None, labels=None):
        return SimpleNamespace(loss=(self.w * labels.float()).mean())


def toy_fit(tmp_path: Path, skip: int):
    """8 steps of 2 examples over 16, one of which has an infinite loss; returns the model and the FitResult."""
    from bertkit.engine import Engine
    from bertkit.engine.setup import EngineOptions

    options = EngineOptions(
        precision="fp32", max_steps=8, batch_size=2, skip_nonfinite=skip, learning_rate=0.1, weight_decay=0.0
    )
    features = [{"input_ids": [1, 2], "labels": 1.0, "index": i} for i in range(16)]
    features[5]["labels"] = float("inf")
    model = Toy()
    result = Engine(options).fit(model, features, run_dir=tmp_path)
    return model, result


def test_nonfinite_loss_stops_with_the_step_named(tmp_path):
    from bertkit.errors import BertkitError

    with pytest.raises(BertkitError, match=r"^step \d+: the loss is inf; .*--skip-nonfinite"):
        toy_fit(tmp_path, skip=0)


def test_skip_nonfinite_skips_that_step_and_trains_on_the_others(tmp_path):
    model, result = toy_fit(tmp_path, skip=1)
    assert result.state.step == 8 and result.state.nonfinite_skipped == 1
    # The other 7 steps trained: loss = w * 1 moves w down by the (linearly decaying) learning rate each
    # step (AdamW), to about 0.56; had every step been skipped it would still be 1.
    assert torch.isfinite(model.w).all() and model.w.item() < 0.75
    assert result.epochs == 1.0  # 8 batches of 2 over 16 examples


def test_full_disk_keeps_the_previous_checkpoint(tiny_model, files, cli, tmp_path, monkeypatch):
    from accelerate import Accelerator

    real_save, calls = Accelerator.save_state, []

    def save_until_full(self, directory, **kwargs):
        calls.append(directory)
        if len(calls) == 2:
            Path(directory).mkdir(parents=True, exist_ok=True)
            Path(directory, "partial.bin").write_bytes(b"x" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, directory, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", save_until_full)
    output = tmp_path / "run"
    result = cli(*finetune_args(tiny_model, *files, output))
    assert result.exit_code == 2
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert "disk full while writing checkpoint step-00000012" in result.stderr
    assert "the previous checkpoint step-00000006 is intact" in result.stderr
    assert [p.name for p in (output / "checkpoints").iterdir()] == ["step-00000006"]


def test_prediction_file_appears_whole_or_not_at_all(tmp_path):
    from bertkit.data.writers import write_records

    def records():
        yield {"text": "one", "label": "pos"}
        raise KeyboardInterrupt  # killed half-way

    target = tmp_path / "predictions.jsonl"
    with pytest.raises(KeyboardInterrupt):
        write_records(target, records())
    assert list(tmp_path.iterdir()) == []


def test_allow_pickle_loads_a_pickle_model_only_when_asked(tiny_model, cli, tmp_path):
    from helpers import fine_tuned
    from safetensors.torch import load_file

    model = fine_tuned(tiny_model, tmp_path / "model", "classification", ["neg", "pos"])
    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    inputs = tmp_path / "in.txt"
    inputs.write_text("a fine film\n")
    refused = cli("predict", "--model", model, inputs)
    assert refused.exit_code == 2 and "--allow-pickle" in refused.stderr
    allowed = cli("predict", "--model", model, inputs, "--allow-pickle")
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout.count('"label"') == 1


def test_publishing_a_directory_can_be_recovered_after_a_kill_between_renames(tmp_path):
    from bertkit.atomic import publish_directory, recover_directories

    (tmp_path / "model").mkdir()
    (tmp_path / "model/weights").write_text("old")
    (tmp_path / ".model.tmp").mkdir()
    (tmp_path / ".model.tmp/weights").write_text("new")
    publish_directory(tmp_path / ".model.tmp", tmp_path / "model")
    assert (tmp_path / "model/weights").read_text() == "new" and not (tmp_path / ".model.old").exists()
    (tmp_path / "model").rename(tmp_path / ".model.old")  # as if killed after the first rename
    recover_directories(tmp_path)
    assert (tmp_path / "model/weights").read_text() == "new"


@pytest.mark.parametrize(
    "change, message",
    [
        (("--batch-size", "8"), "made with 1 process(es) and --batch-size 4"),
        # the saved data position counts micro-batches, so their number is part of the layout too
        (("--micro-batches", "2"), "made with --micro-batches 1; resume with the same --micro-batches"),
    ],
    ids=["batch-size", "micro-batches"],
)
def test_resume_with_another_batch_layout_is_refused(tiny_model, files, cli, tmp_path, change, message):
    output = tmp_path / "run"
    first = cli(*finetune_args(tiny_model, *files, output), "--max-steps", "6")
    assert first.exit_code == 0, first.output
    again = cli(*finetune_args(tiny_model, *files, output), "--max-steps", "8", "--resume", *change)
    assert again.exit_code == 2
    assert message in again.stderr
