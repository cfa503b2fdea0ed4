"""The settings of `bertkit embed` (the mechanism is `bertkit.settings.options`; shared settings in
`bertkit.settings.commands`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bertkit.errors import BertkitError
from bertkit.settings.commands import RunSettings
from bertkit.settings.options import opt, validate_choices


@dataclass
class EmbedSettings(RunSettings):
    """``bertkit embed``: sentence vectors or contextual word vectors, and their similarities."""

    # --- embed ---
    inputs: list[str] = opt(
        [], "A file of texts (txt one per line, csv, tsv, jsonl; - for stdin), or the texts themselves.", argument=True
    )
    model: str = opt("", "Model directory: a pretrained model, or the model/ folder of a fine-tuning run.", short="-m")
    output: Optional[Path] = opt(
        None, "Write the vectors to .npy (a float32 matrix) or .jsonl (text + vector).", short="-o"
    )
    pooling: str = opt(
        "mean", "Sentence vector: mean of the token vectors, or the [CLS] vector.", choices=("cls", "mean")
    )
    layer: int = opt(-1, "Which layer's vectors: -1 the last (what a task head reads), 0 the embeddings, N layer N.")
    normalize: bool = opt(False, "Scale every vector to unit length.")
    word: Optional[str] = opt(None, "Take this word's contextual vector in each input instead of a sentence vector.")
    similarity: bool = opt(False, "Print the cosine similarity matrix of the vectors as a table.")
    plot: Optional[Path] = opt(None, "With --similarity: also draw the matrix as a heat map (PNG).")
    text_column: Optional[str] = opt(None, "Column holding the text in csv/tsv/jsonl input (default: detected).")
    batch_size: int = opt(64, "Inputs per batch (batches are sorted by length internally).")
    max_length: int = opt(512, "Longest input in WordPieces; longer texts are truncated.")
    precision: str = opt(
        "auto",
        "Arithmetic: auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16.",
        choices=("auto", "fp32", "bf16", "fp16"),
    )

    def validate(self) -> None:
        validate_choices(self)  # --pooling, --precision
        if not self.inputs:
            raise BertkitError("no input given; pass a file of texts, - for stdin, or the texts themselves")
        if not self.model:
            raise BertkitError("no model given; pass --model DIR (a pretrained or fine-tuned model directory)")
        if self.output is None and not self.similarity:
            raise BertkitError("nothing to do; pass --output FILE.npy|.jsonl for the vectors, or --similarity")
        if self.output is not None and self.output.suffix not in (".npy", ".jsonl"):
            raise BertkitError(f"--output {self.output}: write vectors to a .npy or .jsonl file")
        if self.plot is not None and not self.similarity:
            raise BertkitError("--plot draws the similarity matrix; add --similarity")
        if self.word is not None and not self.word.strip():
            raise BertkitError("--word is empty; give the word to find in each input")
        if self.batch_size < 1 or self.max_length < 8:
            raise BertkitError("--batch-size must be at least 1 and --max-length at least 8")
