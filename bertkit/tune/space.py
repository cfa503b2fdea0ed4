"""The search space of `bertkit tune`: the task's default, or a YAML file; every entry names a finetune setting.

    learning_rate: {low: 1.0e-5, high: 2.0e-4, log: true}   # a range (whole numbers when the setting is an int)
    batch_size: {choices: [16, 32]}                          # one of these values
    patience: 2                                              # the same value in every trial

A ``--space`` file replaces the default space; the space a study used is written to DIR/space.yaml.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError
from bertkit.settings.commands import FinetuneSettings, default_learning_rate
from bertkit.settings.options import coerce, field_type, flag

# Settings that say what a run is and where it goes, not how it trains: never searched.
NOT_SEARCHABLE = {"task", "model", "train", "eval", "output", "config", "debug", "overwrite", "resume", "time_budget"}
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Param:
    """One searched (or fixed) setting: a range low..high (log scale, step), a list of choices, or a value."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None
    value: Any = None  # a fixed value: no choice made

    def suggest(self, trial: Any) -> Any:
        """The trial's value: Optuna's sampler chooses it (ints for int settings)."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.low is None:
            return self.value
        if field_type(SETTINGS[self.name]) is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    @property
    def searched(self) -> bool:
        """A range or a list of choices (not one fixed value)."""
        return self.low is not None or self.choices is not None

    def contains(self, value: Any) -> bool:
        """Whether a trial of this entry can take `value` (a fixed entry is no choice: never)."""
        if self.choices is not None:
            return value in self.choices
        if self.low is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not self.low <= value <= self.high:
            return False
        steps = (value - self.low) / self.step if self.step else 0.0
        return math.isclose(steps, round(steps), abs_tol=1e-9)

    def as_yaml(self) -> Any:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        if self.low is None:
            return self.value
        entry = {"low": self.low, "high": self.high}
        if self.log:
            entry["log"] = True
        if self.step is not None:
            entry["step"] = self.step
        return entry


SETTINGS = {f.name: f for f in dataclasses.fields(FinetuneSettings)}


def default_space(task: Any, fixed: Any) -> dict[str, Param]:
    """What the fine-tuning literature says matters (Mosbach et al. 2021, Zhang et al. 2021), for `task`.

    A setting the user fixed (given a value other than finetune's default) is left out of the search.
    """
    space = [
        Param("learning_rate", low=1e-5, high=2e-4, log=True),
        Param("batch_size", choices=(16, 32)),
        Param("epochs", low=1, high=5, step=1),
        Param("warmup_ratio", low=0.0, high=0.2),
        Param("weight_decay", low=0.0, high=0.1),
        Param("layer_lr_decay", low=0.7, high=1.0),
        Param("reinit_layers", choices=(0, 1, 2)),
    ]
    if task.sequence_level:
        space.append(Param("pooling", choices=("cls", "mean")))
    # No micro-batches: under packed rows or step-sorted steps every count draws random steps and sums the same
    # token-weighted gradient over them (only speed differs), so a trial spent on the count learns nothing.
    # More epochs are cheap to offer when a trial stops once its evaluations stop improving.
    space.append(Param("patience", value=2))
    defaults = {name: f.default for name, f in FinetuneSettings.__dataclass_fields__.items()}
    defaults["learning_rate"] = default_learning_rate(fixed.model)  # resolved per model when --lr is not given
    return {p.name: p for p in space if getattr(fixed, p.name) == defaults[p.name]}


def untuned_values(space: dict[str, Param], settings: Any) -> dict[str, Any] | None:
    """The searched settings at the values the command alone trains with (finetune's defaults, or the user's own),
    or None when the space leaves that run out (a range that excludes the default learning rate, say)."""
    searched = {name: p for name, p in space.items() if p.searched}
    values = {name: getattr(settings, name) for name in searched}
    return values if all(searched[name].contains(value) for name, value in values.items()) else None


def load_space(path: Path) -> dict[str, Param]:
    """Read and check a space file; every mistake is one line naming the file and the entry."""
    from bertkit.settings.options import load_config

    space = {}
    for name, entry in load_config(path).items():
        space[name] = parse_entry(path, name, entry)
    if not any(p.searched for p in space.values()):
        raise BertkitError(f"{path}: nothing to search; give at least one entry with low/high or choices")
    return space


def parse_entry(path: Path, name: str, entry: Any) -> Param:
    if name not in SETTINGS or name in NOT_SEARCHABLE:
        raise BertkitError(
            f"{path}: '{name}' is not a finetune setting that can be searched; use the names of "
            "'bertkit finetune --help' (e.g. learning_rate, batch_size)"
        )
    f = SETTINGS[name]
    if not isinstance(entry, dict):
        return Param(name, value=coerce(f, entry, path))
    unknown = set(entry) - RANGE_KEYS - {"choices"}
    if unknown or ("choices" in entry and set(entry) & RANGE_KEYS):
        raise BertkitError(
            f"{path}: '{name}' has keys {sorted(entry)}; give either low, high (and optionally log, step) or choices"
        )
    if "choices" in entry:
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise BertkitError(f"{path}: '{name}': choices must be a non-empty list, e.g. choices: [16, 32]")
        values = tuple(coerce(f, choice, path) for choice in choices)
        allowed = f.metadata.get("choices")
        for value in values:
            if allowed and value not in allowed:
                raise BertkitError(f"{path}: '{name}' choice '{value}' is not one of: {', '.join(allowed)}")
        return Param(name, choices=values)
    return parse_range(path, name, f, entry)


def parse_range(path: Path, name: str, f: dataclasses.Field, entry: dict) -> Param:
    kind = field_type(f)
    if kind not in (int, float):
        raise BertkitError(f"{path}: '{name}' ({flag(name)}) is not a number; give it choices: [...] instead")
    if "low" not in entry or "high" not in entry:
        raise BertkitError(f"{path}: '{name}' needs both low and high (or choices)")
    try:
        low, high = float(entry["low"]), float(entry["high"])
        step = float(entry["step"]) if entry.get("step") is not None else None
    except (TypeError, ValueError):
        raise BertkitError(f"{path}: '{name}': low, high and step must be numbers") from None
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise BertkitError(f"{path}: '{name}': log must be true or false")
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise BertkitError(f"{path}: '{name}': low ({low:g}) must be below high ({high:g})")
    if log and (low <= 0 or step is not None):
        raise BertkitError(f"{path}: '{name}': a log range needs low above 0 and no step")
    if kind is int and (low != int(low) or high != int(high)):
        raise BertkitError(f"{path}: '{name}' is a whole number; give whole low and high")
    if step is not None and step <= 0:
        raise BertkitError(f"{path}: '{name}': step must be above 0")
    return Param(name, low=low, high=high, log=log, step=step)


def write_space(space: dict[str, Param], path: Path) -> None:
    import yaml

    header = "# The search space of this study; pass an edited copy to --space.\n"
    body = yaml.safe_dump({name: p.as_yaml() for name, p in space.items()}, sort_keys=False)
    path.write_text(header + body, encoding="utf-8")


def suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    """The trial's settings (searched and fixed) from the space."""
    return {name: p.suggest(trial) for name, p in space.items()}
