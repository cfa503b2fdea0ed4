"""Work that several training processes coordinate: data prepared once per machine, work done on the
main process only, and one process's error raised on all of them (so every process stops with it)."""

from __future__ import annotations

import pickle
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bertkit.errors import BertkitError, os_error_message

T = TypeVar("T")


def prepare_once(accelerator: Any, build: Callable[[], T]) -> T:
    """`build()` on the main process of each machine only; the other processes load its result.

    Reading and encoding a large corpus once (not N times) spares memory and time; the others
    wait under the process-group time-out (--distributed-timeout). A BertkitError raised by
    `build` is raised on every process, so all of them stop with the same message.
    """
    if accelerator.num_processes == 1:
        return build()
    from accelerate.utils import broadcast_object_list

    token = broadcast_object_list([uuid.uuid4().hex if accelerator.is_main_process else None])[0]
    node = accelerator.process_index - accelerator.local_process_index  # first process of this machine
    cache = Path(tempfile.gettempdir()) / f"bertkit-prepared-{token}-{node}.pkl"
    result, error = None, None
    if accelerator.is_local_main_process:
        try:
            result = build()
            with open(cache, "wb") as stream:  # written and read by this run only, then removed
                pickle.dump(result, stream, protocol=pickle.HIGHEST_PROTOCOL)
        except BertkitError as caught:
            error = str(caught)
        except OSError as caught:  # e.g. the run directory cannot be made: every process stops with it
            error = os_error_message(caught)
    share_error(accelerator, error)
    if not accelerator.is_local_main_process:
        with open(cache, "rb") as stream:
            result = pickle.load(stream)
    accelerator.wait_for_everyone()
    if accelerator.is_local_main_process:
        cache.unlink(missing_ok=True)
    return result


def on_main(accelerator: Any, work: Callable[[], T]) -> T | None:
    """`work()` on the main process only (creating the run directory, ...); its BertkitError stops all."""
    result, error = None, None
    if accelerator.is_main_process:
        try:
            result = work()
        except BertkitError as caught:
            error = str(caught)
        except OSError as caught:  # e.g. the run directory cannot be made: every process stops with it
            error = os_error_message(caught)
    share_error(accelerator, error)
    return result


def share_error(accelerator: Any, error: str | None) -> None:
    """Raise the first process's error message on every process (a collective: all must call it)."""
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        errors = [message for message in gather_object([error]) if message]
        error = errors[0] if errors else None
    if error:
        raise BertkitError(error)
