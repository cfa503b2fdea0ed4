"""The command line: a thin layer that turns flags into a settings object and calls the library.

One small file per command registers it on the shared app (`bertkit/cli/app.py`); importing
them here, in `--help` order, is what makes the commands exist.
"""

# The import order is the order of the commands in `bertkit --help`.
# isort: off
from bertkit.cli import pretrain, finetune, tune, distill, predict, evaluate, embed, export, serve  # noqa: F401

# isort: on
from bertkit.cli.app import app, main

__all__ = ["app", "main"]
