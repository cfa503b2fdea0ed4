"""Packed batches (`--batch-sampler packed`): a step's examples laid end to end in a few rows, no padding between.

Random batches of short sentences pad every one to the longest of the batch; on a CPU that padding is
most of the work (WNUT-17: 1.8x the real tokens). Packing draws the very batches random batches would
(same seed, same examples per step), then lays each batch's examples into rows no longer than its longest
example, first-fit decreasing. Every example attends only to itself (a block-diagonal attention mask) and
numbers its positions from 0, so the encoder computes for it exactly what it would alone, and a per-token
loss over the packed rows is the loss of the random batch. Only per-token features pack (tagging): a
feature with one value per example (a class label) has no place in a row.

Models: those whose embeddings take 0-based `position_ids` and whose attention takes a prepared 4D mask
(`PACKABLE_MODEL_TYPES`); `packing_problem` says why another cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from bertkit.engine.batching import PAD_VALUES
from bertkit.errors import BertkitError
from bertkit.modeling.dropout import ATTENTION

# transformers models whose position embeddings are indexed from 0 by `position_ids` and whose encoder
# passes a 4D attention mask through as it is (RoBERTa numbers positions after its padding id; DistilBERT
# takes no position_ids).
PACKABLE_MODEL_TYPES = ("bert", "electra")
PACKABLE_ATTENTION = ("sdpa", "eager", ATTENTION)
# Lengths of each example of a packed batch: the engine counts examples and tokens from it; no model input.
EXAMPLE_LENGTHS = "example_lengths"
# Batch keys no model reads, targets aside (a model computing its own loss reads its labels).
NOT_INPUTS = ("index", EXAMPLE_LENGTHS)


def packing_problem(config) -> str | None:
    """Why a model of `config` cannot be trained on packed rows, or None."""
    if config.model_type not in PACKABLE_MODEL_TYPES:
        return f"its model type is '{config.model_type}' (packing knows {', '.join(PACKABLE_MODEL_TYPES)})"
    attention = getattr(config, "_attn_implementation", None) or "sdpa"
    if attention not in PACKABLE_ATTENTION:
        return f"its attention is '{attention}' (packing needs {' or '.join(PACKABLE_ATTENTION)})"
    return None


def first_fit_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` in rows of at most `capacity` tokens: longest first, each into the first row with room."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(capacity - lengths[index])
    return rows


class PackedCollator:
    """Features -> a packed batch: per-token keys in rows, `position_ids`, a block-diagonal 4D attention mask.

    Rows are as long as the batch's longest example, so a packed batch never holds more tokens per row, nor
    more rows, than the padded batch it replaces. `additive`: the mask as 0 / most-negative floats (eager
    attention adds it to the scores) instead of booleans (SDPA).
    """

    def __init__(self, pad_token_id: int = 0, additive: bool = False):
        self.pad_token_id = pad_token_id
        self.additive = additive

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(feature["input_ids"]) for feature in features]
        rows = first_fit_rows(lengths, max(lengths))
        keys = [key for key, value in features[0].items() if not key.startswith("_") and key != "index"]
        for key in keys:
            if not isinstance(features[0][key], (list, tuple)):
                raise ValueError(f"packed batches hold per-token features only; '{key}' has one value per example")
        width = max(sum(lengths[i] for i in row) for row in rows)
        columns: dict[str, list[list[int]]] = {key: [] for key in keys}
        positions, segments = [], []
        for row in rows:
            used = sum(lengths[i] for i in row)
            for key in keys:
                pad = self.pad_token_id if key == "input_ids" else PAD_VALUES.get(key, 0)
                columns[key].append([value for i in row for value in features[i][key]] + [pad] * (width - used))
            positions.append([p for i in row for p in range(lengths[i])] + [0] * (width - used))
            segments.append([n for n, i in enumerate(row) for _ in range(lengths[i])] + [-1] * (width - used))
        batch = {key: torch.tensor(values, dtype=torch.long) for key, values in columns.items()}
        batch["position_ids"] = torch.tensor(positions, dtype=torch.long)
        segment = torch.tensor(segments)
        same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
        same |= torch.eye(width, dtype=torch.bool)  # padding attends to itself: no empty softmax (NaN)
        mask = same[:, None]
        if self.additive:
            mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
        batch["attention_mask"] = mask
        batch[EXAMPLE_LENGTHS] = torch.tensor([lengths[i] for row in rows for i in row], dtype=torch.long)
        return batch


def batch_counts(batch: Mapping[str, torch.Tensor]) -> tuple[int, int | None]:
    """(examples, real tokens) in this process's batch; a packed batch lists its examples' lengths."""
    if EXAMPLE_LENGTHS in batch:
        return int(batch[EXAMPLE_LENGTHS].numel()), int(batch[EXAMPLE_LENGTHS].sum())
    mask = batch.get("attention_mask")
    return int(batch["input_ids"].shape[0]), None if mask is None else int(mask.sum())


def packed_collator(model: torch.nn.Module, pad_token_id: int, task_collate: Callable | None) -> PackedCollator:
    """The collator of --batch-sampler packed, for a model that can read packed rows."""
    config = model.config
    problem = "its features have their own collator" if task_collate else packing_problem(config)
    if problem:
        raise BertkitError(f"--batch-sampler packed cannot train this model: {problem}; use step-sorted")
    return PackedCollator(pad_token_id, additive=getattr(config, "_attn_implementation", None) == "eager")
