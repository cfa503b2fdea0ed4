"""The export's self-check: an ONNX graph against the PyTorch model it came from, on the same inputs.

fp32 graphs must give PyTorch's outputs (ATOL + RTOL * |x| on every value). An int8 graph is judged
as users see it, on decoded predictions:

- with a labelled --check-inputs file (the format `evaluate` reads): the task's own main metric
  (accuracy, micro-F1, Spearman, entity F1, SQuAD F1) may fall by at most --max-metric-drop points;
- otherwise: agreement with PyTorch (`Task.agreement`: labels, label sets, scores, word tags, answer F1)
  of at least --min-agreement, counted only on inputs PyTorch decides clearly. An input on the decision
  boundary flips under any rounding, and flipping it costs nothing a user would notice; "clearly" is a
  margin of at least --check-margin between PyTorch's top probability and the runner-up (see
  `decision_margins`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bertkit.deploy.onnx_runner import OnnxRunner
from bertkit.errors import BertkitError
from bertkit.inference import Finetuned

ATOL, RTOL = 1e-4, 1e-3  # fp32: |onnx - torch| <= ATOL + RTOL * |torch| for every output value
PERCENT_METRICS = ("f1", "exact_match")  # SQuAD's metrics are already points (0-100); the others are 0-1
BATCH = 16

# Inputs for the self-check: short and long, plain and punctuated, so padding and length vary.
CHECK_TEXTS = [
    "the film was a delight from start to finish",
    "a dull, lifeless and overlong story.",
    "Anna Berg moved from Oslo to Paris in 2019 and works for the city library.",
    "great",
    "I would not recommend this product to anyone; it broke after two days of use.",
    "The quick brown fox jumps over the lazy dog near the river bank every morning.",
    "honestly, the service was slow but the food made up for it",
    "What a waste of time!",
    "Tom Hill lives in Lima and has a parrot called Pepper.",
    "the screen is bright, the battery lasts all day and the price is fair",
    "no",
    "It rained in London on Monday, so the match between Leeds and York was moved to Friday evening.",
]


def check_texts() -> list[str]:
    """The check texts alone and every ordered pair of them joined (144 inputs)."""
    joined = [f"{a} {b}" for a in CHECK_TEXTS for b in CHECK_TEXTS if a != b]
    return CHECK_TEXTS + joined


def check_records(task) -> list[dict]:
    """The built-in check inputs, shaped as the task's predict input records."""
    texts = check_texts()
    return [task.input_record(i, text, texts[(i + 1) % len(texts)]) for i, text in enumerate(texts)]


@dataclass
class CheckInputs:
    examples: list
    features: list[dict]
    pad_token_id: int
    labelled: bool = False


def read_check_inputs(finetuned: Finetuned, max_length: int, given: Path | None) -> CheckInputs:
    """Encode the check inputs (--check-inputs, else the built-in records) with the task's own reader and
    encoder, as predict would. A given file that reads as labelled data (evaluate's format) is kept with
    its labels, so the int8 check can compare the task's metric."""
    task, options = finetuned.task, finetuned.options
    labelled = False
    with tempfile.TemporaryDirectory(prefix="bertkit-check-") as folder:
        path = Path(folder) / "check.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in check_records(task)), encoding="utf-8")
        if given is not None:
            try:
                examples, labelled = task.read(given, options, labelled=True), True
            except BertkitError:  # no labels in it: predict's input format
                pass
        if not labelled:
            examples = task.read(given or path, options, labelled=False)
    if labelled:
        task.check_labels(examples, finetuned.labels)
    max_length = max_length or finetuned.info.get("max_length", 512)
    features, _ = task.encode(examples, finetuned.tokenizer, max_length, None, options)
    return CheckInputs(examples, features, finetuned.tokenizer.pad_token_id or 0, labelled)


@dataclass
class Reference:
    """PyTorch's outputs and decoded predictions on the check inputs, computed once for every graph checked."""

    finetuned: Finetuned
    check: CheckInputs
    model_name: str
    outputs: dict = field(init=False)
    predictions: list = field(init=False)

    def __post_init__(self):
        self.outputs = self.run(self.finetuned.model)
        self.predictions = self.decode(self.outputs)

    def run(self, model, features: list[dict] | None = None) -> dict:
        finetuned, check = self.finetuned, self.check
        features = check.features if features is None else features
        return dict(finetuned.engine.run_model(model, features, BATCH, check.pad_token_id, finetuned.task.outputs))

    def decode(self, outputs: dict) -> list[dict]:
        finetuned = self.finetuned
        return finetuned.task.decode(
            self.check.examples, self.check.features, iter(outputs.items()), finetuned.labels, finetuned.options
        )

    def deviation(self, path: Path, sample: int) -> float:
        """Mean absolute output difference of the graph on the first `sample` features (how much it strays)."""
        features = self.check.features[:sample]
        got = self.run(OnnxRunner(path, None, threads=0), features)
        return float(np.mean([np.mean(np.abs(got[i][n] - self.outputs[i][n])) for i in got for n in got[i]]))

    def check_fp32(self, path: Path) -> dict:
        """The fp32 graph's report; raises if any output value strays beyond the tolerance."""
        exported = self.run(OnnxRunner(path, None, threads=0))
        worst, largest = differences(self.outputs, exported)
        if worst > ATOL:
            raise BertkitError(
                f"{self.model_name}: the ONNX model's outputs differ from PyTorch by {worst:.2g} (tolerance {ATOL} + "
                f"{RTOL} x |value|) on the check inputs; nothing was written: report this model's type"
            )
        predictions = self.decode(exported)
        return {"inputs": len(self.check.examples), "max_abs_difference": largest, **self.agreement(predictions)}

    def judge_int8(self, path: Path, rule: Int8Rule) -> dict:
        """The int8 graph's report; "passed" says whether it meets `rule` (see the module docstring)."""
        exported = self.run(OnnxRunner(path, None, threads=0))
        predictions = self.decode(exported)
        report = {"inputs": len(self.check.examples), "max_abs_difference": differences(self.outputs, exported)[1]}
        report.update(self.agreement(predictions))
        if self.check.labelled:
            report.update(self.metric_drop(predictions))
            report["passed"] = report["metric_drop_points"] <= rule.max_metric_drop
            return report
        confident = self.agreement(predictions, rule.margin)
        report.update({f"clear_{key}": value for key, value in confident.items() if key != "measure"})
        report.update(margin=rule.margin, passed=confident["agreement"] >= rule.min_agreement)
        return report

    def agreement(self, predictions: list[dict], margin: float | None = None) -> dict:
        """`Task.agreement` on every input, or (with `margin`) only on what PyTorch decides by that margin."""
        reference, other = self.predictions, predictions
        if margin is not None:
            reference, other = clear_of_boundary(reference, other, margin, self.threshold)
        return self.finetuned.task.agreement(reference, other)

    @property
    def threshold(self) -> float:
        return getattr(self.finetuned.options, "threshold", 0.5)

    def metric_drop(self, predictions: list[dict]) -> dict:
        finetuned, examples = self.finetuned, self.check.examples
        name = finetuned.task.main_metric(finetuned.labels)
        before, after = (
            float(finetuned.task.metrics(examples, p, finetuned.labels)[name]) for p in (self.predictions, predictions)
        )
        scale = 1.0 if name in PERCENT_METRICS else 100.0
        return {
            "metric": name,
            "metric_pytorch": before,
            "metric_onnx": after,
            "metric_drop_points": round(scale * (before - after), 4),
        }


@dataclass
class Int8Rule:
    max_metric_drop: float  # points of the main metric (labelled check inputs)
    min_agreement: float  # share agreeing on inputs clear of the boundary (unlabelled)
    margin: float  # what "clear of the boundary" means: top probability minus the runner-up

    def describe(self, labelled: bool) -> str:
        if labelled:
            return f"at most {self.max_metric_drop} points of the main metric lost (--max-metric-drop)"
        return (
            f"{self.min_agreement:.1%} agreement (--min-agreement) on inputs PyTorch decides by a margin of "
            f"{self.margin} (--check-margin)"
        )


def differences(reference: dict, exported: dict) -> tuple[float, float]:
    """(the worst excess over RTOL * |x|, the largest absolute difference) over every output value."""
    worst, largest = 0.0, 0.0
    for index, outputs in reference.items():
        for name, expected in outputs.items():
            difference = np.abs(exported[index][name] - expected)
            worst = max(worst, float(np.max(difference - RTOL * np.abs(expected))))
            largest = max(largest, float(np.max(difference)))
    return worst, largest


def decision_margins(prediction: dict, threshold: float = 0.5) -> float | list[float] | None:
    """How clearly a decoded prediction is decided, 0 (a tie) to 1, read from the probabilities predict
    reports: a label's top probability minus the runner-up; a label set's distance of the nearest
    probability to the threshold, doubled (so two labels at 0.5 read as a binary classifier would);
    a tagged word's 2p - 1 for its tag's probability p (the runner-up has at most 1 - p); an answer's
    n-best probability minus the next one's. Per word for tagging (a list); None for regression (no
    boundary: every score is compared)."""
    probabilities = prediction.get("probabilities")
    if "nbest" in prediction:
        best = sorted((entry["probability"] for entry in prediction["nbest"]), reverse=True) + [0.0, 0.0]
        return best[0] - best[1]
    if "tags" in prediction and probabilities is not None:
        return [2 * p - 1 for p in probabilities]
    if "labels" in prediction and probabilities:
        return 2 * min(abs(p - threshold) for p in probabilities.values())
    if "label" in prediction and probabilities:
        top = sorted(probabilities.values(), reverse=True) + [0.0]
        return top[0] - top[1]
    return None


def clear_of_boundary(reference: list[dict], other: list[dict], margin: float, threshold: float):
    """The prediction pairs (words, for tagging) that the reference decides by at least `margin`."""
    kept_reference, kept_other = [], []
    for a, b in zip(reference, other):
        margins = decision_margins(a, threshold)
        if isinstance(margins, list):  # per word: keep the clear words of every sentence
            clear = [i for i, value in enumerate(margins) if value >= margin]
            kept_reference.append({"tags": [a["tags"][i] for i in clear]})
            kept_other.append({"tags": [b["tags"][i] for i in clear]})
        elif margins is None or margins >= margin:
            kept_reference.append(a)
            kept_other.append(b)
    return kept_reference, kept_other
