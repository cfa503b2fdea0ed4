"""The settings of `bertkit pretrain` (the mechanism is `bertkit.settings.options`; shared settings in
`bertkit.settings.commands`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from bertkit.errors import BertkitError
from bertkit.settings.commands import TrainingSettings
from bertkit.settings.options import flag, opt

# The pretraining presets (`--recipe`); every value can still be set by a flag or a config key. "bert" is the
# paper's objective as bertkit always had it; "budget" follows what Cramming and MosaicBERT found matters when
# compute is short (measured here: BENCHMARKS.md, "Pretraining that pays off").
RECIPES: dict[str, dict[str, Any]] = {
    "bert": {
        "vocab_size": 30522,
        "learning_rate": 5e-4,
        "warmup_ratio": 0.1,
        "dropout": 0.1,
        "nsp": True,
        "mlm_probability": 0.15,
        "weight_decay": 0.01,
    },
    # weight decay 0.1 keeps the encoder's weights near the scale fine-tuning's learning rate is made for
    "budget": {
        "learning_rate": 1e-3,
        "warmup_ratio": 0.06,
        "dropout": 0.0,
        "nsp": False,
        "mlm_probability": 0.25,
        "weight_decay": 0.1,
    },
}
ATTENTION_STARTS = ("mimetic", "random")  # bertkit/modeling/starts.py
# Continuing a trained --model: the recipes' rates are for random weights, and at 1e-3 the first few hundred
# steps undo what the encoder knew (all-MiniLM-L6-v2, 5 minutes on movie reviews: MR 83.8 -> 80.0; at 1e-4
# 82.4; bench/results/electra.md, run 3).
CONTINUE_LEARNING_RATE = 1e-4
# Budget vocabulary by model size: the embedding matrix stays a modest share of the parameters, so the
# few steps a short budget buys go to the encoder, and each piece is seen often enough to be learned.
BUDGET_VOCAB = {"tiny": 4096, "mini": 8192, "small": 16384, "medium": 16384, "base": 32768, "large": 32768}


@dataclass
class PretrainSettings(TrainingSettings):
    """``bertkit pretrain``: masked LM (+ next-sentence prediction) on a raw text corpus."""

    # --- pretraining ---
    recipe: str = opt(
        "budget",
        "Preset of the settings marked 'by --recipe': budget (a useful encoder from minutes "
        "to hours: vocabulary sized to the model, no dropout, masked LM alone at 25%, higher "
        "learning rate) or bert (the BERT paper's objective: 15% masking, next-sentence "
        "prediction, 30,522 pieces, dropout 0.1). Flags and config keys override it.",
        choices=("budget", "bert"),
    )
    learning_rate: Optional[float] = opt(
        None,
        "Peak learning rate of AdamW (by --recipe: budget 1e-3, bert 5e-4; 1e-4 whatever "
        "the recipe when continuing a pretrained --model).",
        short="--lr",
    )
    warmup_ratio: Optional[float] = opt(
        None,
        "Share of the steps (or of --time-budget) over which the learning rate "
        "rises from 0 (by --recipe: budget 0.06, bert 0.1).",
    )
    weight_decay: Optional[float] = opt(
        None, "AdamW weight decay, not on biases and LayerNorm (by --recipe: budget 0.1, bert 0.01)."
    )
    dropout: Optional[float] = opt(
        None,
        "Dropout while pretraining (by --recipe: budget 0, bert 0.1); the saved "
        "model keeps BERT's 0.1 for fine-tuning.",
    )
    corpus: list[Path] = opt(
        [], "Text files, globs or directories; documents are separated by blank lines.", argument=True
    )
    model: str = opt(
        "",
        "Continue pretraining this model directory (domain adaptation) instead of starting from "
        "scratch; its tokenizer is used.",
        short="-m",
    )
    tokenizer: str = opt("", "Use the tokenizer of this directory instead of training a WordPiece tokenizer.")
    vocab_size: Optional[int] = opt(
        None,
        "Vocabulary size of the WordPiece tokenizer trained on the corpus (by "
        "--recipe: bert 30,522; budget sized to the model: 4,096 for tiny, 8,192 "
        "mini, 16,384 small and medium, 32,768 base and large).",
    )
    lowercase: bool = opt(True, "Lower-case text in the trained tokenizer (--cased keeps case).", off="--cased")
    size: str = opt(
        "mini",
        "Model size from scratch: tiny 2x128, mini 4x256, small 4x512, medium 8x512, "
        "base 12x768, large 24x1024 (layers x hidden).",
        choices=("tiny", "mini", "small", "medium", "base", "large"),
    )
    attention_start: str = opt(
        "random",
        "How a new model's attention starts: random (BERT's draw; every head averages the whole sequence "
        "for the first thousands of steps) or mimetic (each head attends where states resemble its own, "
        "positions as sines and cosines; Trockman and Kolter 2023): a far better masked LM in 30 CPU-minutes, "
        "but it fine-tuned no better there. Not used with --model.",
        choices=ATTENTION_STARTS,
    )
    layers: int = opt(0, "Encoder layers (0: from --size).")
    hidden: int = opt(0, "Hidden size (0: from --size).")
    heads: int = opt(0, "Attention heads (0: hidden / 64).")
    intermediate: int = opt(0, "Feed-forward size (0: 4 x hidden).")
    document_per_line: bool = opt(False, "Each non-empty line is a document (default: blank-line separated blocks).")
    document_per_file: bool = opt(False, "Each file is one document (default: blank-line separated blocks).")
    validation_fraction: float = opt(0.01, "Share of documents held out for evaluation (never trained on).")
    validation: Optional[Path] = opt(None, "Held-out text file for evaluation (replaces --validation-fraction).")
    max_seq_length: int = opt(128, "Length of the pretraining sequences in WordPieces, [CLS] and [SEP]s included.")
    short_seq_prob: float = opt(0.1, "Share of sequences filled to a random shorter length (as BERT does).")
    nsp: Optional[bool] = opt(
        None,
        "Next-sentence prediction on [CLS] A [SEP] B [SEP] pairs; --no-nsp trains "
        "masked LM alone on packed single-segment sequences (by --recipe: budget off, "
        "bert on).",
    )
    mlm_probability: Optional[float] = opt(
        None, "Share of WordPiece positions chosen for masked LM (by --recipe: budget 0.25, bert 0.15)."
    )
    eval_instances: int = opt(
        2000,
        "Evaluate on at most this many held-out instances (a fixed sample drawn with "
        "--seed), so an evaluation costs seconds; 0: all of them.",
    )
    max_predictions: int = opt(
        0,
        "At most this many masked positions per sequence (0: mlm-probability x "
        "max-seq-length rounded up to a multiple of 5: 20 at 128, 80 at 512).",
    )
    whole_word_masking: bool = opt(False, "Choose whole words (all their WordPieces) for masking.")
    static_masks: bool = opt(False, "Draw the masks once instead of afresh each epoch.")
    dump_instances: Optional[tuple[int, Path]] = opt(
        None, "Write N training instances (after masking) to FILE as jsonl: --dump-instances N FILE."
    )
    # --- objective (bertkit/pretraining/electra.py) ---
    objective: str = opt(
        "mlm",
        "What the encoder learns: mlm (masked LM, + NSP by --recipe bert) or electra (a small generator "
        "fills the masked positions and the encoder tells, at every position, original from replaced; "
        "saved as a plain BERT, the generator in model/generator/).",
        choices=("mlm", "electra"),
        panel="Masked LM",
    )
    generator_size: float = opt(
        0.25,
        "ELECTRA: the generator's width as a share of the encoder's (same depth; the paper: 1/4 to 1/2).",
        panel="Masked LM",
    )
    rtd_weight: float = opt(
        50.0, "ELECTRA: weight of replaced-token detection against the generator's MLM loss.", panel="Masked LM"
    )
    head_warmup_steps: int = opt(
        0,
        "With --model lacking a masked-LM head (e.g. a sentence-transformers model): train the new "
        "head alone for this many steps before the whole model.",
    )
    # --- record corpora (jsonl, json, parquet, saved datasets: one document per record) ---
    text_column: str = opt(
        "text", "The field holding each document's text in jsonl, json, parquet or saved-dataset corpora."
    )

    def __post_init__(self) -> None:
        # What the user left unset comes from the recipe; an unknown recipe is left for validate() to name.
        if self.objective == "electra" and self.nsp is None:
            self.nsp = False  # ELECTRA has no next-sentence task, whatever the recipe
        if self.model and self.learning_rate is None:
            self.learning_rate = CONTINUE_LEARNING_RATE
        preset = RECIPES.get(self.recipe, {})
        for name, value in preset.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.vocab_size is None and self.recipe == "budget":
            self.vocab_size = BUDGET_VOCAB.get(self.size, 8192)

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.dropout < 1:
            raise BertkitError(f"--dropout is {self.dropout}; give a probability from 0 up to (not including) 1")
        if self.eval_instances < 0:
            raise BertkitError(f"--eval-instances is {self.eval_instances}; it cannot be negative (0: all)")
        if not self.corpus:
            raise BertkitError(
                "no corpus given; pass text files, globs or directories: bertkit pretrain corpus.txt ..."
            )
        from bertkit.modeling.scratch import SIZES

        if self.size not in SIZES:
            raise BertkitError(f"--size is '{self.size}'; choose one of: {', '.join(SIZES)}")
        if self.document_per_line and self.document_per_file:
            raise BertkitError("--document-per-line and --document-per-file contradict each other; pass one of them")
        shares = {
            "validation_fraction": (self.validation_fraction, 0, 0.5),
            "short_seq_prob": (self.short_seq_prob, 0, 1),
            "mlm_probability": (self.mlm_probability, 0.01, 0.9),
        }
        for name, (value, low, high) in shares.items():
            if not low <= value <= high:
                raise BertkitError(f"{flag(name)} is {value}; give a share from {low} to {high}")
        if not 16 <= self.max_seq_length <= 8192:
            raise BertkitError(f"--max-seq-length is {self.max_seq_length}; give a length from 16 to 8192")
        for name in ("vocab_size", "layers", "hidden", "heads", "intermediate", "max_predictions"):
            if getattr(self, name) < 0:
                raise BertkitError(f"{flag(name)} is {getattr(self, name)}; it cannot be negative")
        if not self.model and not self.tokenizer and self.vocab_size < 100:
            raise BertkitError(f"--vocab-size is {self.vocab_size}; give at least 100")
        if self.dump_instances is not None and self.dump_instances[0] < 1:
            raise BertkitError(f"--dump-instances asks for {self.dump_instances[0]} instances; give at least 1")
        self.validate_objective()

    def validate_objective(self) -> None:
        if self.objective == "electra" and self.nsp:
            raise BertkitError("--nsp is for --objective mlm; ELECTRA has no next-sentence task: drop --nsp")
        if not 0.05 <= self.generator_size <= 1:
            raise BertkitError(f"--generator-size is {self.generator_size}; give a share from 0.05 to 1")
        if self.rtd_weight <= 0:
            raise BertkitError(f"--rtd-weight is {self.rtd_weight}; give a positive weight (the paper: 50)")
        if self.head_warmup_steps < 0:
            raise BertkitError(f"--head-warmup-steps is {self.head_warmup_steps}; it cannot be negative")
        if self.head_warmup_steps and (self.objective != "mlm" or not self.model):
            raise BertkitError(
                "--head-warmup-steps needs --model and --objective mlm (it warms up a new masked-LM head)"
            )
        if self.head_warmup_steps and self.num_processes * self.num_machines > 1:
            raise BertkitError("--head-warmup-steps runs in one process for now; drop --num-processes or the warm-up")

    @property
    def predictions_cap(self) -> int:
        """--max-predictions, or its default for the sequence length."""
        return self.max_predictions or 5 * math.ceil(self.max_seq_length * self.mlm_probability / 5)
