"""The command line's machinery: the Typer app, options generated from settings, one-line errors.

Each command is a small file beside this one that registers itself with `settings_command`; its help
lists the options in panels (`bertkit/cli/panels.py`) and ends with its examples.
Each command's options are generated from its settings dataclass (``bertkit/settings/``),
so flags, config-file keys and the library's settings can never drift apart. User mistakes
(``BertkitError``, bad flags) end in one line on stderr and exit code 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from typer.exceptions import TyperException

from bertkit import __version__
from bertkit.cli.panels import in_panels
from bertkit.errors import BertkitError, os_error_message
from bertkit.launch import is_worker_but_not_main, launch, needs_launch
from bertkit.rundir import remember_command
from bertkit.settings import build_settings, field_type, flag, load_config, tuple_types

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    help="Pretrain BERT-style encoders and fine-tune them for classification, NLI, regression, multi-label, "
    "tagging and QA, offline.",
)


def fail(error: BertkitError, debug: bool) -> None:
    """Print a user error as one line, or re-raise it with its traceback under --debug.

    Under --num-processes only the main worker prints: the others hold the same message.
    """
    if debug:
        raise
    if not is_worker_but_not_main():
        typer.echo(f"error: {' '.join(str(error).split())}", err=True)
    raise typer.Exit(error.exit_code)


def settings_command(name: str, settings_cls: type, run: Callable[[Any], Any], doc: str) -> None:
    """Register command `name` whose options are the fields of `settings_cls`; it calls `run(settings)`.

    `doc` is the command's help; its fenced examples are moved to the end, after the options.
    """
    placed = in_panels(name, settings_cls, help_order(settings_cls))
    description, examples = split_examples(doc)

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        given = {
            key: value
            for key, value in kwargs.items()
            if getattr(ctx.get_parameter_source(key), "name", "") in ("COMMANDLINE", "ENVIRONMENT")
        }
        debug = bool(kwargs.get("debug"))
        try:
            config_path = kwargs.get("config")
            config_values = load_config(config_path) if config_path else {}
            settings = build_settings(settings_cls, config_values, given, config_path)
            settings.validate()
            if needs_launch(settings):
                raise typer.Exit(launch(name, settings))
            run(settings)
        except BertkitError as error:
            fail(error, debug)
        except OSError as error:  # a path that cannot be written (parent is a file, permissions, full disk, ...)
            fail(BertkitError(os_error_message(error)), debug)
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130) from None

    parameters = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    annotations: dict[str, Any] = {"ctx": typer.Context, "return": None}
    for f, panel in placed:
        annotation = cli_annotation(f)
        parameters.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=cli_parameter(f, panel), annotation=annotation
            )
        )
        annotations[f.name] = annotation
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    command.__doc__ = description
    command.__name__ = name
    app.command(name, no_args_is_help=True, epilog=examples)(command)


def split_examples(doc: str) -> tuple[str, str]:
    """(the help without its fenced example blocks, the blocks under "Examples"); every command has some."""
    parts = doc.split("```")
    blocks = parts[1::2]
    if not blocks:
        raise ValueError("a command's help needs examples in a ``` block")  # a bertkit bug, found at import
    description = "\n\n".join(part.strip() for part in parts[::2] if part.strip())
    return description, "**Examples**\n\n" + "\n".join(f"```{block.rstrip()}\n```" for block in blocks)


def help_order(settings_cls: type) -> list[dataclasses.Field]:
    """The command's own options first, then those it shares (training, then --config/--debug)."""
    by_name = {f.name: f for f in dataclasses.fields(settings_cls)}
    ordered: dict[str, dataclasses.Field] = {}
    for cls in settings_cls.__mro__:
        for name in getattr(cls, "__annotations__", {}):
            if name in by_name and name not in ordered:
                ordered[name] = by_name[name]
    return list(ordered.values())


def cli_annotation(f: dataclasses.Field) -> Any:
    kind = field_type(f)
    if kind is list:  # list[str] fields take plain strings (e.g. sentences), other lists paths
        return Optional[list[str]] if "str" in str(f.type) else Optional[list[Path]]
    if kind is tuple:  # an option taking several values: --dump-instances 20 out.jsonl
        return Optional[tuple[tuple_types(f)]]  # type: ignore[misc]
    if kind is bool:
        return Optional[bool] if f.default is None else bool  # None: left to a preset (pretrain --recipe)
    return Optional[kind] if f.default is None else kind


def cli_parameter(f: dataclasses.Field, panel: str | None = None) -> Any:
    meta = f.metadata
    default = f.default if f.default is not dataclasses.MISSING else None
    help_text = meta["help"]
    if meta.get("choices"):
        help_text += f" [choices: {', '.join(meta['choices'])}]"
    if meta.get("argument"):
        return typer.Argument(default, help=help_text, show_default=False, rich_help_panel=panel)
    names = [flag(f.name)]
    if meta.get("short"):
        names.append(meta["short"])
    if field_type(f) is bool:
        names = [f"{flag(f.name)}/{meta.get('off') or '--no-' + f.name.replace('_', '-')}"]
    shown = default not in (None, "", False)
    return typer.Option(default, *names, help=help_text, show_default=shown, rich_help_panel=panel)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"bertkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Pretrain BERT-style encoders and fine-tune them for classification, NLI, regression, multi-label, tagging
    and QA, offline."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `bertkit` script: bad flags also end in one line, not a usage box."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    try:
        with remember_command(args):
            code = command.main(args=args, prog_name="bertkit", standalone_mode=False)
    except TyperException as error:  # bad flags: typer's own usage errors
        context = getattr(error, "ctx", None)
        name = getattr(context, "info_name", None)
        hint = f"; see 'bertkit {name} --help'" if name and name != "bertkit" else "; see 'bertkit --help'"
        typer.echo(f"error: {' '.join(error.format_message().split())}{hint}", err=True)
        sys.exit(getattr(error, "exit_code", 2) or 2)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
