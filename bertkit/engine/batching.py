"""Batches without wasted padding: dynamic padding and length-grouped, resumable batch order."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch

# Values used to pad per-token keys; anything else pads with 0.
PAD_VALUES = {"labels": -100}


def collate(features: Sequence[dict], pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad list-valued keys to the longest feature of the batch; stack scalar keys.

    `attention_mask` is derived from the length of `input_ids`. Keys starting with "_" are task
    metadata (offsets, word ids, ...) that stay out of the batch. A numpy array is one row per
    example (e.g. multi-label targets), stacked as it is: only lists are per-token and padded.
    """
    longest = max(len(feature["input_ids"]) for feature in features)
    batch: dict[str, torch.Tensor] = {}
    for key, first in features[0].items():
        if key.startswith("_"):
            continue
        if isinstance(first, np.ndarray):
            batch[key] = torch.from_numpy(np.stack([feature[key] for feature in features]))
        elif isinstance(first, (list, tuple)):
            pad = pad_token_id if key == "input_ids" else PAD_VALUES.get(key, 0)
            rows = [list(feature[key]) + [pad] * (longest - len(feature[key])) for feature in features]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        elif isinstance(first, (int, bool)):
            batch[key] = torch.tensor([feature[key] for feature in features], dtype=torch.long)
        elif isinstance(first, float):
            batch[key] = torch.tensor([feature[key] for feature in features], dtype=torch.float)
    if "attention_mask" not in batch:
        batch["attention_mask"] = torch.tensor(
            [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features], dtype=torch.long
        )
    return batch


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Batches of similar length in a random order that depends only on (seed, epoch).

    Indices are shuffled, cut into groups of `group_batches` batches, sorted by length inside
    each group and cut into batches; then the batch order is shuffled. So padding is small,
    yet each epoch sees a different mix. Because the order is a pure function of the seed
    and the epoch, a resumed run starts at batch `start` of its epoch without replaying
    anything (`set_position`).
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int, group_batches: int = 50, shuffle: bool = True
    ):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_batches = group_batches
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def batches(self, epoch: int) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        if not self.shuffle:
            order.sort(key=lambda i: -self.lengths[i])
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        rng = random.Random(self.seed * 1_000_003 + epoch)
        rng.shuffle(order)
        group = self.batch_size * self.group_batches
        batches = []
        for begin in range(0, len(order), group):
            chunk = sorted(order[begin : begin + group], key=lambda i: -self.lengths[i])
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        rng.shuffle(batches)
        return batches

    def __iter__(self):
        yield from self.batches(self.epoch)[self.start :]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) - self.start


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, features: Sequence[dict]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return self.features[index]


class TokenWeights:
    """Weights that make a per-token mean loss count every labelled token alike across batches.

    A model's token loss is the mean over its batch's labelled tokens, and every step counts the
    same; with length-grouped batches a batch of 32 two-word texts then weighs as much as a batch
    of 32 forty-word texts, so short texts dominate training (random batches average this out).
    Scaling each batch's loss by its labelled tokens over the mean per batch restores the
    per-token weighting of random batches while keeping the grouped order (and its speed).
    """

    def __init__(self, features: Sequence[dict], batch_size: int):
        self.mean_per_batch = max(1.0, _labelled_tokens(features) / max(1, len(features)) * batch_size)

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (batch["labels"] != PAD_VALUES["labels"]).sum() / self.mean_per_batch


def _labelled_tokens(features) -> int:
    if "labels" in (getattr(features, "column_names", None) or ()):  # an Arrow cache: counted in Arrow, not row by row
        import pyarrow.compute as pc

        tokens = pc.list_flatten(features.data.column("labels"))
        return int(pc.sum(pc.not_equal(tokens, PAD_VALUES["labels"])).as_py() or 0)
    return sum(int((np.asarray(feature["labels"]) != PAD_VALUES["labels"]).sum()) for feature in features)
