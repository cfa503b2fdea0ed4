"""`bertkit tune` on MR: a short search, then the best settings and the defaults retrained with fresh seeds.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/tune.py --trials 6 --time-budget 6m --seeds 2

all-MiniLM-L6-v2 on the first 2,000 rows of MR polarity `train.tsv`; the search is scored on the next 500 rows
(a dev split the test never sees), the confirmation runs on `test.tsv` too (1,066 sentences). Every trial and
confirmation run trains 1 epoch (`--epochs 1` is a fixed setting, so "defaults" means finetune's defaults at
1 epoch), max length 128, evaluation every 25 steps (pruning and the best checkpoint). The issue's full grid
(four data sets x 30 minutes, and the Trainer's own search) does not fit a shared 2-core machine; see
bench/results/tune.md for what ran.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA, minilm_dir, require_data, save_results, timer

MR = DATA / "classification" / "mr-polarity"


def split_train(work: Path, rows: int, dev_rows: int) -> tuple[Path, Path]:
    """The first `rows` of train.tsv to train on, the next `dev_rows` to search on."""
    lines = (MR / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    train, dev = work / "train.tsv", work / "dev.tsv"
    train.write_text(header + "".join(body[:rows]), encoding="utf-8")
    dev.write_text(header + "".join(body[rows : rows + dev_rows]), encoding="utf-8")
    return train, dev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--dev-rows", type=int, default=500)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--time-budget", default="6m")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bertkit-bench-tune"))
    args = parser.parse_args()
    require_data(MR / "train.tsv")
    args.work.mkdir(parents=True, exist_ok=True)
    train, dev = split_train(args.work, args.rows, args.dev_rows)

    from bertkit.settings import TuneSettings
    from bertkit.tune import tune

    settings = TuneSettings(
        task="classification",
        model=str(minilm_dir()),
        train=train,
        eval=dev,
        test=MR / "test.tsv",
        output=args.work / "study",
        overwrite=True,
        epochs=1,
        max_length=128,
        eval_every=25,
        trials=args.trials,
        time_budget=args.time_budget,
        seeds=args.seeds,
        seed=42,
    )
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "setup": {
            "model": "all-MiniLM-L6-v2",
            "train": f"MR train.tsv rows 1-{args.rows}",
            "search_on": f"MR train.tsv rows {args.rows + 1}-{args.rows + args.dev_rows}",
            "confirmation_on": "MR test.tsv (1,066)",
            "fixed": {"epochs": 1, "max_length": 128, "eval_every": 25, "seed": 42},
            "trials": args.trials,
            "time_budget": args.time_budget,
            "seeds": args.seeds,
        },
    }
    with timer(results, "wall_seconds"):
        tune(settings)
    study = args.work / "study"
    results["study"] = json.loads((study / "tune.json").read_text(encoding="utf-8"))
    results["space"] = (study / "space.yaml").read_text(encoding="utf-8")
    results["trials"] = trial_rows(study / "trials.csv")
    print(json.dumps(results["study"]["confirmation"], indent=2))
    print(save_results("tune", results))


def trial_rows(path: Path) -> list[dict]:
    import csv

    keep = ("number", "state", "value", "duration")
    with open(path, encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    return [
        {**{k: row[k] for k in keep}, **{k[7:]: row[k] for k in row if k.startswith("params_") and row[k]}}
        for row in rows
    ]


if __name__ == "__main__":
    main()
