"""The settings of every command, declared in one place (the mechanism is `bertkit.settings.options`).

Each field carries its default, its help text and (through its name) its CLI flag. The CLI is
generated from these dataclasses (see ``bertkit/cli/``), so a new option is one new field here,
or, for an option of one task, a field of that task's options dataclass (``bertkit/tasks/``):
`with_options` adds every task's options to finetune, predict and evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bertkit.errors import BertkitError
from bertkit.settings.options import flag, opt, options_from, parse_duration, validate_choices, with_options
from bertkit.tasks import REGISTERED, TASKS, get_task, option_types

FINETUNE_LEARNING_RATE = 5e-5
# A compact encoder that `bertkit pretrain` made from scratch needs a higher rate than a published base-size one:
# in three epochs a 30-minute mini model fine-tuned MR to 64.6 at 5e-5, 69.1 at 1e-4, 72.2 at 2e-4 and 71.7 at
# 3e-4, IMDB to 79.9 at 1e-4 and 82.1 at 2e-4, SICK level (bench/results/electra.md, runs 5 and 7).
SCRATCH_FINETUNE_LEARNING_RATE = 2e-4
COMPACT_HIDDEN = 512  # tiny to medium (bertkit/modeling/scratch.py SIZES); base and large keep BERT's rates


def default_learning_rate(model: str) -> float:
    """finetune's learning rate for `model` when --lr is not given: higher for a compact from-scratch model."""
    import json

    from bertkit.modeling.loading import pretraining_record

    record = pretraining_record(model) if model else None
    if record is None or record.get("base_model"):
        return FINETUNE_LEARNING_RATE
    try:
        hidden = json.loads((Path(model) / "config.json").read_text(encoding="utf-8")).get("hidden_size", 0)
    except (OSError, ValueError):
        return FINETUNE_LEARNING_RATE
    return SCRATCH_FINETUNE_LEARNING_RATE if 0 < hidden <= COMPACT_HIDDEN else FINETUNE_LEARNING_RATE


@dataclass
class RunSettings:
    """What every command shares."""

    config: Optional[Path] = opt(None, "YAML or TOML file of settings; flags given on the command line override it.")
    debug: bool = opt(False, "Show the full traceback of errors.", panel="Output & logging")
    # --- safe loading ---
    allow_pickle: bool = opt(
        False,
        "Load pickle weights (pytorch_model.bin) when a model has no safetensors; "
        "pickle can run code, so only for models you trust.",
    )
    trust_remote_code: bool = opt(
        False, "Run model code shipped inside a model directory (off: only transformers' own code)."
    )


@dataclass
class TrainingSettings(RunSettings):
    """What the engine needs, shared by pretrain and finetune."""

    output: Optional[Path] = opt(
        None, "Output directory of the run (model/, metrics.json, log.jsonl, ...).", short="-o"
    )
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
    length_grouping: int = opt(
        50,
        "Batches per length-sorted group: batches hold examples of similar length (little "
        "padding, fast); 1: random batches, as the transformers Trainer draws them "
        "(finetune: the same as --batch-sampler random).",
    )
    eval_every: int = opt(0, "Evaluate every N steps (0: at the end of each epoch only).")
    save_every: int = opt(0, "Write a resumable checkpoint every N steps (0: at the end of each epoch only).")
    keep_checkpoints: int = opt(1, "How many checkpoints to keep; older ones are removed once a new one is complete.")
    patience: int = opt(0, "Early stopping: stop after N evaluations without improvement (0: never).")
    precision: str = opt(
        "auto",
        "Arithmetic: auto (bf16 autocast on GPU, fp32 on CPU), fp32, bf16 or fp16.",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    log_every: int = opt(10, "Write a line to log.jsonl every N steps.")
    eval_batch_size: int = opt(64, "Examples per batch when evaluating.")
    skip_nonfinite: int = opt(0, "Tolerate this many steps with a NaN/inf loss (skipped) before stopping.")
    # --- multi-process training (Accelerate) ---
    num_processes: int = opt(
        1,
        "Train with N processes (all machines together): bertkit re-launches itself through "
        "Accelerate (DDP; gloo on CPU, NCCL on GPUs).",
    )
    num_machines: int = opt(1, "Machines taking part; start the same command on each with its --machine-rank.")
    machine_rank: int = opt(0, "This machine's rank, 0 to --num-machines - 1 (0 is the main machine).")
    main_process_ip: str = opt("127.0.0.1", "Address of the machine with rank 0 (the others connect to it).")
    main_process_port: int = opt(29500, "Port on the main machine for the processes to meet.")
    distributed_timeout: int = opt(
        7200, "Seconds processes wait for each other (e.g. while the main process prepares data)."
    )
    # --- time budget (any training run; the low-budget pretraining recipes use it) --- (generic: any training run) ---
    time_budget: str = opt(
        "",
        "Train for this long (e.g. 90s, 30m, 2h, 1h30m): the learning-rate schedule runs over "
        "the time instead of a step count and training stops cleanly at it (evaluations and "
        "checkpoints are not counted); --max-steps still caps it, --epochs is ignored.",
    )
    # --- experiment tracking (bertkit/tracking.py) ---
    report_to: str = opt(
        "none",
        "Also log settings and metrics to trackers under OUTPUT/tracking: tensorboard, mlflow "
        "(a local file store), several comma-separated, or none.",
    )

    @property
    def time_budget_seconds(self) -> float:
        """--time-budget in seconds (0: none)."""
        return parse_duration(self.time_budget) if self.time_budget else 0.0

    def validate(self) -> None:
        validate_choices(self)
        validate_launch(self)
        positive = {
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "eval_batch_size": self.eval_batch_size,
            "log_every": self.log_every,
            "keep_checkpoints": self.keep_checkpoints,
            "length_grouping": self.length_grouping,
        }
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
        self.time_budget_seconds  # noqa: B018 -- raises for a malformed --time-budget


@dataclass
class FinetuneSettings(TrainingSettings):
    """``bertkit finetune``: train a task head (and the encoder) on labelled data."""

    task: str = opt(REGISTERED[0].name, "What to learn.", short="-t", choices=tuple(TASKS))  # classification
    model: str = opt(
        "", "Model directory to start from (a pretrained or fine-tuned bertkit/Hugging Face model).", short="-m"
    )
    learning_rate: Optional[float] = opt(
        None,
        "Peak learning rate of AdamW (default 5e-5; 2e-4 for a compact model that 'bertkit pretrain' made from "
        "scratch, as its bertkit.json records).",
        short="--lr",
    )
    train: Optional[Path] = opt(
        None,
        "Training file (csv, tsv, jsonl, json, parquet, arrow, a saved dataset or "
        "hf:NAME[:CONFIG]; conll/conllu for tagging; SQuAD json for qa).",
    )
    eval: Optional[Path] = opt(
        None, "Evaluation file in the same format; picks the best checkpoint and early stopping."
    )
    max_length: Optional[int] = opt(
        None,
        "Longest input in WordPieces; longer texts are truncated (and counted in "
        "the log). Default: the task's own (128 for most).",
    )
    token_weighted_loss: bool = opt(
        True,
        "Per-token tasks (tagging): weight each batch's loss by its labelled tokens, "
        "so length-grouped batches of short texts do not outweigh long ones; off: every "
        "batch counts the same, as in the Trainer.",
        off="--batch-weighted-loss",
    )
    micro_batches: Optional[int] = opt(
        None,
        "Compute each batch as N length-grouped micro-batches of --batch-size / N "
        "whose gradients make one step: little padding, yet every step mixes "
        "lengths. Default: the task's (tagging: 4 with step-sorted batches, 1 with "
        "packed rows; else 1; 1 when --batch-size is not a multiple of it).",
    )
    batch_sampler: Optional[str] = opt(
        None,
        "Batch order: packed (random batches whose sentences are laid end to end in rows: no "
        "padding between them; tagging with BERT or ELECTRA models), step-sorted (each step holds "
        "the examples random batches would, sorted by length into its --micro-batches: random "
        "batches' statistics, little padding), length-grouped (groups of --length-grouping "
        "similar-length batches: least padding, but each step holds one length) or random (as the "
        "Trainer). Default: the task's (packed for tagging, step-sorted where the model cannot "
        "pack, else length-grouped; random with --length-grouping 1).",
        choices=("packed", "step-sorted", "length-grouped", "random"),  # the orders of engine/batching.py
    )
    # --- strategies ---
    strategy: str = opt(
        "full",
        "What trains: full (everything), frozen (the head only), adapters (bottleneck adapters "
        "in every layer + head) or lora (low-rank updates via peft + head).",
        choices=("full", "frozen", "adapters", "lora"),
    )
    adapter_size: int = opt(64, "Bottleneck width of each adapter (--strategy adapters).")
    lora_rank: int = opt(8, "Rank of the LoRA updates (--strategy lora).")
    lora_alpha: float = opt(16.0, "LoRA scaling: updates are multiplied by alpha / rank.")
    lora_dropout: float = opt(0.1, "Dropout on the LoRA branch's input.")
    lora_targets: str = opt(
        "query,key,value,dense", "Comma-separated names of the encoder's linear layers LoRA adapts."
    )
    merge: bool = opt(False, "With --strategy lora: save a plain model with the updates merged in, not an adapter.")
    layer_mix: str = opt(
        "last",
        "What the head reads: the last layer, or a learned softmax-weighted sum of all layers.",
        choices=("last", "weighted"),
    )
    pooling: str = opt(
        "cls",
        "One vector per text from the [CLS] token or the mean of all tokens (tasks with one output per text).",
        choices=("cls", "mean"),
    )
    reinit_pooler: str = opt(
        "auto",
        "Draw the [CLS] pooler anew before fine-tuning: auto (when the model is a bertkit "
        "pretraining run whose next-sentence prediction was off or stayed near chance, "
        "so nothing trained the pooler), yes or no.",
        choices=("auto", "yes", "no"),
    )
    reinit_layers: int = opt(
        0,
        "Draw the top N encoder layers anew before fine-tuning (helps small data sets "
        "and briefly pretrained models; Zhang et al. 2021).",
    )

    layer_lr_decay: float = opt(
        1.0,
        "Layer-wise learning-rate decay: the head trains at --learning-rate, each encoder layer below it at this "
        "factor times the one above, the embeddings lowest (e.g. 0.8; 1.0: off).",
    )

    def __post_init__(self) -> None:
        if self.learning_rate is None:  # left unset: the model's own default
            self.learning_rate = default_learning_rate(self.model)

    def validate(self) -> None:
        super().validate()
        if not 0 < self.layer_lr_decay <= 1:
            raise BertkitError(f"--layer-lr-decay is {self.layer_lr_decay}; give a factor above 0 and at most 1")
        if not self.model:
            raise BertkitError("no starting model given; pass --model DIR (a local model directory)")
        if self.train is None:
            raise BertkitError("no training file given; pass --train FILE")
        if self.max_length is not None and self.max_length < 8:
            raise BertkitError(f"--max-length is {self.max_length}; it must be at least 8")
        if self.reinit_layers < 0:
            raise BertkitError(f"--reinit-layers is {self.reinit_layers}; it cannot be negative")
        if self.micro_batches is not None and (self.micro_batches < 1 or self.batch_size % self.micro_batches):
            raise BertkitError(
                f"--micro-batches is {self.micro_batches}; give a divisor of --batch-size "
                f"{self.batch_size} (1: no micro-batches)"
            )
        if self.batch_sampler == "step-sorted" and self.length_grouping == 1:
            raise BertkitError(
                "--length-grouping 1 asks for random batches and --batch-sampler step-sorted for sorted steps; "
                "pass one of them"
            )
        from bertkit.modeling.strategies import validate_strategy

        task = get_task(self.task)
        if self.batch_sampler == "packed" and not task.packs:
            raise BertkitError(
                f"--batch-sampler packed lays per-token examples end to end; {self.task} has one label per "
                "example: use step-sorted, length-grouped or random"
            )
        validate_strategy(self, sequence_level=task.sequence_level)
        options_from(task.options_type, self)  # the task checks its own options

    # --- datasets inputs (bertkit/data/datasets_io.py) ---
    train_split: str = opt("train", "Split of --train when it is a saved DatasetDict or hf:NAME[:CONFIG].")
    eval_split: str = opt("validation", "Split of --eval when it is a saved DatasetDict or hf:NAME[:CONFIG].")
    cache_encoded: bool = opt(
        False,
        "Stream the training data through Arrow a batch at a time and encode it into "
        "Arrow files in OUTPUT.encoded/ (memory flat in the number of examples; a "
        "repeated or resumed run reuses them).",
    )
    num_workers: int = opt(1, "Processes that encode the training data (more than 1 implies --cache-encoded).")


@dataclass
class PredictSettings(RunSettings):
    """``bertkit predict``: run a fine-tuned model over a file."""

    input: Optional[Path] = opt(
        None,
        "Input file (txt one input per line, csv, tsv, jsonl, ...; parquet, arrow, a saved "
        "dataset or hf:NAME[:CONFIG]), or - for stdin.",
        argument=True,
    )
    model: str = opt("", "Fine-tuned model directory (runs/NAME/model).", short="-m")
    output: Optional[Path] = opt(
        None, "Output file: .jsonl (default), .csv, .tsv or (tagging) .conll; - for stdout.", short="-o"
    )
    batch_size: int = opt(64, "Inputs per batch (batches are sorted by length internally).")
    max_length: int = opt(0, "Longest input in WordPieces (0: as in training).")
    precision: str = opt(
        "auto",
        "Arithmetic: auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16.",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    runtime: str = opt(
        "auto",
        "What runs the model: auto (onnx for a directory written by 'bertkit export', else torch), torch or onnx.",
        choices=("auto", "torch", "onnx"),
    )
    threads: int = opt(0, "CPU threads for the model (0: all cores).")

    def validate(self) -> None:
        validate_choices(self)
        validate_threads(self)
        if self.input is None:
            raise BertkitError("no input file given; pass the file to predict on (or - for stdin)")
        if not self.model:
            raise BertkitError("no model given; pass --model DIR (the model/ folder of a fine-tuning run)")
        if self.batch_size < 1:
            raise BertkitError(f"--batch-size is {self.batch_size}; it must be at least 1")
        if self.max_length < 0:
            raise BertkitError(f"--max-length is {self.max_length}; it cannot be negative")
        for task in TASKS.values():  # the model's task is not known yet: every task checks the options given
            options_from(task.options_type, self)

    # --- datasets inputs (bertkit/data/datasets_io.py) ---
    split: Optional[str] = opt(
        None, "Split of the input when it is a saved DatasetDict or hf:NAME[:CONFIG] (default: its only split)."
    )


@dataclass
class EvaluateSettings(PredictSettings):
    """``bertkit evaluate``: score a fine-tuned model on a labelled file."""

    output: Optional[Path] = opt(None, "Write the metrics as JSON to this file.", short="-o")
    predictions: Optional[Path] = opt(None, "Also write the predictions to this file (.jsonl, .csv, .tsv).")
    files_dir: Optional[Path] = opt(
        None,
        "Folder for the files a task writes besides the metrics (e.g. "
        "predictions.json); default: the folder of --output.",
    )


def validate_launch(s: TrainingSettings) -> None:
    """The multi-process options: counts that add up and a reachable rendezvous."""
    for name in ("num_processes", "num_machines", "distributed_timeout"):
        if getattr(s, name) < 1:
            raise BertkitError(f"{flag(name)} is {getattr(s, name)}; it must be at least 1")
    if s.num_processes % s.num_machines:
        raise BertkitError(
            f"--num-processes {s.num_processes} cannot be shared evenly by --num-machines "
            f"{s.num_machines}; it counts the processes of all machines together"
        )
    if not 0 <= s.machine_rank < s.num_machines:
        raise BertkitError(
            f"--machine-rank is {s.machine_rank}; give 0 to {s.num_machines - 1} (--num-machines {s.num_machines})"
        )
    if not 1 <= s.main_process_port <= 65535:
        raise BertkitError(f"--main-process-port is {s.main_process_port}; give a port from 1 to 65535")


# Every task's options, on the commands that take them (see `opt(commands=..., saved=...)`).
FinetuneSettings = with_options(FinetuneSettings, "finetune", option_types())
PredictSettings = with_options(PredictSettings, "predict", option_types())
EvaluateSettings = with_options(EvaluateSettings, "evaluate", option_types())


def validate_threads(settings: Any) -> None:
    if settings.threads < 0:
        raise BertkitError(f"--threads is {settings.threads}; give 0 (all cores) or more")
