"""Typed settings of every command: the mechanism (`options`) and the declarations (`commands`).

    from bertkit.settings import FinetuneSettings
    settings = FinetuneSettings(task="classification", model="runs/base/model", train=Path("train.tsv"), ...)

The declarations are loaded on first use: task modules declare their options with
`bertkit.settings.options.opt`, and the declarations gather every task's options, so importing
the mechanism must not import the declarations.
"""

from __future__ import annotations

from typing import Any

from bertkit.settings.options import (  # noqa: F401 -- the public names of the mechanism
    build_settings,
    dump_json,
    field_type,
    flag,
    load_config,
    opt,
    options_from,
    parse_duration,
    save_settings,
    settings_to_dict,
    tuple_types,
    validate_choices,
)

DECLARED = (
    "RunSettings",
    "TrainingSettings",
    "FinetuneSettings",
    "PredictSettings",
    "EvaluateSettings",
    "PretrainSettings",
    "EmbedSettings",
    "RECIPES",
)
DEPLOY = ("ExportSettings", "ServeSettings")
TUNE = ("TuneSettings",)
DISTILL = ("DistillSettings",)


def __getattr__(name: str) -> Any:  # PEP 562: `from bertkit.settings import FinetuneSettings` loads the declarations
    if name in DECLARED:
        from bertkit.settings import commands

        return getattr(commands, name)
    if name in DEPLOY:
        from bertkit.settings import deploy

        return getattr(deploy, name)
    if name in TUNE:
        from bertkit.settings import tune

        return getattr(tune, name)
    if name in DISTILL:
        from bertkit.settings import distill

        return getattr(distill, name)
    raise AttributeError(f"module 'bertkit.settings' has no attribute '{name}'")
