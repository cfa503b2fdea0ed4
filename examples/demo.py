"""The main job on the shipped example data: pretrain a tiny BERT, fine-tune it, evaluate, predict.

    make demo            (or: .venv/bin/python examples/demo.py)

1. `bertkit pretrain` trains a WordPiece tokenizer and a tiny BERT (2 layers x 128) with the default
   budget recipe (masked LM alone, 25% of the pieces, no dropout) on the example text
   (examples/corpus/stories.txt plus the texts of the sentiment and NLI examples, gathered into
   runs/demo/corpus.txt), in about a minute on two CPU cores;
2. `bertkit finetune` trains a sentiment classifier on examples/sentiment from that model, reading the
   default [CLS] head;
3. `bertkit evaluate` scores it on the test file, and `bertkit predict` labels new inputs.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = HERE.parent / "runs" / "demo"


def bertkit(*args: str) -> None:
    command = [sys.executable, "-m", "bertkit", *map(str, args)]
    print("\n$ bertkit " + " ".join(map(str, args)), flush=True)
    subprocess.run(command, check=True)


def write_corpus(target: Path) -> Path:
    """The stories (blank-line separated documents) plus every example text, 8 texts to a document."""
    texts = []
    for path in sorted(HERE.glob("*/*.tsv")):
        with open(path, encoding="utf-8") as stream:
            for row in csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE):
                texts.extend(row[key].capitalize() + "." for key in ("text", "premise", "hypothesis") if row.get(key))
    blocks = ["\n".join(texts[i : i + 8]) for i in range(0, len(texts), 8)]
    stories = (HERE / "corpus" / "stories.txt").read_text(encoding="utf-8").strip()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(stories + "\n\n" + "\n\n".join(blocks) + "\n", encoding="utf-8")
    return target


def main() -> None:
    corpus = write_corpus(RUNS / "corpus.txt")
    bertkit(
        "pretrain",
        corpus,
        "--output",
        RUNS / "base",
        "--overwrite",
        "--size",
        "tiny",
        "--vocab-size",
        2000,
        "--max-seq-length",
        64,
        "--max-steps",
        150,
        "--batch-size",
        32,
        "--lr",
        "2e-3",
        "--eval-every",
        50,
        "--dump-instances",
        3,
        RUNS / "base/instances.jsonl",
    )
    print(f"\nWhat the model was trained on ({RUNS / 'base/instances.jsonl'}, first instance):")
    first = json.loads((RUNS / "base/instances.jsonl").read_text(encoding="utf-8").splitlines()[0])
    print("  " + " ".join(first["tokens"]))
    print(f"  masked: {first['masked_labels']}")
    bertkit(
        "finetune",
        "--task",
        "classification",
        "--model",
        RUNS / "base/model",
        "--train",
        HERE / "sentiment/train.tsv",
        "--eval",
        HERE / "sentiment/dev.tsv",
        "--output",
        RUNS / "sentiment",
        "--overwrite",
        "--epochs",
        4,
        "--lr",
        "1e-3",
        "--batch-size",
        16,
    )
    bertkit(
        "evaluate",
        "--model",
        RUNS / "sentiment/model",
        HERE / "sentiment/test.tsv",
        "--output",
        RUNS / "sentiment/test-metrics.json",
    )
    bertkit(
        "predict",
        "--model",
        RUNS / "sentiment/model",
        HERE / "sentiment/inputs.txt",
        "--output",
        RUNS / "sentiment/predictions.jsonl",
    )
    print(f"\nFirst predictions ({RUNS / 'sentiment/predictions.jsonl'}):")
    for line in (RUNS / "sentiment/predictions.jsonl").read_text(encoding="utf-8").splitlines()[:5]:
        print("  " + line)


if __name__ == "__main__":
    main()
