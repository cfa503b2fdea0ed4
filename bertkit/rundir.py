"""The output directory of a run: refuse to clobber, allow resume, know where each file goes."""

from __future__ import annotations

import shutil
from pathlib import Path

from bertkit.errors import BertkitError


def prepare_run_dir(output: Path, overwrite: bool, resume: bool) -> Path:
    """Create `output`; an existing non-empty one needs --overwrite (start again) or --resume (continue)."""
    if output.exists() and not output.is_dir():
        raise BertkitError(f"{output}: is a file; --output takes a directory")
    holds_run = output.is_dir() and any(output.iterdir())
    if resume:
        if not holds_run:
            raise BertkitError(f"{output}: no run to resume here; drop --resume to start a new run")
        return output
    if holds_run:
        if not overwrite:
            raise BertkitError(f"{output}: already holds a run; pass --resume to continue it, --overwrite to replace it, "
                               "or choose another --output")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)
    return output
