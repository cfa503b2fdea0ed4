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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from bertkit.data.squad import QAExample, read_qa
from bertkit.data.writers import write_json, write_records
from bertkit.metrics.squad import best_null_threshold, squad_metrics
from bertkit.report import console
from bertkit.tasks.qa_decode import combine, window_candidates, with_threshold
from bertkit.tasks.qa_windows import build_windows

NULL_ODDS_FILE = "null_odds.json"


@dataclass
class QATask:
    name: str = "qa"
    main_metric: str = "f1"
    auto_model: str = "AutoModelForQuestionAnswering"
    default_max_length: int = 384

    def read(self, path, settings, labelled: bool) -> list[QAExample]:
        """SQuAD json or jsonl; bad answers are errors unless --skip-bad-examples (then counted)."""
        qa_file = read_qa(path, labelled, skip_bad=bool(getattr(settings, "skip_bad_examples", False)))
        if qa_file.skipped:
            console.print(f"{path}: skipped {qa_file.skipped} question(s) whose answer is not at its answer_start")
        return qa_file.examples

    def configure(self, settings, train_examples: list[QAExample]) -> None:
        """`--allow-no-answer auto` becomes yes when the training file has unanswerable questions."""
        if settings.allow_no_answer == "auto":
            settings.allow_no_answer = "yes" if any(e.impossible for e in train_examples) else "no"

    def label_names(self, examples: list[QAExample]) -> list[str]:
        return []  # the head is always the two start/end vectors

    def check_labels(self, examples: list[QAExample], labels: list[str]) -> None:
        return None

    def encode(self, examples: list[QAExample], tokenizer, max_length: int, label2id, settings) -> tuple[list[dict], int]:
        """Windows of every example; start/end positions when the examples carry answers."""
        labelled = label2id is not None or any(e.answers or e.impossible for e in examples)
        features = build_windows(examples, tokenizer, max_length, settings.doc_stride, settings.max_query_length,
                                 with_positions=labelled)
        return features, 0  # long passages are windowed, never truncated

    def decode(self, examples: list[QAExample], features: list[dict], outputs: Iterable[tuple[int, dict]],
               labels, settings) -> list[dict]:
        """Answer each question once its last window has come through; logits are dropped window by window."""
        windows_left = Counter(feature["index"] for feature in features)
        pending: dict[int, list] = defaultdict(list)
        predictions: list[dict | None] = [None] * len(examples)
        allow_null = settings.allow_no_answer == "yes"
        for feature_number, output in outputs:
            feature = features[feature_number]
            index = feature["index"]
            pending[index].append(window_candidates(
                output["start_logits"], output["end_logits"], feature["_passage_start"], feature["_offsets"],
                feature["_max_context"], settings.n_best, settings.max_answer_length))
            windows_left[index] -= 1
            if windows_left[index] == 0:
                predictions[index] = combine(examples[index].context, pending.pop(index), settings.n_best, allow_null,
                                             settings.null_threshold)
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
            threshold, best_f1 = best_null_threshold(golds, [p["span"]["text"] for p in predictions],
                                                     [p["null_odds"] for p in predictions])
            metrics.update(best_f1=best_f1, best_null_threshold=threshold)
        return metrics

    def tuned_settings(self, metrics: dict, settings) -> dict:
        """With --tune-null-threshold, the F1-best threshold is saved with the model for predict."""
        if getattr(settings, "tune_null_threshold", False) and "best_null_threshold" in metrics:
            return {"null_threshold": metrics["best_null_threshold"]}
        return {}

    def write_outputs(self, directory: Path, examples: list[QAExample], predictions: list[dict], settings,
                      tuned: dict) -> None:
        """predictions.json ({id: answer}, what the official scripts read), nbest.jsonl, and for v2.0 null_odds.json."""
        threshold = tuned.get("null_threshold", settings.null_threshold)
        final = [with_threshold(p, threshold) for p in predictions]
        write_json(directory / "predictions.json", {e.id: p["answer"] for e, p in zip(examples, final)})
        write_records(directory / "nbest.jsonl", ({"id": e.id, "nbest": [_rounded(entry) for entry in p["nbest"]]}
                                                  for e, p in zip(examples, final)))
        if settings.allow_no_answer == "yes":
            write_json(directory / NULL_ODDS_FILE, {e.id: _finite(p["null_odds"]) for e, p in zip(examples, final)})

    def prediction_record(self, example: QAExample, prediction: dict) -> dict:
        return {"id": example.id, "answer": prediction["answer"], "score": _finite(prediction["score"]),
                "start": prediction["start"], "end": prediction["end"]}


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a score that does not exist is written as null."""
    return round(value, 6) if value is not None and math.isfinite(value) else None


def _rounded(entry: dict) -> dict:
    return {"text": entry["text"], "score": _finite(entry["score"]), "probability": round(entry["probability"], 6),
            "start": entry["start"], "end": entry["end"]}


QA = QATask()
