"""Files and directories that appear whole or not at all.

Everything bertkit leaves behind (checkpoints, ``model/``, predictions, metrics) is first
written under a temporary name, synced to disk, then renamed into place: a run killed at any
moment (kill -9, power loss) leaves either the previous complete version or the new one, never
a half-written file that looks complete. A full disk while writing removes the temporary copy,
keeps the previous version and says so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bertkit.errors import BertkitError

# Errors that mean "no room": a full disk or an exhausted quota.
NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def sync_directory(path: Path) -> None:
    """fsync every file and the directory itself, so a rename after it publishes complete data."""
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as stream:
                os.fsync(stream.fileno())
    sync_path(path)


def sync_path(path: Path) -> None:
    """fsync one directory entry (after a rename, sync the parent so the new name survives a crash)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish_directory(temporary: Path, target: Path) -> None:
    """Move a complete, synced `temporary` directory to `target`, replacing an older `target`.

    The old version is renamed aside first and removed only after the new one took its name,
    so at every instant one complete version exists under `target` or its `.old` name.
    """
    sync_directory(temporary)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    temporary.rename(target)
    sync_path(target.parent)
    if old.exists():
        shutil.rmtree(old)


def recover_directories(parent: Path) -> None:
    """Put back any `.NAME.old` whose new version never took its name (a kill inside publish_directory)."""
    for old in parent.glob(".*.old"):
        target = parent / old.name[1 : -len(".old")]
        if old.is_dir() and not target.exists():
            old.rename(target)


@contextlib.contextmanager
def writing(temporary: Path, what: str, kept: str) -> Iterator[None]:
    """Around the writing of `temporary`: on a full disk remove it and raise one line saying what survived.

    `what` names the thing being written ("checkpoint step-00000040"), `kept` what is still intact.
    """
    try:
        yield
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True) if temporary.is_dir() else remove_file(temporary)
        if error.errno in NO_SPACE:
            raise BertkitError(
                f"{temporary.parent}: disk full while writing {what}; {kept}; "
                "free some space, then continue with --resume"
            ) from None
        raise


def remove_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
