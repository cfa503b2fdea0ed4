"""Typed settings of every command: the mechanism (`options`) and the declarations (`commands`).

    from bertkit.settings import FinetuneSettings
    settings = FinetuneSettings(task="classification", model="runs/base/model", train=Path("train.tsv"), ...)

The declarations are loaded on first use: task modules declare their options with
`bertkit.settings.options.opt`, and the declarations gather every task's options, so importing
the mechanism must not import the declarations.
"""

from __future__ import annotations

import importlib
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

# Each command's settings class, by the module that declares it (imported on first use).
DECLARED_IN = {
    "RunSettings": "commands",
    "TrainingSettings": "commands",
    "FinetuneSettings": "commands",
    "PredictSettings": "commands",
    "EvaluateSettings": "commands",
    "PretrainSettings": "pretrain",
    "RECIPES": "pretrain",
    "EmbedSettings": "embed",
    "ExportSettings": "deploy",
    "ServeSettings": "deploy",
    "TuneSettings": "tune",
    "DistillSettings": "distill",
}


def __getattr__(name: str) -> Any:  # PEP 562: `from bertkit.settings import FinetuneSettings` loads the declarations
    if name in DECLARED_IN:
        module = importlib.import_module(f"bertkit.settings.{DECLARED_IN[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'bertkit.settings' has no attribute '{name}'")
