"""Extractive question answering (SQuAD v1.1 and v2.0): question + passage -> an answer span.

The input is ``[CLS] question [SEP] passage [SEP]``; ``BertForQuestionAnswering``'s
``qa_outputs`` layer holds the two learned vectors (start and end) that are dotted with every
token's output, and a softmax over positions gives where the answer starts and ends. Long
passages become overlapping windows (`qa_windows`); the logits of each window are reduced to
its n best spans as they arrive and questions are answered from those (`qa_decode`); the
metrics are SQuAD's official exact match and F1 (`bertkit.metrics.squad`).

    bertkit finetune --task qa --model MODEL_DIR --train train-v1.1.json --eval dev-v1.1.json --output runs/qa
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from bertkit.data.squad import QAExample, read_qa
from bertkit.data.writers import write_json, write_records
from bertkit.errors import BertkitError
from bertkit.metrics.squad import best_null_threshold, f1_score, squad_metrics
from bertkit.report import console
from bertkit.settings.options import opt
from bertkit.tasks.base import Task
from bertkit.tasks.qa_decode import combine, window_candidates, with_threshold
from bertkit.tasks.qa_windows import build_windows

NULL_ODDS_FILE = "null_odds.json"


@dataclass
class QAOptions:
    """QA's own flags; predict and evaluate take the saved (or tuned) ones unless given."""

    doc_stride: int = opt(128, "QA: passage tokens shared by consecutive windows of a long passage.", saved=True)
    max_query_length: int = opt(64, "QA: questions are cut to this many WordPieces.", saved=True)
    n_best: int = opt(20, "QA: how many best start and end positions (and answers) the search keeps.", saved=True)
    max_answer_length: int = opt(30, "QA: longest answer in WordPieces.", saved=True)
    allow_no_answer: str = opt(
        "auto",
        "QA (SQuAD v2.0): may the answer be 'no answer' ([CLS])? auto: yes when the "
        "training file has unanswerable questions.",
        choices=("auto", "yes", "no"),
        saved=True,
    )
    null_threshold: float = opt(
        0.0,
        "QA v2.0: answer 'no answer' when its score beats the best span by more than "
        "this (predict: the tuned or trained one).",
        saved=True,
    )
    tune_null_threshold: bool = opt(
        False,
        "QA v2.0: pick the null threshold that maximises F1 on --eval and save it with the model (predict uses it).",
        commands=("finetune",),
    )
    skip_bad_examples: bool = opt(
        False,
        "QA: skip (and count) questions whose answer is not at its answer_start, instead of stopping with an error.",
    )

    def __post_init__(self) -> None:
        for name in ("max_query_length", "n_best", "max_answer_length"):
            if getattr(self, name) < 1:
                raise BertkitError(f"--{name.replace('_', '-')} is {getattr(self, name)}; it must be at least 1")
        if self.doc_stride < 0:  # 0: windows that do not overlap
            raise BertkitError(f"--doc-stride is {self.doc_stride}; it cannot be negative")
        if self.allow_no_answer not in ("auto", "yes", "no"):
            raise BertkitError(f"--allow-no-answer is '{self.allow_no_answer}'; choose one of: auto, yes, no")


@dataclass
class QATask(Task):
    name: str = "qa"
    options_type: type = QAOptions
    auto_model: str = "AutoModelForQuestionAnswering"
    pipeline_tag: str = "question-answering"
    sequence_level: bool = False
    outputs = {"start_logits": True, "end_logits": True}
    default_max_length: int = 384

    def read(self, path: Path, options: QAOptions, labelled: bool) -> list[QAExample]:
        """SQuAD json or jsonl; bad answers are errors unless --skip-bad-examples (then counted)."""
        qa_file = read_qa(path, labelled, skip_bad=options.skip_bad_examples)
        if qa_file.skipped:
            console.print(f"{path}: skipped {qa_file.skipped} question(s) whose answer is not at its answer_start")
        return qa_file.examples

    def configure(self, options: QAOptions, max_length: int, train_examples: list[QAExample]) -> QAOptions:
        """`--allow-no-answer auto` becomes yes when the training file has unanswerable questions."""
        if options.allow_no_answer != "auto":
            return replace(options)
        return replace(options, allow_no_answer="yes" if any(e.impossible for e in train_examples) else "no")

    def main_metric(self, labels: list[str]) -> str:
        return "f1"

    def label_names(self, examples: list[QAExample]) -> list[str]:
        return []  # the head is always the two start/end vectors (the default head_config keeps it)

    def encode(
        self, examples: list[QAExample], tokenizer, max_length: int, label2id, options: QAOptions
    ) -> tuple[list[dict], int]:
        """Windows of every example; start/end positions when the examples carry answers."""
        labelled = label2id is not None or any(e.answers or e.impossible for e in examples)
        features = build_windows(
            examples, tokenizer, max_length, options.doc_stride, options.max_query_length, with_positions=labelled
        )
        return features, 0  # long passages are windowed, never truncated

    def decode(
        self,
        examples: list[QAExample],
        features: list[dict],
        outputs: Iterable[tuple[int, dict]],
        labels,
        options: QAOptions,
    ) -> list[dict]:
        """Answer each question once its last window has come through; logits are dropped window by window."""
        windows_left = Counter(feature["index"] for feature in features)
        pending: dict[int, list] = defaultdict(list)
        predictions: list[dict | None] = [None] * len(examples)
        allow_null = options.allow_no_answer == "yes"
        for feature_number, output in outputs:
            feature = features[feature_number]
            index = feature["index"]
            pending[index].append(
                window_candidates(
                    output["start_logits"],
                    output["end_logits"],
                    feature["_passage_start"],
                    feature["_offsets"],
                    feature["_max_context"],
                    options.n_best,
                    options.max_answer_length,
                )
            )
            windows_left[index] -= 1
            if windows_left[index] == 0:
                predictions[index] = combine(
                    examples[index].context, pending.pop(index), options.n_best, allow_null, options.null_threshold
                )
        missing = [examples[i].id for i, p in enumerate(predictions) if p is None]
        if missing:
            raise RuntimeError(f"no model output for questions {missing[:5]}")  # a bug, never a user error
        return predictions  # type: ignore[return-value]

    def metrics(self, examples: list[QAExample], predictions: list[dict], labels) -> dict:
        """Official EM/F1 (0-100); for SQuAD v2.0 data also HasAns/NoAns and the F1-best null threshold."""
        golds = [[answer.text for answer in e.answers] for e in examples]
        version_2 = any(e.impossible for e in examples)
        metrics = squad_metrics(golds, [p["answer"] for p in predictions], version_2)
        if version_2 and all(p["null_odds"] is not None for p in predictions):
            threshold, best_f1 = best_null_threshold(
                golds, [p["span"]["text"] for p in predictions], [p["null_odds"] for p in predictions]
            )
            metrics.update(best_f1=best_f1, best_null_threshold=threshold)
        return metrics

    def tuned_options(self, metrics: dict, options: QAOptions) -> dict:
        """With --tune-null-threshold, the F1-best threshold is saved with the model for predict."""
        if not (options.tune_null_threshold and "best_null_threshold" in metrics):
            return {}
        if metrics["best_f1"] <= metrics["no_ans_total"] / metrics["total"] * 100 + 1e-9:
            # No threshold beats answering nothing: say so, or the user finds every prediction empty.
            console.print(
                f"[yellow]warning:[/] the tuned null threshold answers no question of --eval: no span "
                f"beats 'no answer' there (F1 {metrics['best_f1']:.1f} = answering nothing; HasAns F1 at "
                f"threshold {options.null_threshold:g}: {metrics['has_ans_f1']:.1f}). The model has not "
                f"learned spans yet: train longer (--epochs) or on more answerable questions."
            )
        return {"null_threshold": metrics["best_null_threshold"]}

    def write_outputs(
        self, directory: Path, examples: list[QAExample], predictions: list[dict], options: QAOptions, tuned: dict
    ) -> None:
        """predictions.json ({id: answer}, what the official scripts read), nbest.jsonl, and for v2.0 null_odds.json."""
        threshold = tuned.get("null_threshold", options.null_threshold)
        final = [with_threshold(p, threshold) for p in predictions]
        write_json(directory / "predictions.json", {e.id: p["answer"] for e, p in zip(examples, final)})
        write_records(
            directory / "nbest.jsonl",
            ({"id": e.id, "nbest": [_rounded(entry) for entry in p["nbest"]]} for e, p in zip(examples, final)),
        )
        if options.allow_no_answer == "yes":
            write_json(directory / NULL_ODDS_FILE, {e.id: _finite(p["null_odds"]) for e, p in zip(examples, final)})

    def agreement(self, reference: list[dict], other: list[dict]) -> dict:
        """The mean SQuAD token F1 of the answers against the reference answers (as if those were the gold;
        1: identical, "no answer" agreeing with "no answer" counts 1), and the share of identical answers."""
        pairs = list(zip(reference, other))
        scores = [f1_score(b["answer"], a["answer"], version_2=True) for a, b in pairs]
        return {
            "agreement": sum(scores) / len(scores) if scores else 1.0,
            "measure": "mean answer F1 against PyTorch's answers",
            "compared": len(scores),
            "identical": sum(a["answer"] == b["answer"] for a, b in pairs) / len(pairs) if pairs else 1.0,
        }

    def input_record(self, number: int, text: str, other: str) -> dict:
        return {"id": f"check-{number}", "question": f"What about {text.split()[0]}?", "context": text}

    def prediction_record(self, example: QAExample, prediction: dict) -> dict:
        return {
            "id": example.id,
            "answer": prediction["answer"],
            "score": _finite(prediction["score"]),
            "start": prediction["start"],
            "end": prediction["end"],
        }


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a score that does not exist is written as null."""
    return round(value, 6) if value is not None and math.isfinite(value) else None


def _rounded(entry: dict) -> dict:
    return {
        "text": entry["text"],
        "score": _finite(entry["score"]),
        "probability": round(entry["probability"], 6),
        "start": entry["start"],
        "end": entry["end"],
    }


QA = QATask()
