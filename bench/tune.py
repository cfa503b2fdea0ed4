"""`bertkit tune` against finetune's defaults and against `Trainer.hyperparameter_search(backend="optuna")`.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/tune.py --set sick-nli --time-budget 8m --seeds 3 --trainer

all-MiniLM-L6-v2 on the first --rows training rows of a set: MR (searched on the next --dev-rows rows of its
train.tsv, a dev split the test never sees), SICK NLI or SICK relatedness (searched on the first --dev-rows of
dev.tsv); the confirmation retrains the best settings and finetune's defaults with --seeds fresh seeds (43, 44,
...; the search used 42) and scores them on the search split and on test.tsv. Every trial and confirmation
run trains 1 epoch (`--epochs 1` is a fixed setting, so "defaults" means finetune's defaults at 1 epoch), max
length 128, evaluation every 25 steps (pruning and the best checkpoint).

--trainer then runs the Trainer's own Optuna search in the same process: the part of bertkit's space the
Trainer has (learning rate, batch size, warm-up, weight decay; the same ranges), as many trials as bertkit's
search finished, TPE seeded 42, no time limit, each trial 1 epoch scored on the same split with the same
metric, every example padded to 128 as run_glue.py does by default; its best settings are retrained with
the same confirmation seeds and scored on test. The issue's UNER set is not here (see tune.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import DATA, encoded, minilm_dir, read_rows, require_data, run_trainer_peer, save_results, timer

# name: (folder, bertkit task, text columns, gold column, search split: "train" (after --rows) or "dev")
SETS = {
    "mr": (DATA / "classification" / "mr-polarity", "classification", ("text", None), "label", "train"),
    "sick-nli": (DATA / "nli" / "sick", "nli", ("premise", "hypothesis"), "label", "dev"),
    "sick-relatedness": (
        DATA / "regression" / "sick-relatedness",
        "regression",
        ("sentence1", "sentence2"),
        "score",
        "dev",
    ),
}
FIXED = {"epochs": 1, "max_length": 128, "eval_every": 25, "seed": 42}


def split_set(name: str, work: Path, rows: int, dev_rows: int, test_rows: int) -> tuple[Path, Path, Path]:
    """The training rows, the search split and the test file of a set, as tsv files bertkit reads."""
    folder, *_, search = SETS[name]
    lines = (folder / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    if search == "train":
        held = body[rows : rows + dev_rows]
    else:
        held = (folder / "dev.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[1 : dev_rows + 1]
    test_lines = (folder / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    train, dev, test = work / "train.tsv", work / "dev.tsv", work / "test.tsv"
    train.write_text(header + "".join(body[:rows]), encoding="utf-8")
    dev.write_text(header + "".join(held), encoding="utf-8")
    test.write_text("".join(test_lines[: test_rows + 1] if test_rows else test_lines), encoding="utf-8")
    return train, dev, test


def bertkit_search(name: str, files: tuple[Path, Path, Path], work: Path, args) -> dict:
    from bertkit.settings import TuneSettings
    from bertkit.tune import tune

    train, dev, test = files
    study = work / "study"
    settings = TuneSettings(
        task=SETS[name][1],
        model=str(minilm_dir()),
        train=train,
        eval=dev,
        test=test,
        output=study,
        overwrite=True,
        trials=args.trials,
        time_budget=args.time_budget,
        seeds=args.seeds,
        **FIXED,
    )
    result: dict = {}
    with timer(result, "wall_seconds"):
        tune(settings)
    result["study"] = json.loads((study / "tune.json").read_text(encoding="utf-8"))
    result["space"] = (study / "space.yaml").read_text(encoding="utf-8")
    result["trials"] = trial_rows(study / "trials.csv")
    return result


class Scorer:
    """The set's metric (bertkit's main metric for the task) on raw logits, as the Trainer's compute_metrics."""

    def __init__(self, name: str, gold: list):
        self.regression = SETS[name][1] == "regression"
        self.metric = "spearman" if self.regression else "accuracy"
        self.gold = gold

    def __call__(self, logits) -> float:
        import numpy as np
        from scipy.stats import spearmanr

        if self.regression:
            return float(spearmanr(np.asarray(logits).reshape(-1), self.gold).correlation)
        return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(self.gold)))


def gold_and_head(name: str, rows: list[dict], train_rows: list[dict]) -> tuple[list, dict]:
    column = SETS[name][3]
    if SETS[name][1] == "regression":
        return [float(r[column]) for r in rows], {"num_labels": 1, "problem_type": "regression"}
    labels = sorted({r[column] for r in train_rows})
    label2id = {label: i for i, label in enumerate(labels)}
    head = {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": label2id}
    return [label2id[r[column]] for r in rows], head


def texts(name: str, rows: list[dict]) -> tuple[list[str], list[str] | None]:
    first, second = SETS[name][2]
    return [r[first] for r in rows], [r[second] for r in rows] if second else None


def trainer_search(name: str, files: tuple[Path, Path, Path], work: Path, trials: int, seeds: list[int]) -> dict:
    """Trainer.hyperparameter_search(backend="optuna") over the shared part of the space, then its best settings
    retrained with the confirmation seeds and scored on the search split and on test."""
    import optuna
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    train_rows, dev_rows, test_rows = (read_rows(path) for path in files)
    train_gold, head = gold_and_head(name, train_rows, train_rows)
    dev_gold, _ = gold_and_head(name, dev_rows, train_rows)
    test_gold, _ = gold_and_head(name, test_rows, train_rows)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())

    def encode(rows: list[dict], gold: list):
        return encoded(tokenizer, texts(name, rows), gold, "max_length", FIXED["max_length"])

    dev_score = Scorer(name, dev_gold)

    def space(trial) -> dict:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 2e-4, log=True),
            "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [16, 32]),
            "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
        }

    arguments = TrainingArguments(
        output_dir=str(work / "trainer-search"),
        num_train_epochs=FIXED["epochs"],
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        seed=FIXED["seed"],
        disable_tqdm=True,
        logging_strategy="no",
    )
    trainer = Trainer(
        model_init=lambda *_: AutoModelForSequenceClassification.from_pretrained(minilm_dir(), **head),
        args=arguments,
        train_dataset=encode(train_rows, train_gold),
        eval_dataset=encode(dev_rows, dev_gold),
        data_collator=default_data_collator,
        compute_metrics=lambda output: {dev_score.metric: dev_score(output.predictions)},
    )
    result: dict = {"metric": dev_score.metric, "trials": trials}
    with timer(result, "search_seconds"):
        best = trainer.hyperparameter_search(
            hp_space=space,
            compute_objective=lambda metrics: metrics[f"eval_{dev_score.metric}"],
            n_trials=trials,
            direction="maximize",
            backend="optuna",
            sampler=optuna.samplers.TPESampler(seed=FIXED["seed"]),
        )
    result.update(best_value=best.objective, best_settings=best.hyperparameters)
    hyper = {
        "epochs": FIXED["epochs"],
        "max_length": FIXED["max_length"],
        "batch_size": best.hyperparameters["per_device_train_batch_size"],
        "learning_rate": best.hyperparameters["learning_rate"],
        "warmup_ratio": best.hyperparameters["warmup_ratio"],
        "weight_decay": best.hyperparameters["weight_decay"],
    }
    runs = []
    with timer(result, "confirmation_seconds"):
        both = test_rows + dev_rows  # one predict call per seed scores both splits
        for seed in seeds:
            _, logits = run_trainer_peer(
                texts(name, train_rows),
                train_gold,
                texts(name, both),
                head,
                work,
                True,
                {**hyper, "seed": seed},
            )
            runs.append(
                {"test": Scorer(name, test_gold)(logits[: len(test_rows)]), "eval": dev_score(logits[len(test_rows) :])}
            )
    for split in ("eval", "test"):
        values = [run[split] for run in runs]
        result[split] = {
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "runs": values,
        }
    return result


def trial_rows(path: Path) -> list[dict]:
    import csv

    keep = ("number", "state", "value", "duration")
    with open(path, encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    return [
        {**{k: row[k] for k in keep}, **{k[7:]: row[k] for k in row if k.startswith("params_") and row[k]}}
        for row in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="mr")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--dev-rows", type=int, default=500)
    parser.add_argument(
        "--trials", type=int, default=50, help="at most this many trials (the time budget ends it first)"
    )
    parser.add_argument("--time-budget", default="8m")
    parser.add_argument("--test-rows", type=int, default=0, help="score on the first N rows of test.tsv (0: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trainer", action="store_true", help="also Trainer.hyperparameter_search, same trials")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bertkit-bench-tune"))
    parser.add_argument("--name", default="", help="results file name (default tune-SET)")
    args = parser.parse_args()
    require_data(SETS[args.set][0] / "train.tsv")
    work = args.work / args.set
    work.mkdir(parents=True, exist_ok=True)
    files = split_set(args.set, work, args.rows, args.dev_rows, args.test_rows)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "setup": {
            "model": "all-MiniLM-L6-v2",
            "set": args.set,
            "train": f"train.tsv rows 1-{args.rows}",
            "search_on": f"{SETS[args.set][4]}.tsv, {args.dev_rows} rows",
            "confirmation_on": f"the search split and test.tsv ({args.test_rows or 'all'} rows)",
            "fixed": FIXED,
            "time_budget": args.time_budget,
            "seeds": args.seeds,
        },
    }
    name = args.name or f"tune-{args.set}"
    results["bertkit"] = bertkit_search(args.set, files, work, args)
    save_results(name, results)
    print(json.dumps(results["bertkit"]["study"]["confirmation"], indent=2))
    if args.trainer:
        finished = sum(results["bertkit"]["study"]["trials"].get(s, 0) for s in ("complete", "pruned", "fail"))
        seeds = [FIXED["seed"] + offset for offset in range(1, args.seeds + 1)]
        results["trainer"] = trainer_search(args.set, files, work, finished, seeds)
        print(json.dumps({k: v for k, v in results["trainer"].items()}, indent=2))
    print(save_results(name, results))


if __name__ == "__main__":
    main()
