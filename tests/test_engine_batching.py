"""The engine's batching: dynamic padding, and a length-grouped order that is a pure function of (seed, epoch)."""

from __future__ import annotations

import random

import torch

from bertkit.engine.batching import LengthGroupedBatches, collate


def test_collate_pads_to_the_longest_and_keeps_metadata_out():
    batch = collate([{"input_ids": [2, 5, 3], "labels": [1, 0, 1], "index": 0, "_offsets": [(0, 1)]},
                     {"input_ids": [2, 3], "labels": [1, 1], "index": 1, "_offsets": [(0, 1)]}], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[1, 0, 1], [1, 1, -100]]
    assert batch["index"].tolist() == [0, 1] and "_offsets" not in batch


def test_batches_cover_every_example_once_with_little_padding():
    rng = random.Random(0)
    lengths = [rng.randint(5, 120) for _ in range(1000)]
    sampler = LengthGroupedBatches(lengths, batch_size=32, seed=7)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded < 1.1 * sum(lengths)  # random batches would pad to ~1.6x here


def test_order_depends_on_seed_and_epoch_only_and_resumes_by_index():
    lengths = list(range(300))
    first = LengthGroupedBatches(lengths, 16, seed=3)
    again = LengthGroupedBatches(lengths, 16, seed=3)
    assert first.batches(0) == again.batches(0)
    assert first.batches(0) != first.batches(1)
    again.set_position(epoch=1, start=5)
    assert list(again) == first.batches(1)[5:]
    assert len(again) == len(first.batches(1)) - 5


def test_collate_gives_long_tensors_for_scalar_labels():
    batch = collate([{"input_ids": [1], "labels": 2}, {"input_ids": [1, 2], "labels": 0}])
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [2, 0]
