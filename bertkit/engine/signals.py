"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint, say how to resume.

The handler only records the request; the engine acts on it at the next optimizer-step
boundary, where the state is consistent. A second SIGINT means "now": the process exits at
once with code 130, leaving the last complete checkpoint (a half-written one is ignored by
``--resume`` and removed by the next save).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class StopRequests:
    """A context manager that turns SIGINT/SIGTERM into `requested` (the signal number, 0 if none)."""

    def __init__(self) -> None:
        self.requested = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for number in EXIT_CODES:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame) -> None:
        if self.requested and number == signal.SIGINT:
            sys.stderr.write(
                "error: interrupted twice; stopped without saving (the last complete checkpoint "
                "is kept; continue with --resume)\n"
            )
            sys.stderr.flush()
            os._exit(130)
        if not self.requested and os.environ.get("RANK", "0") == "0":  # one message, not one per process
            sys.stderr.write(
                f"\n{signal.Signals(number).name} received: saving a checkpoint after this step "
                "(press Ctrl-C again to stop at once)\n"
            )
            sys.stderr.flush()
        self.requested = number
