"""mkdocs hooks for the CLI reference page, which mkdocs-typer2 generates from the Typer app.

mkdocs-typer2 (its legacy engine, which reads Typer's own `typer MODULE utils docs`) runs the `typer`
script in a subprocess and, when that fails, leaves the page empty without a warning. So the scripts
folder of the interpreter running mkdocs goes first on PATH (`.venv/bin/mkdocs` finds `.venv/bin/typer`
without an activated environment), and a reference page that lacks a command stops the build.
Two things Typer's docs leave out are put back: the option types (`--lr <float>`), which reach the page
as raw tags a browser would hide, and each command's examples (the help's epilog), placed before its usage.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import markdown
import typer
from mkdocs.exceptions import PluginError

REFERENCE_PAGE = "reference/cli.md"
OPTION_TYPE = re.compile(r"(<code>[^<]*)<([A-Za-z][\w\[\], ]*)>([^<]*</code>)")  # <code>--lr <float></code>
USAGE = "<p><strong>Usage</strong>:</p>"


def on_config(config):
    scripts = str(Path(sys.executable).parent)
    os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")
    return config


def on_page_content(html, page, config, files):
    if page.file.src_uri != REFERENCE_PAGE:
        return html
    from bertkit.cli import app

    html = OPTION_TYPE.sub(r"\1&lt;\2&gt;\3", html)
    commands = typer.main.get_command(app).commands
    missing = [name for name in commands if f'<h2 id="bertkit-{name}">' not in html]
    if missing:
        raise PluginError(
            f"{REFERENCE_PAGE}: the generated reference lacks {', '.join(missing)}; "
            f"run `typer bertkit.cli utils docs` to see why it failed"
        )
    for name, command in commands.items():
        if command.epilog:
            usage = html.index(USAGE, html.index(f'<h2 id="bertkit-{name}">'))
            examples = markdown.markdown(command.epilog, extensions=["fenced_code"])
            html = html[:usage] + examples + "\n" + html[usage:]
    return html
