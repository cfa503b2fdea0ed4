"""--batch-sampler: step-sorted steps hold random batches' examples (so their label statistics) with
little padding; every order is a pure function of (seed, epoch) and resumes by batch index."""

from __future__ import annotations

import json
import random
import statistics

import pytest
from conftest import EXAMPLES

from bertkit.engine.batching import StepSortedBatches, make_batch_sampler

MICRO_BATCH, PER_STEP = 8, 4  # tagging's default: a batch of 32 as 4 micro-batches


def short_sentences(count: int = 3200) -> tuple[list[int], list[int]]:
    """Lengths like a short-sentence tagging set (mean ~20, a long tail); the label follows length:
    80% of the short texts (under 14 pieces) have it, 20% of the others (as entity-dense headlines)."""
    rng = random.Random(0)
    lengths = [min(128, 4 + int(rng.expovariate(1 / 16))) for _ in range(count)]
    labels = [int(rng.random() < (0.8 if length < 14 else 0.2)) for length in lengths]
    return lengths, labels


def steps(batches: list[list[int]]) -> list[list[int]]:
    return [[i for batch in batches[k : k + PER_STEP] for i in batch] for k in range(0, len(batches), PER_STEP)]


def sampler(kind: str, lengths: list[int], seed: int = 5):
    return make_batch_sampler(kind, lengths, MICRO_BATCH, seed, group_batches=50, batches_per_step=PER_STEP)


def padded_tokens(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)


def test_each_step_holds_the_examples_of_random_batches_sorted_into_micro_batches():
    lengths, _ = short_sentences(1001)  # 126 micro-batches, the last one short
    random_batches, step_sorted = sampler("random", lengths).batches(0), sampler("step-sorted", lengths).batches(0)
    assert len(step_sorted) == len(random_batches) == 126
    assert [sorted(step) for step in steps(step_sorted)] == [sorted(step) for step in steps(random_batches)]
    for batch in step_sorted[:PER_STEP]:  # the first step: longest first, each micro-batch neighbours in length
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
    assert min(lengths[i] for i in step_sorted[0]) >= max(lengths[i] for i in step_sorted[1])


def test_per_step_label_share_matches_random_batches_while_padding_stays_near_length_grouping():
    """2,000 steps (20 epochs): mean and variance of each step's label share against the binomial of a
    random draw of 32; padded tokens (micro-batch size x its longest) against length grouping's."""
    lengths, labels = short_sentences()
    share = sum(labels) / len(labels)
    random_variance = share * (1 - share) / 32 * (len(labels) - 32) / (len(labels) - 1)  # drawn without replacement
    measured = {}
    for kind in ("step-sorted", "random", "length-grouped"):
        order = sampler(kind, lengths)
        shares = [
            sum(labels[i] for i in step) / len(step) for epoch in range(20) for step in steps(order.batches(epoch))
        ]
        measured[kind] = (
            statistics.mean(shares),
            statistics.variance(shares),
            padded_tokens(order.batches(0), lengths),
        )
    for kind, (mean, _, _) in measured.items():
        assert abs(mean - share) < 0.005, kind  # every order sees every example once per epoch
    assert 0.9 < measured["step-sorted"][1] / random_variance < 1.15  # 1.03 measured, as random batches
    assert 0.9 < measured["random"][1] / random_variance < 1.15
    assert measured["length-grouped"][1] / random_variance > 2.5  # 3.5: each micro-batch holds one length
    grouped_padding = measured["length-grouped"][2]
    assert measured["step-sorted"][2] <= 1.5 * grouped_padding  # 1.40x measured
    assert measured["random"][2] >= 2 * grouped_padding  # 2.28x measured


def test_step_sorted_order_depends_on_seed_and_epoch_only_and_resumes_by_index():
    lengths, _ = short_sentences(500)
    first, again = StepSortedBatches(lengths, 8, seed=3, batches_per_step=4), sampler("step-sorted", lengths, seed=3)
    assert first.batches(0) == again.batches(0) and first.batches(0) != first.batches(1)
    assert first.batches(0) != sampler("step-sorted", lengths, seed=4).batches(0)
    assert sorted(i for batch in first.batches(2) for i in batch) == list(range(500))
    again.set_position(epoch=1, start=12)  # a saved position: 3 steps of 4 micro-batches done
    assert list(again) == first.batches(1)[12:] and len(again) == len(first.batches(1)) - 12


def test_finetune_resolves_the_batch_sampler_and_refuses_a_contradiction(tiny_model, cli, tmp_path):
    """Tagging defaults to packed rows (with a BERT model); --length-grouping 1 still means random batches."""
    common = ["finetune", "--task", "tagging", "--model", tiny_model, "--train", EXAMPLES / "tagging/train.conll"]
    common += ["--max-steps", "1", "--batch-size", "8"]
    for name, flags, expected in [("default", [], "packed"), ("random", ["--length-grouping", "1"], "random")]:
        result = cli(*common, "--output", tmp_path / name, *flags)
        assert result.exit_code == 0, result.output
        assert f"batch_sampler: {expected}" in (tmp_path / name / "settings.yaml").read_text()
    contradiction = cli(*common, "--output", tmp_path / "x", "--length-grouping", "1", "--batch-sampler", "step-sorted")
    assert contradiction.exit_code == 2 and "--length-grouping 1 asks for random batches" in contradiction.stderr
    assert not (tmp_path / "x").exists()


def test_a_checkpoint_resumes_only_with_its_batch_sampler(tmp_path):
    from bertkit.engine.state import TrainState
    from bertkit.errors import BertkitError

    saved = TrainState(processes=1, global_batch=32, micro_batches=1, batch_sampler="length-grouped")
    with pytest.raises(BertkitError, match="made with --batch-sampler length-grouped; resume with the same"):
        saved.check_layout(tmp_path, 1, 32, 1, "step-sorted")
    older = TrainState(processes=1, global_batch=32, micro_batches=1)  # before --batch-sampler: not checked
    older.check_layout(tmp_path, 1, 32, 1, "step-sorted")
    assert older.batch_sampler == "step-sorted"
    assert json.dumps(older.__dict__)  # still saved as plain JSON


def test_step_sorted_training_steps_as_random_batches_do(tiny_model, cli, tmp_path):
    """No dropout, token-weighted loss: step-sorted and random batches train to the same weights (the same
    examples per step, the same summed gradient; only the order of float sums differs); grouping does not."""
    import shutil

    from safetensors.torch import load_file

    model = tmp_path / "no-dropout"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(
        json.dumps({**config, "hidden_dropout_prob": 0, "attention_probs_dropout_prob": 0})
    )

    def weights(kind: str) -> dict:
        output = tmp_path / kind
        result = cli(
            "finetune", "--task", "tagging", "--model", model, "--train", EXAMPLES / "tagging/train.conll",
            "--output", output, "--epochs", "1", "--lr", "1e-3", "--seed", "3", "--batch-size", "8",
            "--batch-sampler", kind,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return load_file(output / "model/model.safetensors")

    step_sorted, random_batches, grouped = weights("step-sorted"), weights("random"), weights("length-grouped")
    assert max(float((step_sorted[k] - random_batches[k]).abs().max()) for k in step_sorted) < 1e-4  # 5e-6 measured
    assert max(float((step_sorted[k] - grouped[k]).abs().max()) for k in step_sorted) > 1e-3  # 0.03 measured


@pytest.mark.parametrize("kind", ["step-sorted", "length-grouped", "random"])
def test_two_process_shards_keep_every_batch_and_the_saved_position(kind):
    """Accelerate splits only full batches and the last one among processes (a short batch mid-epoch would be
    dropped, and the saved position, counted in yielded batches, would point past the wrong batch)."""
    from accelerate.data_loader import BatchSamplerShard

    lengths, _ = short_sentences(1001)  # micro-batches of 2 x 8: 62 full and a short one of 9
    order = make_batch_sampler(kind, lengths, 16, seed=5, group_batches=50, batches_per_step=PER_STEP)
    shards = [BatchSamplerShard(order, num_processes=2, process_index=i, split_batches=True) for i in (0, 1)]
    for epoch in range(3):
        order.set_position(epoch)
        yielded = [list(shard) for shard in shards]
        assert len(yielded[0]) == len(yielded[1]) == len(order) == 63
        assert {i for batches in yielded for batch in batches for i in batch} == set(range(1001))
