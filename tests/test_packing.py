"""--batch-sampler packed: a random batch's sentences laid end to end in rows compute what they would alone,
train as the random batch does, and leave almost no padding; tagging's default where the model can read it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from conftest import EXAMPLES
from test_batch_samplers import short_sentences

from bertkit.engine.batching import collate, make_batch_sampler
from bertkit.engine.packing import EXAMPLE_LENGTHS, PackedCollator, batch_counts, first_fit_rows


def test_first_fit_rows_place_every_example_once_within_the_capacity():
    lengths, _ = short_sentences(500)
    for begin in range(0, 500, 32):
        batch = lengths[begin : begin + 32]
        rows = first_fit_rows(batch, max(batch))
        assert sorted(i for row in rows for i in row) == list(range(len(batch)))
        assert all(sum(batch[i] for i in row) <= max(batch) for row in rows)


def test_packed_rows_cost_little_more_than_the_real_tokens():
    """The same random batches of 32: padded to their longest they hold 3.6x the real tokens, packed 1.06x."""
    lengths, _ = short_sentences(3200)
    order = make_batch_sampler("packed", lengths, 32, seed=5, group_batches=50, batches_per_step=1).batches(0)
    real = sum(lengths)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in order)
    pack = PackedCollator()
    packed = 0
    for batch in order:
        features = [{"input_ids": [5] * lengths[i], "labels": [0] * lengths[i]} for i in batch]
        packed += pack(features)["input_ids"].numel()
    assert padded / real > 2.5  # 3.58x measured
    assert packed / real < 1.2  # 1.06x measured


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_packed_row_computes_each_sentence_as_it_would_alone(tiny_model, attention):
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=3, attn_implementation=attention)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    features = [
        {"input_ids": torch.randint(5, 100, (n,), generator=generator).tolist(), "labels": [1] * n, "index": i}
        for i, n in enumerate([9, 4, 7, 3, 9, 2])
    ]
    packed = PackedCollator(pad_token_id=0, additive=attention == "eager")(features)
    assert packed["input_ids"].shape[0] < len(features)  # several sentences share a row
    assert batch_counts(packed) == (6, 34)
    with torch.no_grad():
        rows = model(**{k: v for k, v in packed.items() if k not in ("labels", EXAMPLE_LENGTHS)}).logits
        alone = [model(**collate([feature])).logits[0] for feature in features]
    # Where each sentence went: first-fit decreasing over the lengths, as the collator lays them.
    lengths = [len(f["input_ids"]) for f in features]
    for row, members in enumerate(first_fit_rows(lengths, max(lengths))):
        at = 0
        for i in members:
            assert torch.allclose(rows[row, at : at + lengths[i]], alone[i], atol=1e-5)
            at += lengths[i]
    loss_packed = model(**{k: v for k, v in packed.items() if k != EXAMPLE_LENGTHS}).loss
    loss_padded = model(**collate(features)).loss
    assert torch.allclose(loss_packed, loss_padded, atol=1e-5)  # the mean over the same labelled tokens


def no_dropout_copy(model_dir, target):
    shutil.copytree(model_dir, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(
        json.dumps({**config, "hidden_dropout_prob": 0, "attention_probs_dropout_prob": 0})
    )
    return target


def mixed_lengths(target):
    """The example sentences cut short or joined in pairs: lengths from 2 words to 2 sentences, so rows pack."""
    blocks = (EXAMPLES / "tagging/train.conll").read_text(encoding="utf-8").strip().split("\n\n")
    mixed = []
    for number, (block, after) in enumerate(zip(blocks, blocks[1:] + blocks[:1])):
        lines = block.splitlines()
        mixed.append("\n".join([lines[:2], lines, lines + after.splitlines()][number % 3]))
    target.write_text("\n\n".join(mixed) + "\n", encoding="utf-8")
    return target


def test_packed_training_steps_as_random_batches_do(tiny_model, cli, tmp_path):
    """No dropout: packed rows and random padded batches of the same seed end with the same weights."""
    from safetensors.torch import load_file

    model = no_dropout_copy(tiny_model, tmp_path / "no-dropout")
    train = mixed_lengths(tmp_path / "mixed.conll")

    def weights(kind: str) -> dict:
        output = tmp_path / kind
        result = cli(
            "finetune", "--task", "tagging", "--model", model, "--train", train, "--output", output,
            "--epochs", "1", "--lr", "1e-3", "--seed", "3", "--batch-size", "8", "--batch-sampler", kind,
            "--micro-batches", "1",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return load_file(output / "model/model.safetensors")

    packed, random_batches = weights("packed"), weights("random")
    difference = max(float((packed[k] - random_batches[k]).abs().max()) for k in packed)
    assert difference < 1e-4  # 4e-6 measured: the order of float sums


def saved_batching(output) -> tuple[str, int]:
    settings = yaml.safe_load((output / "settings.yaml").read_text())
    return settings["batch_sampler"], settings["micro_batches"]


def test_tagging_packs_by_default_and_falls_back_where_the_model_cannot(tiny_model, cli, tmp_path):
    from transformers import DistilBertConfig, DistilBertForTokenClassification

    common = ["finetune", "--task", "tagging", "--train", EXAMPLES / "tagging/train.conll", "--epochs", "1"]
    result = cli(*common, "--model", tiny_model, "--output", tmp_path / "bert")
    assert result.exit_code == 0, result.output
    assert saved_batching(tmp_path / "bert") == ("packed", 1)

    distil = tmp_path / "distilbert"  # takes no position_ids: its sentences cannot be packed
    vocab = json.loads((tiny_model / "config.json").read_text())["vocab_size"]
    config = DistilBertConfig(vocab_size=vocab, dim=32, n_layers=1, n_heads=2, hidden_dim=64)
    DistilBertForTokenClassification(config).save_pretrained(distil)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tiny_model / name).is_file():
            shutil.copy(tiny_model / name, distil / name)
    result = cli(*common, "--model", distil, "--output", tmp_path / "distil")
    assert result.exit_code == 0, result.output
    assert saved_batching(tmp_path / "distil") == ("step-sorted", 4)

    asked = cli(*common, "--model", distil, "--output", tmp_path / "asked", "--batch-sampler", "packed")
    assert asked.exit_code != 0 and "Traceback" not in asked.output
    assert "--batch-sampler packed cannot train this model: its model type is 'distilbert'" in asked.output


def test_packing_is_refused_for_one_label_per_text(tiny_model, cli, tmp_path):
    result = cli(
        "finetune", "--task", "classification", "--model", tiny_model, "--train",
        EXAMPLES / "classification/train.tsv", "--output", tmp_path / "x", "--batch-sampler", "packed",
    )  # fmt: skip
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--batch-sampler packed lays per-token examples end to end; classification" in result.output
