"""Texts longer than ``--max-length`` for the text tasks (classification, NLI, regression, multi-label).

``--long-inputs`` chooses what the model sees of a long text:

- ``truncate`` (the default): its first pieces, as bertkit always did;
- ``head-tail``: its first and last pieces (``--head-share`` of the room goes to the head; Sun et al. 2019
  kept 128 + 382 of 512 pieces for IMDB reviews, a share of 0.25);
- ``windows``: every piece, in ``--max-length`` windows that overlap by ``--window-stride`` pieces (the
  QA meaning of a stride, cut by the same `window_spans`), at most ``--max-windows`` per text. Each window
  is a feature of its text; training weighs each window's loss by 1 / (its text's windows) so that every
  text counts once, and prediction pools the windows' logits (``--window-pool``) into one answer per text.

A second text (NLI's hypothesis) is kept whole in every window, up to half of the room; the first text is
the one cut. The options are saved with the model, so predict, evaluate, export and serve cut as training did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertkit.errors import BertkitError
from bertkit.settings.options import opt
from bertkit.tasks.qa_windows import window_spans
from bertkit.tasks.text import TextColumns, TextExample, encode_texts

LONG_INPUTS = ("truncate", "head-tail", "windows")
WINDOW_POOLS = ("mean", "max")
CLASS_WEIGHTS = ("none", "balanced")  # or a file


@dataclass
class LongTextOptions(TextColumns):
    """What the text tasks do with texts longer than --max-length (saved with the model)."""

    long_inputs: str = opt(
        "truncate",
        "Texts longer than --max-length: truncate (keep the head), head-tail (keep the first and last "
        "pieces) or windows (every piece, in overlapping windows whose logits are pooled per text).",
        choices=LONG_INPUTS,
        saved=True,
    )
    head_share: float = opt(
        0.25, "--long-inputs head-tail: the share of the room kept from the start of the text.", saved=True
    )
    window_stride: int = opt(32, "--long-inputs windows: pieces shared by neighbouring windows of a text.", saved=True)
    max_windows: int = opt(
        16, "--long-inputs windows: at most this many windows per text (the rest of it is dropped).", saved=True
    )
    window_pool: str = opt(
        "mean",
        "--long-inputs windows: how a text's window logits make one answer (mean or max).",
        choices=WINDOW_POOLS,
        saved=True,
    )

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("long_inputs", self.long_inputs, LONG_INPUTS),
            ("window_pool", self.window_pool, WINDOW_POOLS),
        ):
            if value not in allowed:
                raise BertkitError(f"--{name.replace('_', '-')} is '{value}'; choose one of: {', '.join(allowed)}")
        if not 0 <= self.head_share <= 1:
            raise BertkitError(f"--head-share is {self.head_share}; give a share from 0 to 1")
        if self.max_windows < 1:
            raise BertkitError(f"--max-windows is {self.max_windows}; it must be at least 1")
        if self.window_stride < 0:
            raise BertkitError(f"--window-stride is {self.window_stride}; it cannot be negative")


@dataclass
class ClassifierOptions(LongTextOptions):
    """The text tasks with labels (classification, NLI, multi-label) add class weights."""

    class_weights: str = opt(
        "none",
        "Weigh each training example's loss by its label: none, balanced (inverse to the label's "
        "frequency) or FILE (label and weight per line, or a JSON object); multi-label: the weight of "
        "each label's positive examples (balanced: its negatives / positives).",
        commands=("finetune",),
    )


def encode_long_texts(
    examples: list[TextExample],
    tokenizer,
    max_length: int,
    label_of: Callable[[TextExample], Any] | None,
    options: Any,
) -> tuple[list[dict], int]:
    """`encode_texts` under --long-inputs: features (several per text under windows) and how many texts were cut.

    Options without `long_inputs` (another task's) truncate.
    """
    mode = getattr(options, "long_inputs", "truncate")
    if mode == "truncate":
        return encode_texts(examples, tokenizer, max_length, label_of)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is None or sep is None:
        raise BertkitError(f"--long-inputs {mode} builds [CLS] text [SEP] inputs; this tokenizer has no [CLS]/[SEP]")
    texts = tokenizer([e.text for e in examples], add_special_tokens=False, verbose=False)["input_ids"]
    has_pairs = any(e.text_pair for e in examples)
    pairs = (
        tokenizer([e.text_pair or "" for e in examples], add_special_tokens=False, verbose=False)["input_ids"]
        if has_pairs
        else [None] * len(examples)
    )
    features, cut = [], 0
    for index, (example, pieces, pair) in enumerate(zip(examples, texts, pairs)):
        if not pieces:
            raise BertkitError(
                f"{example.where}: the text has no pieces the tokenizer keeps (only control or unknown "
                "characters); fill it in or drop the record"
            )
        specials = 3 if pair is not None else 2
        pair = pair[: (max_length - specials) // 2] if pair is not None else None
        room = max_length - specials - (len(pair) if pair is not None else 0)
        if mode == "head-tail":
            parts = [head_and_tail(pieces, room, options.head_share)]
            cut += len(pieces) > room
        else:
            spans = window_spans_checked(len(pieces), room, options.window_stride, max_length)
            parts = [pieces[start:end] for start, end in spans[: options.max_windows]]
            cut += len(spans) > options.max_windows
        for part in parts:
            feature = assemble(cls, sep, part, pair, index)
            if label_of is not None and example.label is not None:
                feature["labels"] = label_of(example)
                if mode == "windows":  # every text counts once, however many windows it has
                    feature["loss_weight"] = 1.0 / len(parts)
            features.append(feature)
    return features, cut


def head_and_tail(pieces: list[int], room: int, head_share: float) -> list[int]:
    """The first round(share x room) pieces and the last ones that fill the room (the whole text when it fits)."""
    if len(pieces) <= room:
        return pieces
    head = round(head_share * room)
    return pieces[:head] + pieces[len(pieces) - (room - head) :]


def window_spans_checked(n_pieces: int, room: int, stride: int, max_length: int) -> list[tuple[int, int]]:
    """QA's `window_spans` over a text, or a one-line error when the stride leaves the windows no progress."""
    if room <= stride:
        raise BertkitError(
            f"--window-stride {stride}: windows of --max-length {max_length} hold {room} pieces of text, "
            "so they would not advance; lower --window-stride or raise --max-length"
        )
    return window_spans(n_pieces, room, stride)


def assemble(cls: int, sep: int, pieces: list[int], pair: list[int] | None, index: int) -> dict:
    """``[CLS] text [SEP]`` or ``[CLS] text [SEP] pair [SEP]`` with segment ids 0/1, as the tokenizer builds them."""
    ids = [cls, *pieces, sep]
    segments = [0] * len(ids)
    if pair is not None:
        ids += [*pair, sep]
        segments += [1] * (len(pair) + 1)
    return {"input_ids": ids, "token_type_ids": segments, "index": index}


def pooled_logits(
    count: int, features: list[dict], outputs: Iterable[tuple[int, dict]], pool: str = "mean"
) -> np.ndarray:
    """One row of logits per example (`count` of them): its feature's, or the mean/max over its windows."""
    rows: list[list[np.ndarray]] = [[] for _ in range(count)]
    for feature_index, output in outputs:
        rows[features[feature_index]["index"]].append(np.asarray(output["logits"], dtype=np.float64))
    width = next((len(row[0]) for row in rows if row), 0)
    pooled = np.zeros((count, width), dtype=np.float64)
    for example, windows in enumerate(rows):
        if windows:
            stacked = np.stack(windows)
            pooled[example] = stacked.max(axis=0) if pool == "max" else stacked.mean(axis=0)
    return pooled


def truncation_note(options: Any, cut: int, total: int, max_length: int) -> str:
    """What finetune says about the training inputs that were cut, in the terms of --long-inputs."""
    mode = getattr(options, "long_inputs", "truncate")
    if mode == "windows":
        return (
            f"{cut} of {total} training inputs need more than --max-windows {options.max_windows} windows; "
            "their ends were dropped"
        )
    kept = "only their first and last pieces were kept" if mode == "head-tail" else "and were truncated"
    return f"{cut} of {total} training inputs are longer than --max-length {max_length} {kept}"
