"""``bertkit distill``'s settings: fine-tuning's, plus the teacher, the student and the soft-target loss."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bertkit.errors import BertkitError
from bertkit.settings.commands import FinetuneSettings
from bertkit.settings.options import opt

STUDENT_SIZES = ("tiny", "mini", "small")  # bertkit.modeling.scratch.SIZES, randomly initialised


@dataclass
class DistillSettings(FinetuneSettings):
    """``bertkit distill``: train a smaller student on a fine-tuned teacher's soft outputs."""

    teacher: str = opt(
        "", "Fine-tuned teacher model directory (runs/NAME/model): classification, nli, regression or multilabel."
    )
    student: str = opt(
        "layers-of-teacher",
        "layers-of-teacher: the teacher with every other encoder layer (as DistilBERT); tiny, mini, small: "
        "a new BERT of that size (2x128, 4x256, 4x512) on the teacher's vocabulary; or a model directory "
        "with the teacher's tokenizer.",
    )
    unlabeled: Optional[Path] = opt(
        None, "Extra unlabelled inputs (any predict input file) the student learns from the teacher's outputs alone."
    )
    temperature: float = opt(2.0, "Softens both models' outputs in the soft-target loss (1: as they are).")
    alpha: float = opt(
        0.5, "Weight of the teacher's soft targets; 1 - alpha goes to the gold labels (unlabelled inputs: all soft)."
    )

    hidden_weight: float = opt(
        0.0,
        "Weight of matching the teacher's hidden states: each student layer's [CLS] state learns its evenly "
        "mapped teacher layer's, as unit vectors, through a learned projection where the widths differ. 0 (off) "
        "by default: on MR it cost both measured students accuracy (BENCHMARKS.md).",
    )

    def validate(self) -> None:
        if not self.teacher:
            raise BertkitError("no teacher given; pass --teacher DIR (the model/ folder of a fine-tuning run)")
        self.model = self.model or self.teacher  # finetune's checks read --model; the student comes from --student
        super().validate()
        if self.temperature <= 0:
            raise BertkitError(f"--temperature is {self.temperature}; give a number above 0")
        if self.hidden_weight < 0:
            raise BertkitError(f"--hidden-weight is {self.hidden_weight}; give 0 (off) or a positive weight")
        if not 0 <= self.alpha <= 1:
            raise BertkitError(f"--alpha is {self.alpha}; give a weight from 0 to 1")
        if self.strategy != "full":
            raise BertkitError(f"--strategy {self.strategy}: a student trains all its weights; leave --strategy full")
