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


# What to do about an operating-system error, by errno: the cases a user meets when writing outputs.
_OS_HINTS = {
    "ENOENT": "a folder on that path does not exist; create it or choose another path",
    "ENOTDIR": "a part of that path is a file, not a folder; choose another path",
    "EISDIR": "it is a folder; give a file name",
    "EEXIST": "something is already there; choose another path",
    "EACCES": "no permission to write there; choose a folder you can write to",
    "EPERM": "no permission to write there; choose a folder you can write to",
    "EROFS": "the file system is read-only; choose a writable folder",
    "ENOSPC": "the disk is full; free some space or write elsewhere",
    "EDQUOT": "the disk quota is used up; free some space or write elsewhere",
    "ENAMETOOLONG": "the name is too long; choose a shorter path",
}


def os_error_message(error: OSError) -> str:
    """One line for an OSError: the path, what went wrong and what to do (e.g. a full disk, a file in the way)."""
    import errno
    import os

    name = errno.errorcode.get(error.errno or 0, "")
    reason = error.strerror or str(error) or type(error).__name__
    where = error.filename if error.filename is not None else "a file"
    if name == "EEXIST" and error.filename is not None and os.path.isfile(error.filename):
        name = "ENOTDIR"  # a folder was to be made where a file is
    hint = _OS_HINTS.get(name, "check the path and try again")
    return f"{where}: {reason}; {hint}"
