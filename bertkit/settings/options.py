"""The settings mechanism: declared fields -> CLI flags, config-file keys and library arguments.

A field declared with `opt()` carries its default, its help text and (through its name) its
flag: ``learning_rate`` is ``--learning-rate`` and the key ``learning_rate`` in a config file.
Values come, lowest priority first, from the defaults, a YAML/TOML ``--config`` file and the
command line (`build_settings`). Task options are small dataclasses declared the same way in
each task module; `with_options` adds their fields to a command's settings class.

This module imports nothing of bertkit but its error type, so any layer may declare options.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import field
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError

ALL_COMMANDS = ("finetune", "predict", "evaluate")


def opt(
    default: Any,
    help: str,
    *,
    short: str | None = None,
    argument: bool = False,
    choices: tuple | None = None,
    off: str | None = None,
    commands: tuple[str, ...] = ALL_COMMANDS,
    saved: bool = False,
    panel: str | None = None,
):
    """A settings field: its default and its help text (shown by ``--help``).

    `off` names the flag that turns a bool off (default ``--no-NAME``), e.g. ``--cased`` for ``--lowercase``.
    For task options: `commands` are the commands that take it; `saved` means predict and evaluate default to
    the value saved with the model (their flag defaults to None: "as in training").
    `panel` names the ``--help`` panel where it is not the one `bertkit/cli/panels.py` derives.
    """
    meta = {
        "help": help,
        "short": short,
        "argument": argument,
        "choices": choices,
        "off": off,
        "commands": commands,
        "saved": saved,
        "panel": panel,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def flag(name: str) -> str:
    """The command-line flag of a settings field."""
    return "--" + name.replace("_", "-")


def with_options(base: type, command: str, option_types: Iterable[type]) -> type:
    """`base` extended by the fields of `option_types` that `command` takes (each name once).

    Under predict/evaluate a `saved` option defaults to None, so the model's saved value fills it in.
    """
    known = {f.name for f in dataclasses.fields(base)}
    added: list[tuple[str, Any, Any]] = []
    for option_type in option_types:
        for f in dataclasses.fields(option_type):
            if f.name in known or command not in f.metadata.get("commands", ALL_COMMANDS):
                continue
            known.add(f.name)
            inherit = f.metadata["saved"] and command != "finetune"
            kind = f.type if not inherit or str(f.type).startswith("Optional") else f"Optional[{f.type}]"
            default = None if inherit else f.default
            added.append((f.name, kind, field(default=default, metadata=f.metadata)))
    return dataclasses.make_dataclass(
        base.__name__, added, bases=(base,), namespace={"__doc__": base.__doc__, "__module__": base.__module__}
    )


def options_from(option_type: type, values: Any) -> Any:
    """An options dataclass from the same-named fields of a settings object; unset (None) fields take the
    option's own default (e.g. predict's --stride left to a model saved before the option existed)."""
    chosen = {}
    for f in dataclasses.fields(option_type):
        value = getattr(values, f.name, None)
        if value is not None:
            chosen[f.name] = value
    return option_type(**chosen)


def validate_choices(settings: Any) -> None:
    """Options with a fixed set of values (their `choices`) hold one of them."""
    for f in dataclasses.fields(settings):
        choices = f.metadata.get("choices")
        value = getattr(settings, f.name)
        if choices and value is not None and value not in choices:  # None: left to the model or the task
            raise BertkitError(f"{flag(f.name)} is '{value}'; choose one of: {', '.join(choices)}")


def parse_duration(text: str) -> float:
    """'90' or '90s', '30m', '2h', '1h30m', '1.5h' -> seconds."""
    cleaned = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        return float(cleaned)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise BertkitError(f"--time-budget is '{text}'; give a duration such as 90s, 30m, 2h or 1h30m")
    return sum(float(number) * {"h": 3600, "m": 60, "s": 1}[unit] for number, unit in parts)


def load_config(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML settings file into a dict of field names (dashes allowed) to values."""
    if not path.is_file():
        raise BertkitError(f"{path}: config file not found; check the path given to --config")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # the parsers' own messages name the line
        raise BertkitError(
            f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {str(exc).splitlines()[0]}"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BertkitError(f"{path}: a config file must hold a mapping of setting names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def build_settings(
    cls: type, config_values: dict[str, Any], cli_values: dict[str, Any], config_path: Path | None = None
):
    """Defaults, then the config file, then the flags given on the command line."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in config_values.items():
        if key not in known:
            raise BertkitError(
                f"{config_path}: unknown setting '{key}'; see --help for the names (dashes or underscores)"
            )
        values[key] = coerce(known[key], value, config_path)
    values.update(cli_values)
    return cls(**values)


def coerce(f: dataclasses.Field, value: Any, source: Path | None) -> Any:
    """Turn a config-file value into the field's type, with a clear error."""
    kind = field_type(f)
    if value is None:
        return None
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            raise ValueError
        if kind is Path:
            return Path(value)
        if kind is list:
            return [str(v) for v in (value if isinstance(value, list) else [value])]
        if kind is tuple:
            types = tuple_types(f)
            if not isinstance(value, (list, tuple)) or len(value) != len(types):
                raise ValueError
            return tuple(t(v) for t, v in zip(types, value))
        return kind(value)
    except (TypeError, ValueError):
        wanted = f"list of {len(tuple_types(f))} values" if kind is tuple else kind.__name__
        raise BertkitError(f"{source}: setting '{f.name}' is {value!r}; it should be a {wanted}") from None


PLAIN_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}


def field_type(f: dataclasses.Field) -> type:
    """The plain type of a field (Optional[X] -> X; list[...] -> list; tuple[...] -> tuple)."""
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    text = text.replace("Optional[", "").rstrip("]")
    if text.startswith("list"):
        return list
    if text.startswith("tuple"):
        return tuple
    return PLAIN_TYPES[text]


def tuple_types(f: dataclasses.Field) -> tuple[type, ...]:
    """The element types of a tuple field: Optional[tuple[int, Path]] -> (int, Path)."""
    text = f.type if isinstance(f.type, str) else str(f.type)
    inner = text.split("tuple[", 1)[1].split("]", 1)[0]
    return tuple(PLAIN_TYPES[name.strip()] for name in inner.split(","))


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """JSON-ready settings (paths as strings), leaving out the per-invocation switches."""
    skip = {"config", "debug", "overwrite", "resume"}
    out = {}
    for f in dataclasses.fields(settings):
        if f.name in skip:
            continue
        value = getattr(settings, f.name)
        if isinstance(value, (list, tuple)):
            out[f.name] = [v if isinstance(v, (int, float)) else str(v) for v in value]
        else:
            out[f.name] = str(value) if isinstance(value, Path) else value
    return out


def save_settings(settings: Any, path: Path) -> None:
    """Write the resolved settings as YAML, loadable again with --config."""
    import yaml

    command = " ".join(["bertkit", *sys.argv[1:]]) if sys.argv else ""
    header = (
        f"# Resolved settings of this run; repeat it with: bertkit <command> --config {path.name}\n"
        f"# Command line: {command}\n"
    )
    path.write_text(header + yaml.safe_dump(settings_to_dict(settings), sort_keys=False), encoding="utf-8")


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
