"""The one exception type users see: a mistake they can fix, said in one line."""


class BertkitError(Exception):
    """A user-facing error. The CLI prints its message on one line and exits with code 2.

    Messages name the file and the record (or the option) and say what to do, e.g.
    ``train.tsv line 17: label column 'label' is empty; fill it in or drop the line``.
    """

    exit_code = 2


class RunInterrupted(BertkitError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint; exit code 130 or 143 (128 + signal)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
