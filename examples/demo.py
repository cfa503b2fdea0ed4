"""The main job on the shipped example data: make a model, fine-tune it, predict.

    make demo            (or: .venv/bin/python examples/demo.py)

Until `bertkit pretrain` lands, the starting model is a small randomly initialised BERT whose
WordPiece tokenizer is trained on the example text: fine-tuning still learns the example
sentiment data, but from scratch, not from pretrained knowledge.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = HERE.parent / "runs" / "demo"


def bertkit(*args: str) -> None:
    command = [sys.executable, "-m", "bertkit", *map(str, args)]
    print("\n$ bertkit " + " ".join(map(str, args)), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    from bertkit.modeling.scratch import init_model_dir

    base = RUNS / "random-base"
    texts = [line for path in sorted(HERE.rglob("*.tsv")) + sorted(HERE.rglob("*.txt"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    print("Starting from a small RANDOMLY INITIALISED BERT (no pretraining yet) with a WordPiece "
          f"tokenizer trained on examples/: {base}")
    init_model_dir(texts, base, size="tiny", vocab_size=2000)
    bertkit("finetune", "--task", "classification", "--model", base, "--train", HERE / "sentiment/train.tsv",
            "--eval", HERE / "sentiment/dev.tsv", "--output", RUNS / "sentiment", "--overwrite",
            "--epochs", 4, "--lr", "1e-3", "--batch-size", 16)
    bertkit("evaluate", "--model", RUNS / "sentiment/model", HERE / "sentiment/test.tsv",
            "--output", RUNS / "sentiment/test-metrics.json")
    bertkit("predict", "--model", RUNS / "sentiment/model", HERE / "sentiment/inputs.txt",
            "--output", RUNS / "sentiment/predictions.jsonl")
    print(f"\nFirst predictions ({RUNS / 'sentiment/predictions.jsonl'}):")
    for line in (RUNS / "sentiment/predictions.jsonl").read_text(encoding="utf-8").splitlines()[:5]:
        print("  " + line)


if __name__ == "__main__":
    main()
