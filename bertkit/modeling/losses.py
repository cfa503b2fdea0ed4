"""Training losses with per-example weights, computed from the model's logits outside the transformers head.

transformers' sequence heads compute an unweighted mean loss. Two things need each example weighted:
``--long-inputs windows`` (each window carries ``loss_weight`` = 1 / its text's windows, so every text counts
once) and ``--class-weights`` (a weight per label, or per label's positives in multi-label). When a run needs
either, finetune hands the engine a `WeightedLoss`: the engine calls the model without the targets and this
computes the loss the head would have, weighted. Otherwise the head's own loss trains, unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bertkit.errors import BertkitError

SINGLE, MULTI = "single_label_classification", "multi_label_classification"  # else regression


class WeightedLoss:
    """The head's loss per example (cross-entropy, binary cross-entropy over the labels, squared error),
    times its class weight and its feature's `loss_weight`, averaged over the batch.

    `window_scale` (1 / the mean `loss_weight` of the training features) keeps the average weight at 1, so the
    learning rate means what it does without weights; balanced class weights average 1 over the examples too.
    """

    def __init__(
        self,
        problem_type: str,
        class_weights: list[float] | None = None,
        positive_weights: list[float] | None = None,
        window_scale: float = 1.0,
    ):
        self.problem_type = problem_type
        self.class_weights = torch.tensor(class_weights, dtype=torch.float) if class_weights is not None else None
        self.positive_weights = (
            torch.tensor(positive_weights, dtype=torch.float) if positive_weights is not None else None
        )
        self.window_scale = window_scale

    def __call__(self, output, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, labels = output["logits"].float(), batch["labels"]
        if self.problem_type == SINGLE:
            losses = F.cross_entropy(logits, labels, reduction="none")
            if self.class_weights is not None:
                losses = losses * self.class_weights.to(logits.device)[labels]
        elif self.problem_type == MULTI:
            positive = self.positive_weights.to(logits.device) if self.positive_weights is not None else None
            losses = F.binary_cross_entropy_with_logits(
                logits, labels.float(), pos_weight=positive, reduction="none"
            ).mean(dim=1)
        else:
            losses = F.mse_loss(logits.squeeze(-1), labels.float(), reduction="none")
        if "loss_weight" in batch:
            losses = losses * batch["loss_weight"].to(losses.dtype) * self.window_scale
        return losses.mean()


def training_loss(problem_type: str, class_weights: str, labels: list[str], features) -> WeightedLoss | None:
    """The weighted loss a run needs (`class_weights`: none, balanced or a file), or None: the head's own loss."""
    windows = "loss_weight" in column_names(features)
    if class_weights == "none" and not windows:
        return None
    weights = column(features, "loss_weight") if windows else np.ones(len(features))
    scale = float(1 / weights.mean()) if windows else 1.0
    if class_weights == "none":
        return WeightedLoss(problem_type, window_scale=scale)
    if problem_type not in (SINGLE, MULTI):
        raise BertkitError("--class-weights applies to classification, nli and multilabel; drop it for this task")
    targets = column(features, "labels")
    if problem_type == SINGLE:  # examples per label (a text's windows together count once)
        counts = np.bincount(targets.astype(int), weights=weights, minlength=len(labels))
        balanced = counts.sum() / (len(labels) * np.maximum(counts, 1e-9))
    else:  # each label's negatives over its positives
        positives = (targets * weights[:, None]).sum(axis=0)
        balanced = (weights.sum() - positives) / np.maximum(positives, 1e-9)
    if class_weights == "balanced":
        per_label = balanced.tolist()
    else:
        given = read_label_weights(Path(class_weights), labels)
        per_label = [given.get(label, 1.0) for label in labels]
    if problem_type == SINGLE:
        return WeightedLoss(problem_type, class_weights=per_label, window_scale=scale)
    return WeightedLoss(problem_type, positive_weights=per_label, window_scale=scale)


def read_label_weights(path: Path, labels: list[str]) -> dict[str, float]:
    """A weight per label from a JSON object or lines of `label<TAB or comma>weight`; unlisted labels weigh 1."""
    if not path.is_file():
        raise BertkitError(
            f"--class-weights {path}: no such file; give none, balanced or a file of label weights "
            "(a JSON object, or a label and its weight per line)"
        )
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        try:
            entries = [(f"{path} key '{k}'", str(k), v) for k, v in json.loads(text).items()]
        except (json.JSONDecodeError, AttributeError):
            raise BertkitError(f"{path}: not a valid JSON object of label weights") from None
    else:
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                separator = "\t" if "\t" in line else "," if "," in line else None
                parts = line.rsplit(separator, 1)
                if len(parts) != 2:
                    raise BertkitError(f"{path} line {number}: give a label and its weight, e.g. 'pos<TAB>2.0'")
                entries.append((f"{path} line {number}", parts[0].strip(), parts[1].strip()))
    known, weights = set(labels), {}
    for where, label, value in entries:
        if label not in known:
            raise BertkitError(
                f"{where}: label '{label}' is not a label of the training data (labels: {', '.join(labels)}); "
                "fix the --class-weights file"
            )
        try:
            weight = float(value)
        except (TypeError, ValueError):
            weight = float("nan")
        if not weight > 0 or not np.isfinite(weight):
            raise BertkitError(f"{where}: the weight of '{label}' is '{value}'; give a positive number")
        weights[label] = weight
    return weights


def column_names(features) -> list[str]:
    """The keys of the training features (an Arrow dataset's columns, or the first feature's keys)."""
    names = getattr(features, "column_names", None)
    if names is not None:
        return list(names)
    return list(features[0]) if len(features) else []


def column(features, name: str) -> np.ndarray:
    """One key of every feature as an array (read as one Arrow column from an encoded cache)."""
    if getattr(features, "column_names", None) is not None:
        return np.asarray(features[name])
    return np.asarray([feature[name] for feature in features])
