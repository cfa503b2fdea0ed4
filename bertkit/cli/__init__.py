"""The command line: a thin layer that turns flags into a settings object and calls the library.

One small file per command registers it on the shared app (`bertkit/cli/app.py`); importing
them here, in `--help` order, is what makes the commands exist.
"""

from bertkit.cli import distill, embed, evaluate, export, finetune, predict, pretrain, serve  # noqa: E402,F401 -- registers the commands
from bertkit.cli.app import app, main

__all__ = ["app", "main"]
