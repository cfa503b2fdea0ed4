"""The output directory of a run: refuse to clobber, allow resume, know how to resume."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from bertkit.atomic import recover_directories
from bertkit.errors import BertkitError

# The command line as the user typed it; the CLI sets it so that worker processes started by
# `--num-processes` (which inherit the environment) print the user's command, not their own.
ARGV_VARIABLE = "BERTKIT_ARGV"


def prepare_run_dir(output: Path, overwrite: bool, resume: bool) -> Path:
    """Create `output`; an existing non-empty one needs --overwrite (start again) or --resume (continue)."""
    if output.exists() and not output.is_dir():
        raise BertkitError(f"{output}: is a file; --output takes a directory")
    holds_run = output.is_dir() and any(output.iterdir())
    if resume:
        if not holds_run:
            raise BertkitError(f"{output}: no run to resume here; drop --resume to start a new run")
        recover_directories(output)
        return output
    if holds_run:
        if not overwrite:
            raise BertkitError(
                f"{output}: already holds a run; pass --resume to continue it, --overwrite to replace it, "
                "or choose another --output"
            )
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    return output


@contextlib.contextmanager
def remember_command(argv: list[str]) -> Iterator[None]:
    """Record the user's command line while it runs (launched workers keep their parent's)."""
    if "LOCAL_RANK" in os.environ:  # a worker: the environment holds the user's command already
        yield
        return
    os.environ[ARGV_VARIABLE] = json.dumps(argv)
    try:
        yield
    finally:
        os.environ.pop(ARGV_VARIABLE, None)


def resume_command() -> str:
    """The user's command with --resume instead of --overwrite: what to type to continue this run."""
    recorded = os.environ.get(ARGV_VARIABLE)
    argv = json.loads(recorded) if recorded else sys.argv[1:]
    kept = [arg for arg in argv if arg not in ("--overwrite", "--resume", "--no-resume")]
    return shlex.join(["bertkit", *kept, "--resume"])
