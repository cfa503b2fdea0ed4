"""mkdocs hooks: the generated CLI reference must hold every command, or the build fails.

mkdocs-typer2 (its legacy engine, which reads Typer's own `typer MODULE utils docs`) runs the `typer`
script in a subprocess and, when that fails, leaves the page empty without a warning. So the scripts
folder of the interpreter running mkdocs goes first on PATH (`.venv/bin/mkdocs` finds `.venv/bin/typer`
without an activated environment), and a reference page that lacks a command stops the build.
The option types (`--lr <float>`) reach the page as raw tags, which a browser would hide: they are
escaped back into text.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import typer
from mkdocs.exceptions import PluginError

REFERENCE_PAGE = "reference/cli.md"
OPTION_TYPE = re.compile(r"(<code>[^<]*)<([A-Za-z][\w\[\], ]*)>([^<]*</code>)")  # <code>--lr <float></code>


def on_config(config):
    scripts = str(Path(sys.executable).parent)
    os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    return config


def on_page_content(html, page, config, files):
    if page.file.src_uri != REFERENCE_PAGE:
        return html
    from bertkit.cli import app

    html = OPTION_TYPE.sub(r"\1&lt;\2&gt;\3", html)
    missing = [name for name in typer.main.get_command(app).commands if f"bertkit {name}" not in html]
    if missing:
        raise PluginError(
            f"{REFERENCE_PAGE}: the generated reference lacks {', '.join(missing)}; "
            f"run `typer bertkit.cli utils docs` to see why it failed"
        )
    return html
