"""Typed settings for every command, in one place.

Each field carries its default, its help text and (through its name) its CLI flag:
``learning_rate`` is ``--learning-rate`` and the key ``learning_rate`` in a config file.
The CLI is generated from these dataclasses (see ``bertkit/cli.py``), so a new option is
one new field here. Values come, lowest priority first, from the defaults, a YAML/TOML
``--config`` file and command-line flags; ``validate()`` checks them once, raising
``BertkitError`` for anything a user must fix.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from bertkit.errors import BertkitError


def opt(default: Any, help: str, *, short: str | None = None, argument: bool = False, choices: tuple | None = None):
    """A settings field: its default and its help text (shown by ``--help``)."""
    meta = {"help": help, "short": short, "argument": argument, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunSettings:
    """What every command shares."""

    config: Optional[Path] = opt(None, "YAML or TOML file of settings; flags given on the command line override it.")
    debug: bool = opt(False, "Show the full traceback of errors.")


@dataclass
class TrainingSettings(RunSettings):
    """What the engine needs, shared by pretrain and finetune."""

    output: Optional[Path] = opt(None, "Output directory of the run (model/, metrics.json, log.jsonl, ...).", short="-o")
    overwrite: bool = opt(False, "Replace an existing run in --output.")
    resume: bool = opt(False, "Continue the run in --output from its newest complete checkpoint.")
    seed: int = opt(42, "Random seed; the same seed on one device gives the same run.")
    learning_rate: float = opt(5e-5, "Peak learning rate of AdamW.", short="--lr")
    batch_size: int = opt(32, "Examples per optimizer step on each process (before accumulation).")
    grad_accum: int = opt(1, "Gradient accumulation: batches per optimizer step.")
    epochs: float = opt(3.0, "Passes over the training data (ignored when --max-steps is set).")
    max_steps: int = opt(-1, "Stop after this many optimizer steps (-1: run --epochs).")
    warmup_ratio: float = opt(0.1, "Share of the steps over which the learning rate rises linearly from 0.")
    weight_decay: float = opt(0.01, "AdamW weight decay (not applied to biases and LayerNorm).")
    max_grad_norm: float = opt(1.0, "Clip gradients to this norm (0: no clipping).")
    eval_every: int = opt(0, "Evaluate every N steps (0: at the end of each epoch only).")
    save_every: int = opt(0, "Write a resumable checkpoint every N steps (0: at the end of each epoch only).")
    keep_checkpoints: int = opt(1, "How many checkpoints to keep; older ones are removed once a new one is complete.")
    patience: int = opt(0, "Early stopping: stop after N evaluations without improvement (0: never).")
    precision: str = opt("auto", "Arithmetic: auto (bf16 autocast on GPU, fp32 on CPU), fp32, bf16 or fp16.",
                         choices=("auto", "fp32", "bf16", "fp16"))
    log_every: int = opt(10, "Write a line to log.jsonl every N steps.")
    eval_batch_size: int = opt(64, "Examples per batch when evaluating.")
    skip_nonfinite: int = opt(0, "Tolerate this many steps with a NaN/inf loss (skipped) before stopping.")

    def validate(self) -> None:
        positive = {"batch_size": self.batch_size, "grad_accum": self.grad_accum, "eval_batch_size": self.eval_batch_size,
                    "log_every": self.log_every, "keep_checkpoints": self.keep_checkpoints}
        for name, value in positive.items():
            if value < 1:
                raise BertkitError(f"{flag(name)} is {value}; it must be at least 1")
        if self.learning_rate <= 0:
            raise BertkitError(f"--learning-rate is {self.learning_rate}; it must be above 0")
        if not 0 <= self.warmup_ratio < 1:
            raise BertkitError(f"--warmup-ratio is {self.warmup_ratio}; give a share from 0 up to (not including) 1")
        if self.epochs <= 0 and self.max_steps < 0:
            raise BertkitError(f"--epochs is {self.epochs}; give a positive number of epochs or --max-steps")
        for name in ("eval_every", "save_every", "patience", "skip_nonfinite", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise BertkitError(f"{flag(name)} is {getattr(self, name)}; it cannot be negative")
        if self.output is None:
            raise BertkitError("no output directory given; pass --output DIR")
        if self.resume and self.overwrite:
            raise BertkitError("--resume and --overwrite contradict each other; pass one of them")


@dataclass
class FinetuneSettings(TrainingSettings):
    """``bertkit finetune``: train a task head (and the encoder) on labelled data."""

    task: str = opt("classification", "What to learn: classification, nli, tagging or qa.", short="-t")
    model: str = opt("", "Model directory to start from (a pretrained or fine-tuned bertkit/Hugging Face model).", short="-m")
    train: Optional[Path] = opt(None, "Training file (csv, tsv, jsonl, json; conll/conllu for tagging; SQuAD json for qa).")
    eval: Optional[Path] = opt(None, "Evaluation file in the same format; picks the best checkpoint and early stopping.")
    text_column: Optional[str] = opt(None, "Column holding the text (default: detected, e.g. text, sentence, premise).")
    text_pair_column: Optional[str] = opt(None, "Column holding the second text of a pair (default: detected, e.g. hypothesis).")
    label_column: Optional[str] = opt(None, "Column holding the label (default: detected, e.g. label).")
    max_length: Optional[int] = opt(None, "Longest input in WordPieces; longer texts are truncated (and counted in "
                                          "the log). Default: the task's (128; qa: 384).")

    def validate(self) -> None:
        super().validate()
        from bertkit.tasks import task_names

        if self.task not in task_names():
            raise BertkitError(f"--task is '{self.task}'; choose one of: {', '.join(task_names())}")
        if not self.model:
            raise BertkitError("no starting model given; pass --model DIR (a local model directory)")
        if self.train is None:
            raise BertkitError("no training file given; pass --train FILE")
        if self.max_length is not None and self.max_length < 8:
            raise BertkitError(f"--max-length is {self.max_length}; it must be at least 8")
        validate_qa(self)

    # --- extractive QA ---
    doc_stride: int = opt(128, "QA: passage tokens shared by consecutive windows of a long passage.")
    max_query_length: int = opt(64, "QA: questions are cut to this many WordPieces.")
    n_best: int = opt(20, "QA: how many best start and end positions (and answers) the search keeps.")
    max_answer_length: int = opt(30, "QA: longest answer in WordPieces.")
    allow_no_answer: str = opt("auto", "QA (SQuAD v2.0): may the answer be 'no answer' ([CLS])? auto: yes when the "
                               "training file has unanswerable questions.", choices=("auto", "yes", "no"))
    null_threshold: float = opt(0.0, "QA v2.0: answer 'no answer' when its score beats the best span by more than this.")
    tune_null_threshold: bool = opt(False, "QA v2.0: pick the null threshold that maximises F1 on --eval and save it "
                                    "with the model (predict uses it).")
    skip_bad_examples: bool = opt(False, "QA: skip (and count) questions whose answer is not at its answer_start, "
                                  "instead of stopping with an error.")


@dataclass
class PredictSettings(RunSettings):
    """``bertkit predict``: run a fine-tuned model over a file."""

    input: Optional[Path] = opt(None, "Input file (txt one input per line, csv, tsv, jsonl, ...), or - for stdin.", argument=True)
    model: str = opt("", "Fine-tuned model directory (runs/NAME/model).", short="-m")
    output: Optional[Path] = opt(None, "Output file: .jsonl (default), .csv or .tsv; - for stdout.", short="-o")
    batch_size: int = opt(64, "Inputs per batch (batches are sorted by length internally).")
    text_column: Optional[str] = opt(None, "Column holding the text (default: detected).")
    text_pair_column: Optional[str] = opt(None, "Column holding the second text of a pair (default: detected).")
    max_length: int = opt(0, "Longest input in WordPieces (0: as in training).")
    precision: str = opt("auto", "Arithmetic: auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16.",
                         choices=("auto", "fp32", "bf16", "fp16"))

    def validate(self) -> None:
        if self.input is None:
            raise BertkitError("no input file given; pass the file to predict on (or - for stdin)")
        if not self.model:
            raise BertkitError("no model given; pass --model DIR (the model/ folder of a fine-tuning run)")
        if self.batch_size < 1:
            raise BertkitError(f"--batch-size is {self.batch_size}; it must be at least 1")
        if self.max_length < 0:
            raise BertkitError(f"--max-length is {self.max_length}; it cannot be negative")
        validate_qa(self)

    # --- extractive QA (unset: as saved with the model) ---
    doc_stride: Optional[int] = opt(None, "QA: passage tokens shared by consecutive windows (default: as in training).")
    max_query_length: Optional[int] = opt(None, "QA: questions are cut to this many WordPieces (default: as in training).")
    n_best: Optional[int] = opt(None, "QA: how many best answers the search keeps (default: as in training).")
    max_answer_length: Optional[int] = opt(None, "QA: longest answer in WordPieces (default: as in training).")
    allow_no_answer: Optional[str] = opt(None, "QA: may the answer be 'no answer'? (default: as in training)",
                                         choices=("yes", "no"))
    null_threshold: Optional[float] = opt(None, "QA v2.0: 'no answer' threshold (default: the tuned or trained one).")
    skip_bad_examples: bool = opt(False, "QA: skip (and count) questions whose answer is not at its answer_start.")


@dataclass
class EvaluateSettings(PredictSettings):
    """``bertkit evaluate``: score a fine-tuned model on a labelled file."""

    output: Optional[Path] = opt(None, "Write the metrics as JSON to this file.", short="-o")
    predictions: Optional[Path] = opt(None, "Also write the predictions to this file (.jsonl, .csv, .tsv).")
    label_column: Optional[str] = opt(None, "Column holding the label (default: detected).")
    files_dir: Optional[Path] = opt(None, "Folder for the task's own output files (QA: predictions.json, nbest.jsonl, "
                                    "null_odds.json); default: the folder of --output.")


def validate_qa(settings: Any) -> None:
    """The QA options that are set must be positive (doc_stride may be 0: windows that do not overlap)."""
    for name in ("max_query_length", "n_best", "max_answer_length"):
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise BertkitError(f"{flag(name)} is {value}; it must be at least 1")
    if settings.doc_stride is not None and settings.doc_stride < 0:
        raise BertkitError(f"--doc-stride is {settings.doc_stride}; it cannot be negative")
    choices = next(f.metadata["choices"] for f in dataclasses.fields(settings) if f.name == "allow_no_answer")
    if settings.allow_no_answer is not None and settings.allow_no_answer not in choices:
        raise BertkitError(f"--allow-no-answer is '{settings.allow_no_answer}'; choose one of: {', '.join(choices)}")


def flag(name: str) -> str:
    """The command-line flag of a settings field."""
    return "--" + name.replace("_", "-")


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
        raise BertkitError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BertkitError(f"{path}: a config file must hold a mapping of setting names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def build_settings(cls: type, config_values: dict[str, Any], cli_values: dict[str, Any], config_path: Path | None = None):
    """Defaults, then the config file, then the flags given on the command line."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in config_values.items():
        if key not in known:
            raise BertkitError(f"{config_path}: unknown setting '{key}'; see --help for the names (dashes or underscores)")
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
        return kind(value)
    except (TypeError, ValueError):
        raise BertkitError(f"{source}: setting '{f.name}' is {value!r}; it should be a {kind.__name__}") from None


def field_type(f: dataclasses.Field) -> type:
    """The plain type of a field (Optional[X] -> X)."""
    text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    text = text.replace("Optional[", "").rstrip("]")
    if text.startswith("list"):
        return list
    return {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}[text]


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """JSON-ready settings (paths as strings), leaving out the per-invocation switches."""
    skip = {"config", "debug", "overwrite", "resume"}
    out = {}
    for f in dataclasses.fields(settings):
        if f.name in skip:
            continue
        value = getattr(settings, f.name)
        out[f.name] = [str(v) for v in value] if isinstance(value, list) else (str(value) if isinstance(value, Path) else value)
    return out


def save_settings(settings: Any, path: Path) -> None:
    """Write the resolved settings as YAML, loadable again with --config."""
    import yaml

    command = " ".join(["bertkit", *sys.argv[1:]]) if sys.argv else ""
    header = f"# Resolved settings of this run; repeat it with: bertkit <command> --config {path.name}\n# Command line: {command}\n"
    path.write_text(header + yaml.safe_dump(settings_to_dict(settings), sort_keys=False), encoding="utf-8")


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
