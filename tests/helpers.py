"""Helpers shared by several test modules (fixtures stay in conftest.py): the small runs they start in
subprocesses, the tiny data and flags they use, and model directories written without training."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT

# ---- fine-tuning runs through the real command line (a kill is a real kill)

SEED_ARGS = ["--seed", "3", "--lr", "2e-3", "--batch-size", "4", "--max-length", "32", "--log-every", "5"]


def small_files(tmp_path: Path) -> tuple[Path, Path]:
    """80 training and 24 evaluation examples of the project's sentiment data (runs stay tiny)."""
    lines = (EXAMPLES / "sentiment/train.tsv").read_text(encoding="utf-8").splitlines()
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    train.write_text("\n".join(lines[:81]) + "\n", encoding="utf-8")
    dev.write_text("\n".join([lines[0], *lines[300:324]]) + "\n", encoding="utf-8")
    return train, dev


def finetune_args(model: Path, train: Path, dev: Path, output: Path, *extra: str) -> list[str]:
    # 20 batches per epoch and 30 steps: the run crosses an epoch boundary; checkpoints every 6 steps.
    return [
        "finetune",
        "--model",
        str(model),
        "--train",
        str(train),
        "--eval",
        str(dev),
        "--output",
        str(output),
        "--max-steps",
        "30",
        "--save-every",
        "6",
        "--eval-every",
        "10",
        "--keep-checkpoints",
        "2",
        *SEED_ARGS,
        *extra,
    ]


def sentiment_data(model: Path, output: Path) -> list[str]:
    """The model, the example sentiment data and the output of a classification run (finetune or tune)."""
    return [
        "--task",
        "classification",
        "--model",
        str(model),
        "--train",
        str(EXAMPLES / "sentiment/train.tsv"),
        "--eval",
        str(EXAMPLES / "sentiment/dev.tsv"),
        "--output",
        str(output),
    ]


def sentiment_args(model: Path, output: Path) -> list[str]:
    """`finetune` on the example sentiment data with settings a tiny model learns it by (4 epochs, lr 1e-3)."""
    return [
        "finetune",
        *sentiment_data(model, output),
        "--epochs",
        "4",
        "--lr",
        "1e-3",
        "--batch-size",
        "16",
        "--seed",
        "1",
    ]


def start(args: list[str], **env: str) -> subprocess.Popen:
    # One thread: on a busy 2-core machine two threads per run spin against each other (50x slower).
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "bertkit", *args],
        env=environment,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    process = start(args, **env)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def wait_for(process: subprocess.Popen, condition, what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = tensors(a), tensors(b)
    assert first.keys() == second.keys()
    different = [name for name in first if not (first[name] == second[name]).all()]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def fine_tuned(base: Path, target: Path, task: str, labels: list[str]) -> Path:
    """A model directory as `finetune` writes it (random head: these tests never look at predictions)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertkit.modeling.loading import save_model_dir
    from bertkit.tasks import get_task

    model = AutoModelForSequenceClassification.from_pretrained(base, **get_task(task).head_config(labels))
    info = {"task": task, "labels": labels, "max_length": 64}
    save_model_dir(model, AutoTokenizer.from_pretrained(base), target, info, "card")
    return target


# ---- pretraining: the project's example corpus and a tiny model's flags

CORPUS = EXAMPLES / "corpus" / "stories.txt"
PRETRAIN_TINY = [
    "--layers",
    "2",
    "--hidden",
    "64",
    "--heads",
    "2",
    "--intermediate",
    "128",
    "--vocab-size",
    "600",
    "--max-seq-length",
    "64",
    "--batch-size",
    "16",
    "--lr",
    "3e-3",
    "--validation-fraction",
    "0.05",
    "--seed",
    "3",
]


# ---- datasets


def write_hub_cache(name: str, config: str, splits: dict) -> None:
    """Lay a dataset out in HF_DATASETS_CACHE exactly as a first online load_dataset(name, config) leaves it."""
    import tempfile
    from pathlib import Path

    from datasets.packaged_modules.arrow.arrow import Arrow

    folder = Path(tempfile.mkdtemp())
    files = {}
    for split, data in splits.items():
        data.save_to_disk(str(folder / split))
        files[split] = [str(p) for p in (folder / split).glob("*.arrow")]
    builder = Arrow(
        data_files=files,
        dataset_name=name,
        config_name=config,
        config_id=config,
        hash="0123abcd",
        features=next(iter(splits.values())).features,
    )
    builder.download_and_prepare()
