"""Continuing a model that has no masked-LM head on in-domain text (issue 27, item 2): does it keep its accuracy?

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/continue_pretraining.py                  # 10 min, MR
    flock /tmp/bertkit-bench.lock .venv/bin/python bench/continue_pretraining.py --minutes 2 --seeds 1 \
        --megabytes 2 --mr-rows 500 --name continue-smoke                                              # a smoke run

all-MiniLM-L6-v2 (a sentence-transformers directory: an encoder without a masked-LM head) is fine-tuned on
MR (the first --mr-rows training rows, 3 epochs, lr 1e-4, batch 32, scored on test.tsv, --poolings, --seeds
fine-tuning seeds) as it ships, and after `bertkit pretrain --model MINILM` on the first --megabytes of
../shared/data/corpus/imdb-unsup (movie reviews: MR's domain) for --minutes of training:
- `continued-defaults`: the command with no tuning flags, as a new user runs it;
- `continued`: --learning-rate --lr (default 1e-4, what the help advises for a pretrained --model);
- `continued-warmup`: the same with --head-warmup-steps (default 100): the new head trains alone first.
Results: bench/results/NAME.json (default continue-pretraining), with each run's held-out MLM metrics;
--sides runs some of them (e.g. continued,continued-warmup with another --lr).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import DATA, ROOT, minilm_dir, save_results
from pretrain_value import bertkit, finetune, summary, write_corpus, write_task_files

CORPUS = DATA / "corpus" / "imdb-unsup" / "corpus.txt"


def continued(work: Path, name: str, minutes: float, *flags: str) -> Path:
    output = work / name
    bertkit(
        "pretrain", work / "train.txt", "--model", minilm_dir(), "--output", output, "--overwrite",
        "--time-budget", f"{minutes:g}m", "--seed", "1", "--log-every", "20", *flags,
    )  # fmt: skip
    return output / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="pretraining minutes of each continued run")
    parser.add_argument("--lr", default="1e-4", help="the learning rate of the continued sides")
    parser.add_argument("--warmup-steps", type=int, default=100, help="--head-warmup-steps of continued-warmup")
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--mr-rows", type=int, default=4000)
    parser.add_argument("--seeds", type=int, default=2, help="fine-tuning seeds per model")
    parser.add_argument("--poolings", default="mean,cls")
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--sides", default="as-shipped,continued-defaults,continued,continued-warmup")
    parser.add_argument("--name", default="continue-pretraining")
    args = parser.parse_args()
    work = ROOT / "runs" / f"bench-{args.name}"
    work.mkdir(parents=True, exist_ok=True)
    write_corpus(work, CORPUS, args.megabytes)
    write_task_files(work, args.mr_rows)
    results: dict = {"corpus": "imdb-unsup", "megabytes": args.megabytes, "minutes": args.minutes, "lr": args.lr}
    results.update(warmup_steps=args.warmup_steps, seeds=args.seeds, pretraining={}, scores={})
    tuned = ["--learning-rate", args.lr]
    models = {
        "as-shipped": minilm_dir,
        "continued-defaults": lambda: continued(work, "continued-defaults", args.minutes),
        "continued": lambda: continued(work, "continued", args.minutes, *tuned),
        "continued-warmup": lambda: continued(
            work, "continued-warmup", args.minutes, *tuned, "--head-warmup-steps", str(args.warmup_steps)
        ),
    }
    for side, make in ((side, models[side]) for side in args.sides.split(",")):
        model = make()
        metrics = model.parent / "metrics.json"
        if side != "as-shipped" and metrics.is_file():
            values = json.loads(metrics.read_text())
            results["pretraining"][side] = {k: v for k, v in values.items() if not isinstance(v, (list, dict))}
        for pooling in args.poolings.split(","):
            values = [finetune(work, model, "mr", pooling, seed, args.epochs) for seed in range(1, args.seeds + 1)]
            results["scores"].setdefault(side, {})[f"mr/{pooling}"] = summary(values)
            print(side, pooling, summary(values), flush=True)
        save_results(args.name, results)  # after every model: a stopped run keeps what it measured
    print(json.dumps(results["scores"], indent=2))


if __name__ == "__main__":
    main()
