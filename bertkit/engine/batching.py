"""Batches without wasted padding: dynamic padding and resumable batch orders (`--batch-sampler`).

Every order is a pure function of (seed, epoch), so a resumed run starts at its saved batch without
replaying anything. The orders (`make_batch_sampler`):
- random: batches drawn at random, as the transformers Trainer draws them (the most padding);
- length-grouped: batches of neighbours in length (the least padding), but every step then holds
  texts of one length, and its labels are not a random draw (per-token tasks lose accuracy);
- step-sorted: each optimizer step holds exactly the examples random batches would give it, sorted
  by length into its micro-batches: the statistics of random batches with most of the padding saved;
- packed: random batches, each laid end to end into a few rows by the engine's collator
  (engine/packing.py): per-token tasks only, no padding between examples.
"""

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
        # The one short batch last: under several processes Accelerate splits only full batches and the
        # last one (a short batch mid-epoch would be dropped, and the saved position would slip by one).
        batches.sort(key=lambda batch: len(batch) < self.batch_size)
        return batches

    def __iter__(self):
        yield from self.batches(self.epoch)[self.start :]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) - self.start


class StepSortedBatches(LengthGroupedBatches):
    """Random batches whose every optimizer step is re-cut into length-sorted micro-batches.

    The random order (LengthGroupedBatches with groups of one batch) is taken a step at a time,
    `batches_per_step` micro-batches of `batch_size`; the step's examples are sorted by length and cut
    again into as many micro-batches. So a step trains on the very examples it would with random
    batches (same seed, same steps); only which of them share a micro-batch changes, and with a loss
    averaged per example (equal micro-batches) or weighted per token (TokenWeights) the step's
    gradient is the same sum. Each micro-batch pads only to its own longest, a neighbour in length.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, batches_per_step: int):
        super().__init__(lengths, batch_size, seed, group_batches=1)
        self.batches_per_step = batches_per_step

    def batches(self, epoch: int) -> list[list[int]]:
        drawn = super().batches(epoch)
        cut = []
        for begin in range(0, len(drawn), self.batches_per_step):
            step = sorted(
                (i for batch in drawn[begin : begin + self.batches_per_step] for i in batch),
                key=lambda i: -self.lengths[i],
            )
            # The one short batch of an epoch may fall in this step: still as many micro-batches as drawn.
            cut.extend(step[i : i + self.batch_size] for i in range(0, len(step), self.batch_size))
        return cut


def make_batch_sampler(
    kind: str, lengths: Sequence[int], batch_size: int, seed: int, group_batches: int, batches_per_step: int
) -> LengthGroupedBatches:
    """The `--batch-sampler` order over batches of `batch_size`; `batches_per_step` of them make an optimizer step.

    `group_batches` is --length-grouping: batches per length-sorted group, 1 meaning random batches.
    """
    if kind == "step-sorted":
        return StepSortedBatches(lengths, batch_size, seed, batches_per_step)
    return LengthGroupedBatches(lengths, batch_size, seed, 1 if kind in ("random", "packed") else group_batches)


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
