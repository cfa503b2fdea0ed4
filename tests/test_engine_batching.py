"""The engine's batching: dynamic padding, and a length-grouped order that is a pure function of (seed, epoch)."""

from __future__ import annotations

import random

import torch

from bertkit.engine.batching import LengthGroupedBatches, collate


def test_collate_pads_to_the_longest_and_keeps_metadata_out():
    batch = collate(
        [
            {"input_ids": [2, 5, 3], "labels": [1, 0, 1], "index": 0, "_offsets": [(0, 1)]},
            {"input_ids": [2, 3], "labels": [1, 1], "index": 1, "_offsets": [(0, 1)]},
        ],
        pad_token_id=0,
    )
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


def test_run_model_trims_token_outputs_but_never_label_outputs():
    """A [batch, labels] output whose width equals the batch's token count must come back whole."""

    from bertkit.engine import Engine
    from bertkit.engine.setup import EngineOptions

    class Fake(torch.nn.Module):
        def forward(self, input_ids, attention_mask, **_):
            batch, width = input_ids.shape
            return {
                "logits": torch.ones(batch, 3),
                "start_logits": torch.zeros(batch, width),
                "token_vectors": torch.zeros(batch, width, 4),
            }

    engine = Engine(EngineOptions(precision="fp32"))
    features = [{"input_ids": [1, 2, 3]}, {"input_ids": [1, 2]}]
    outputs = dict(
        engine.run_model(
            Fake(),
            features,
            batch_size=2,
            pad_token_id=0,
            outputs={"logits": False, "start_logits": True, "token_vectors": True},
        )
    )
    assert outputs[1]["logits"].shape == (3,)  # 3 labels, not cut to the feature's 2 tokens
    assert outputs[1]["start_logits"].shape == (2,) and outputs[1]["token_vectors"].shape == (2, 4)
    assert outputs[0]["start_logits"].shape == (3,)


def test_length_grouping_of_one_gives_random_batches():
    """--length-grouping 1 draws batches as the Trainer does: lengths mixed within every batch."""
    lengths = list(range(1000))

    def mean_spread(group_batches: int) -> float:
        batches = LengthGroupedBatches(lengths, 10, seed=3, group_batches=group_batches).batches(0)
        assert sorted(i for batch in batches for i in batch) == lengths
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)

    assert mean_spread(50) < 20  # 500 examples per group: neighbours in length
    assert mean_spread(1) > 500  # ten random draws from 0..999 span about 820 on average


def test_token_weights_make_every_labelled_token_count_alike():
    """Grouped batches: a batch of short texts weighs by its labelled tokens, not as much as a batch of long ones."""
    from bertkit.engine.batching import TokenWeights

    short = [{"input_ids": [1, 2, 3], "labels": [-100, 4, -100]} for _ in range(4)]  # 1 labelled token each
    long = [{"input_ids": [1] * 8, "labels": [-100, 1, 2, 3, 4, 5, 6, -100]} for _ in range(4)]  # 6 each
    weights = TokenWeights(short + long, batch_size=4)
    assert weights.mean_per_batch == 14.0  # 28 labelled tokens over 8 texts, 4 per batch
    import datasets  # an Arrow feature cache (--cache-encoded) is counted in Arrow: the same figure

    assert TokenWeights(datasets.Dataset.from_list(short + long), batch_size=4).mean_per_batch == 14.0
    short_batch, long_batch = collate(short), collate(long)
    assert abs(float(weights(short_batch)) - 4 / 14) < 1e-6 and abs(float(weights(long_batch)) - 24 / 14) < 1e-6
    # Mean loss x weight = summed token loss / the mean count: each token counts 1/14, in either batch.
    token_losses = torch.arange(1.0, 25.0)
    assert torch.isclose(token_losses[:4].mean() * weights(short_batch), token_losses[:4].sum() / 14)
