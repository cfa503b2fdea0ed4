"""Which `--help` panel each option is listed in, derived from where the option is declared.

A command's help lists first the options most runs need (`ESSENTIALS`, in the unnamed first panel),
then the panels of `PANEL_ORDER`, then one "Task: ..." panel per group of task options. An option's
panel is, in this order: its `opt(panel=...)`; the first panel when the command's run needs it; for a
task option, the tasks whose options dataclass declares it; the panel `GROUPS` gives for options
that share a settings class with others of another kind (multi-process, data, logging); else the panel
of the settings class that declares it (`BY_CLASS`, the most basic class declaring it). A new option
thus lands in its class's panel without any change here.
"""

from __future__ import annotations

import dataclasses

from bertkit.tasks import REGISTERED

# The options most runs need, shown first (arguments such as predict's INPUT are listed above them).
ESSENTIALS = {
    "finetune": ("task", "model", "train", "eval", "output", "config"),
    "pretrain": ("recipe", "output", "size", "model", "max_steps", "time_budget", "config"),
    "predict": ("model", "output", "config"),
    "evaluate": ("model", "output", "config"),
    "embed": ("model", "output", "similarity", "config"),
    "export": ("model", "output", "quantize", "config"),
    "serve": ("model", "host", "port", "config"),
    "tune": ("task", "model", "train", "eval", "output", "trials", "time_budget", "space", "config"),
}

SEARCH = "Search"
TRAINING = "Training"
DATA = "Data"
MODEL = "Model"
STRATEGY = "Model & strategy"
MASKED_LM = "Masked LM"
RUNTIME = "Runtime"
EMBEDDING = "Embedding"
EXPORT = "Export"
SERVING = "Serving"
OUTPUT = "Output & logging"
PROCESSES = "Multi-process"
SAFETY = "Safety"
PANEL_ORDER = (
    SEARCH,
    TRAINING,
    DATA,
    MODEL,
    STRATEGY,
    MASKED_LM,
    EMBEDDING,
    RUNTIME,
    EXPORT,
    SERVING,
    OUTPUT,
    PROCESSES,
    SAFETY,
)

# The panel of each settings class's own options (those of the most basic class declaring them).
BY_CLASS = {
    "RunSettings": SAFETY,  # --allow-pickle, --trust-remote-code
    "TrainingSettings": TRAINING,
    "FinetuneSettings": STRATEGY,
    "PretrainSettings": MODEL,
    "PredictSettings": RUNTIME,
    "EvaluateSettings": OUTPUT,
    "EmbedSettings": EMBEDDING,
    "ExportSettings": EXPORT,
    "ServeSettings": SERVING,
    "TuneSettings": SEARCH,
}

# Options declared beside options of another kind.
GROUPS = {
    PROCESSES: (
        "num_processes",
        "num_machines",
        "machine_rank",
        "main_process_ip",
        "main_process_port",
        "distributed_timeout",
    ),
    OUTPUT: (
        "overwrite",
        "resume",
        "log_every",
        "save_every",
        "keep_checkpoints",
        "report_to",
        "dump_instances",
        "log_level",
    ),
    DATA: (
        "max_length",
        "max_seq_length",
        "split",
        "train_split",
        "eval_split",
        "text_column",
        "cache_encoded",
        "num_workers",
        "validation",
        "validation_fraction",
        "short_seq_prob",
        "document_per_line",
        "document_per_file",
    ),
    MASKED_LM: ("nsp", "mlm_probability", "max_predictions", "whole_word_masking", "static_masks"),
    TRAINING: ("eval_instances", "token_weighted_loss", "micro_batches", "batch_sampler", "layer_lr_decay"),
    SAFETY: ("skip_nonfinite",),
}
BY_NAME = {name: panel for panel, names in GROUPS.items() for name in names}


def task_panels() -> dict[str, str]:
    """Each task option -> "Task: " and the tasks that take it (in registry order)."""
    tasks_of: dict[str, list[str]] = {}
    for task in REGISTERED:
        for f in dataclasses.fields(task.options_type):
            tasks_of.setdefault(f.name, []).append(task.name)
    return {name: "Task: " + ", ".join(tasks) for name, tasks in tasks_of.items()}


def declared_by(settings_cls: type, name: str) -> str:
    """The most basic class in `settings_cls`'s hierarchy that declares field `name`."""
    for cls in reversed(settings_cls.__mro__):
        if name in vars(cls).get("__annotations__", {}):
            return cls.__name__
    return settings_cls.__name__


def panel_of(command: str, settings_cls: type, f: dataclasses.Field, tasks: dict[str, str]) -> str | None:
    """The option's panel; None: the first panel (what most runs need)."""
    if f.metadata.get("panel"):
        return f.metadata["panel"]
    if f.name in ESSENTIALS.get(command, ()) or f.metadata.get("argument"):
        return None
    if f.name in tasks and command in ("finetune", "predict", "evaluate", "tune"):
        return tasks[f.name]
    if f.name in BY_NAME:
        return BY_NAME[f.name]
    return BY_CLASS.get(declared_by(settings_cls, f.name), OUTPUT)


def in_panels(
    command: str, settings_cls: type, fields: list[dataclasses.Field]
) -> list[tuple[dataclasses.Field, str | None]]:
    """`fields` with their panels, panel by panel: the first panel (in `ESSENTIALS` order), `PANEL_ORDER`, then
    the tasks'. Within a panel the options of the class it belongs to come first, then the others, each in
    `fields` order."""
    tasks = task_panels()
    essentials = ESSENTIALS.get(command, ())
    task_order = list(dict.fromkeys(tasks.values()))
    order = [None, *PANEL_ORDER, *task_order]

    def rank(placed: tuple[int, dataclasses.Field, str | None]) -> tuple[int, int, int]:
        position, f, panel = placed
        if panel is None:
            return 0, 0, essentials.index(f.name) if f.name in essentials else position
        home = BY_CLASS.get(declared_by(settings_cls, f.name)) == panel
        return 1 + (order.index(panel) if panel in order else len(order)), 0 if home else 1, position

    placed = [(i, f, panel_of(command, settings_cls, f, tasks)) for i, f in enumerate(fields)]
    return [(f, panel) for _, f, panel in sorted(placed, key=rank)]
