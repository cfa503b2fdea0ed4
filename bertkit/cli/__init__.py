"""The command line: a thin layer that turns flags into a settings object and calls the library.

One small file per command registers it on the shared app (`bertkit/cli/app.py`); importing
them here, in `--help` order, is what makes the commands exist.
"""

from bertkit.cli.app import app, main
from bertkit.cli import finetune, pretrain, predict, evaluate, embed, export, serve  # noqa: E402,F401 -- registers the commands

__all__ = ["app", "main"]
