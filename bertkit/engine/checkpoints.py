"""Resumable checkpoints: written whole or not at all, found again by `--resume`.

A checkpoint is ``OUTPUT/checkpoints/step-NNNNNNNN/``: Accelerate's ``save_state`` files (model
weights as safetensors, optimizer, registered objects such as the scheduler, every process's
RNG states) plus ``trainer_state.json`` (step, epoch, batches of the epoch done, examples seen,
best metric, history). It is written as ``.tmp-step-NNNNNNNN``, synced, and renamed into place;
only a directory holding ``trainer_state.json`` counts as complete, and older checkpoints are
pruned only after a new one is complete.

Test hook: ``BERTKIT_TEST_SAVE_DELAY=SECONDS`` sleeps between writing the files and the rename,
so tests can kill a run in the middle of a checkpoint write. It has no other use.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from bertkit.atomic import publish_directory, writing
from bertkit.errors import BertkitError

STATE_FILE = "trainer_state.json"
PREFIX = "step-"


def checkpoint_root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints that finished writing (they hold the state file), oldest first."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file())


def save_checkpoint(accelerator, run_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Write a checkpoint of everything the accelerator tracks plus `state`; returns its directory.

    Every process takes part (each writes its own RNG state); only the main one renames and prunes.
    """
    root = checkpoint_root(run_dir)
    final = root / f"{PREFIX}{step:08d}"
    temporary = root / f".tmp-{final.name}"
    previous = complete_checkpoints(run_dir)
    kept = f"the previous checkpoint {previous[-1].name} is intact" if previous else "no checkpoint was written yet"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)  # left by a run killed while writing
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    with writing(temporary, f"checkpoint {final.name}", kept):
        accelerator.save_state(str(temporary), safe_serialization=True)
        accelerator.wait_for_everyone()  # every process's files are in before the directory is published
        if accelerator.is_main_process:
            (temporary / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
            _test_delay()
            publish_directory(temporary, final)
            for old in complete_checkpoints(run_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_newest_checkpoint(accelerator, run_dir: Path) -> tuple[Path, dict] | None:
    """Restore the newest complete checkpoint into the accelerator's objects; None when there is none."""
    checkpoints = complete_checkpoints(run_dir)
    if not checkpoints:
        return None
    newest = checkpoints[-1]
    try:
        state = json.loads((newest / STATE_FILE).read_text(encoding="utf-8"))
        accelerator.load_state(str(newest))
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise BertkitError(
            f"{newest}: cannot be resumed ({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
            "delete this checkpoint to resume from an older one, or start again with --overwrite"
        ) from None
    return newest, state


def _test_delay() -> None:
    delay = float(os.environ.get("BERTKIT_TEST_SAVE_DELAY", "0") or 0)
    if delay > 0:
        time.sleep(delay)
