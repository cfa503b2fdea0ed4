"""`bertkit tune` against finetune's defaults and against `Trainer.hyperparameter_search(backend="optuna")`.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/tune.py --set sick-nli --time-budget 8m --seeds 3 --trainer

all-MiniLM-L6-v2 on the first --rows training rows of a set: MR (searched on the next --dev-rows rows of its
train.tsv, a dev split the test never sees), SICK NLI or SICK relatedness (searched on the first --dev-rows of
dev.tsv), or UNER English-EWT entity tagging (which ships dev and test only: trained on the first 1,500
sentences of dev.conll, searched on the next --dev-rows); the confirmation retrains the best settings and
finetune's defaults with --seeds fresh seeds (43, 44, ...; the search used 42) and scores them on the search
split and on the test file. Every trial and confirmation
run trains 1 epoch (`--epochs 1` is a fixed setting, so "defaults" means finetune's defaults at 1 epoch), max
length 128, evaluation every 25 steps (pruning and the best checkpoint). A third side, full_defaults, runs
`bertkit finetune` with only its required options (its own 3 epochs) and the same seeds: what no tuning gives.
--search-epochs leaves epochs to the search (tune's default space: 1-5 with early stopping), as a user's
`bertkit tune` does; the defaults side then trains finetune's own 3 epochs.

--trainer then runs the Trainer's own Optuna search in the same process: the part of bertkit's space the
Trainer has (learning rate, batch size, warm-up, weight decay; the same ranges), as many trials as bertkit's
search finished, TPE seeded 42, no time limit, each trial 1 epoch scored on the same split with the same
metric, every example padded to 128 as run_glue.py does by default (tagging: run_ner.py's first-piece labels and
dynamic padding); its best settings are retrained with the confirmation seeds and scored on both splits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import DATA, encoded, minilm_dir, read_rows, require_data, save_results, timer
from tagging import first_piece_dataset, first_piece_metrics

# name: (folder, bertkit task, text columns, gold column, search split: "train" (after --rows) or "dev")
SETS = {
    # UNER ships dev and test only: train on the first --rows sentences of dev.conll, search on the next ones
    "uner": (DATA / "tagging" / "uner-english-ewt", "tagging", None, None, "train"),
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
SPLITS = ("train", "eval", "test")  # "eval": the search split, as `bertkit tune --eval`


def split_set(name: str, work: Path, rows: int, dev_rows: int, test_rows: int) -> tuple[Path, Path, Path]:
    """The training rows, the search split and the test file of a set, as files bertkit reads (tsv, or CoNLL
    sentences for tagging)."""
    folder, task, *_, search = SETS[name]
    if task == "tagging":
        header, suffix, separator = "", ".conll", "\n\n"
        body = (folder / "dev.conll").read_text(encoding="utf-8").strip("\n").split(separator)
        test_body = (folder / "test.conll").read_text(encoding="utf-8").strip("\n").split(separator)
        held = body[rows : rows + dev_rows]
    else:
        suffix, separator = ".tsv", ""
        lines = (folder / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        header, body = lines[0], lines[1:]
        test_body = (folder / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[1:]
        if search == "train":
            held = body[rows : rows + dev_rows]
        else:
            held = (folder / "dev.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[1 : dev_rows + 1]
    files = tuple(work / f"{split}{suffix}" for split in SPLITS)
    for path, records in zip(files, (body[:rows], held, test_body[:test_rows] if test_rows else test_body)):
        path.write_text(header + separator.join(records) + ("\n" if separator else ""), encoding="utf-8")
    return files


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


def full_defaults(name: str, files: tuple[Path, Path, Path], work: Path, metric: str, seeds: list[int]) -> dict:
    """`bertkit finetune` given only what it requires (its own 3 epochs, not the search's fixed 1), with the
    confirmation seeds: what a user gets without tuning, scored as the confirmation scores (best on the search
    split, that model on test)."""
    from types import SimpleNamespace

    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings
    from bertkit.tune.report import run_scores, summarise

    train, dev, test = files
    scores: dict[str, list[float]] = {}
    result: dict = {"epochs": FinetuneSettings.epochs}
    with timer(result, "seconds"):
        for seed in seeds:
            run = work / f"defaults-seed{seed}"
            required = {"task": SETS[name][1], "model": str(minilm_dir()), "train": train, "output": run}
            finetune(FinetuneSettings(**required, eval=dev, seed=seed, overwrite=True))
            for split, score in run_scores(SimpleNamespace(test=test), run, metric).items():
                scores.setdefault(split, []).append(score)
    return {**result, **{split: summarise(runs) for split, runs in scores.items()}}


class SequencePeer:
    """The Trainer's side of a sequence set: rows encoded as run_glue.py does (every example padded to 128), the
    head, and the set's metric (bertkit's main metric for the task) on raw logits."""

    def __init__(self, name: str, files: tuple[Path, Path, Path]):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, default_data_collator

        self.name, self.regression = name, SETS[name][1] == "regression"
        self.metric = "spearman" if self.regression else "accuracy"
        train, dev, test = (read_rows(path) for path in files)
        column = SETS[name][3]
        if self.regression:
            self.head: dict = {"num_labels": 1, "problem_type": "regression"}
            self.gold = {split: [float(r[column]) for r in rows] for split, rows in zip(SPLITS, (train, dev, test))}
        else:
            label2id = {label: i for i, label in enumerate(sorted({r[column] for r in train}))}
            self.head = {"num_labels": len(label2id), "id2label": {i: x for x, i in label2id.items()}}
            self.gold = {split: [label2id[r[column]] for r in rows] for split, rows in zip(SPLITS, (train, dev, test))}
        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
        first, second = SETS[name][2]
        self.data = {
            split: encoded(
                tokenizer,
                ([r[first] for r in rows], [r[second] for r in rows] if second else None),
                self.gold[split],
                "max_length",
                FIXED["max_length"],
            )
            for split, rows in zip(SPLITS, (train, dev, test))
        }
        self.collator = default_data_collator
        self.model = lambda *_: AutoModelForSequenceClassification.from_pretrained(minilm_dir(), **self.head)

    def score(self, split: str, logits) -> float:
        import numpy as np
        from scipy.stats import spearmanr

        if self.regression:
            return float(spearmanr(np.asarray(logits).reshape(-1), self.gold[split]).correlation)
        return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(self.gold[split])))


class TaggingPeer:
    """The Trainer's side of a tagging set, as run_ner.py sets it up: labels on each word's first piece, dynamic
    padding; scored by bertkit's word-level metrics on the words that kept a first piece (entity F1 here)."""

    def __init__(self, name: str, files: tuple[Path, Path, Path]):
        from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification

        from bertkit.data.conll import read_tagged
        from bertkit.metrics.tagging import main_metric_for

        sentences = {split: read_tagged(path, True) for split, path in zip(SPLITS, files)}
        self.labels = sorted({tag for rows in sentences.values() for s in rows for tag in s.tags})
        self.metric = main_metric_for(self.labels)
        label2id = {label: i for i, label in enumerate(self.labels)}
        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
        self.data = {split: first_piece_dataset(tokenizer, rows, label2id) for split, rows in sentences.items()}
        self.collator = DataCollatorForTokenClassification(tokenizer)
        head = {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)), "label2id": label2id}
        self.model = lambda *_: AutoModelForTokenClassification.from_pretrained(minilm_dir(), **head)

    def score(self, split: str, logits) -> float:
        return float(first_piece_metrics(logits, self.data[split].labels, self.labels)[self.metric])


def trainer_search(name: str, files: tuple[Path, Path, Path], work: Path, trials: int, seeds: list[int]) -> dict:
    """Trainer.hyperparameter_search(backend="optuna") over the shared part of the space, then its best settings
    retrained with the confirmation seeds and scored on the search split and on test."""
    import optuna
    from transformers import Trainer, TrainingArguments

    peer = (TaggingPeer if SETS[name][1] == "tagging" else SequencePeer)(name, files)

    def space(trial) -> dict:
        return {
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 2e-4, log=True),
            "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [16, 32]),
            # transformers 5: a float under 1 in warmup_steps is the share of the steps (warmup_ratio is gone)
            "warmup_steps": trial.suggest_float("warmup_ratio", 0.0, 0.2),
            "weight_decay": trial.suggest_float("weight_decay", 0.0, 0.1),
        }

    def trainer(seed: int, search: bool, **hyper) -> Trainer:
        # The search casts each value to the type of the field's current value: warm-up must start as a float
        hyper["warmup_steps"] = float(hyper.pop("warmup_ratio", 0.0))
        arguments = TrainingArguments(
            output_dir=str(work / "trainer-search"),
            num_train_epochs=FIXED["epochs"],
            per_device_eval_batch_size=64,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            seed=seed,
            disable_tqdm=True,
            logging_strategy="no",
            **hyper,
        )
        return Trainer(
            model_init=peer.model,
            args=arguments,
            train_dataset=peer.data["train"],
            eval_dataset=peer.data["eval"],
            data_collator=peer.collator,
            # the search scores the eval split; a confirmation run scores each split itself after predict
            compute_metrics=(lambda output: {peer.metric: peer.score("eval", output.predictions)}) if search else None,
        )

    result: dict = {"metric": peer.metric, "trials": trials}
    with timer(result, "search_seconds"):
        best = trainer(FIXED["seed"], True).hyperparameter_search(
            hp_space=space,
            compute_objective=lambda metrics: metrics[f"eval_{peer.metric}"],
            n_trials=trials,
            direction="maximize",
            backend="optuna",
            sampler=optuna.samplers.TPESampler(seed=FIXED["seed"]),
        )
    result.update(best_value=best.objective, best_settings=best.hyperparameters)
    runs = []
    with timer(result, "confirmation_seconds"):
        for seed in seeds:
            confirmed = trainer(seed, False, **best.hyperparameters)
            confirmed.train()
            runs.append({split: peer.score(split, confirmed.predict(peer.data[split])[0]) for split in SPLITS[1:]})
    for split in SPLITS[1:]:
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
    parser.add_argument("--rows", type=int, help="training rows (default 2000; uner: 1500 of its 2,000)")
    parser.add_argument("--dev-rows", type=int, default=500)
    parser.add_argument(
        "--trials", type=int, default=50, help="at most this many trials (the time budget ends it first)"
    )
    parser.add_argument("--time-budget", default="8m")
    parser.add_argument("--test-rows", type=int, default=0, help="score on the first N rows of test.tsv (0: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trainer", action="store_true", help="also Trainer.hyperparameter_search, same trials")
    parser.add_argument("--no-full-defaults", action="store_true", help="skip the untuned `finetune` side")
    parser.add_argument(
        "--search-epochs",
        action="store_true",
        help="search epochs too (tune's default space: 1-5, early stopping) instead of fixing 1; the defaults side "
        "then trains finetune's own 3 epochs (no --trainer: its space has no epochs)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/bertkit-bench-tune"))
    parser.add_argument("--name", default="", help="results file name (default tune-SET)")
    args = parser.parse_args()
    if args.search_epochs:
        del FIXED["epochs"]
        if args.trainer:
            parser.error("--search-epochs runs bertkit's side only")
    require_data(SETS[args.set][0])
    work = args.work / args.set
    work.mkdir(parents=True, exist_ok=True)
    args.rows = args.rows or (1500 if args.set == "uner" else 2000)
    files = split_set(args.set, work, args.rows, args.dev_rows, args.test_rows)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "setup": {
            "model": "all-MiniLM-L6-v2",
            "set": args.set,
            "train": f"{'dev.conll' if args.set == 'uner' else 'train.tsv'} rows 1-{args.rows}",
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
    seeds = [FIXED["seed"] + offset for offset in range(1, args.seeds + 1)]
    metric = results["bertkit"]["study"]["confirmation"]["metric"]
    if not args.no_full_defaults:
        results["full_defaults"] = full_defaults(args.set, files, work, metric, seeds)
        print(json.dumps(results["full_defaults"], indent=2))
        save_results(name, results)
    if args.trainer:
        finished = sum(results["bertkit"]["study"]["trials"].get(s, 0) for s in ("complete", "pruned", "fail"))
        results["trainer"] = trainer_search(args.set, files, work, finished, seeds)
        print(json.dumps({k: v for k, v in results["trainer"].items()}, indent=2))
    print(save_results(name, results))


if __name__ == "__main__":
    main()
