"""A tagger's last layer at labelled positions only (bertkit/modeling/top_layer.py): the loss, the logits the
loss reads and every gradient equal the full layer's (padded and packed batches, SDPA and eager attention),
the layer really computes fewer positions, and nothing else changes (evaluation, other heads, saved weights)."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    ElectraConfig,
    ElectraForTokenClassification,
    RobertaConfig,
    RobertaForTokenClassification,
)

from bertkit.engine.packing import EXAMPLE_LENGTHS, PackedCollator
from bertkit.modeling.top_layer import labelled_top, last_layer

IGNORED = -100


def tiny_config(attention: str, **extra) -> BertConfig:
    return BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation=attention,
        **extra,
    )


def padded_batch() -> dict:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, 60, (3, 10), generator=generator)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 7:], mask[2, 4:] = 0, 0
    labels = torch.randint(0, 4, (3, 10), generator=generator)
    labels[:, 0], labels[0, 3:5] = IGNORED, IGNORED  # [CLS] and a word's later pieces
    labels[mask == 0] = IGNORED
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def packed_batch(additive: bool) -> dict:
    features = [
        {
            "input_ids": list(range(5, 5 + n)),
            "labels": [IGNORED] + [(i % 3) if i % 2 else IGNORED for i in range(n - 2)] + [IGNORED],
        }
        for n in (8, 3, 5, 6)
    ]
    batch = PackedCollator(additive=additive)(features)
    batch.pop(EXAMPLE_LENGTHS)
    return batch


def pair(attention: str):
    torch.manual_seed(0)
    full = BertForTokenClassification(tiny_config(attention, num_labels=4)).train()
    pruned = labelled_top(copy.deepcopy(full))
    return full, pruned


def rows_computed(model, batch: dict) -> int:
    """How many positions the last layer's feed-forward block computed in one forward."""
    seen = []
    handle = last_layer(model).intermediate.dense.register_forward_hook(
        lambda module, args, output: seen.append(args[0].shape[:-1].numel())
    )
    try:
        model(**batch)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("packed", [False, True])
def test_loss_logits_and_gradients_equal_the_full_layers(attention, packed):
    full, pruned = pair(attention)
    batch = packed_batch(attention == "eager") if packed else padded_batch()
    ours, theirs = pruned(**batch), full(**batch)
    scored = batch["labels"] != IGNORED
    torch.testing.assert_close(ours.loss, theirs.loss)
    torch.testing.assert_close(ours.logits[scored], theirs.logits[scored])
    ours.loss.backward()
    theirs.loss.backward()
    for (name, mine), other in zip(pruned.named_parameters(), full.parameters()):
        torch.testing.assert_close(mine.grad, other.grad, msg=name)
    # ... computed on fewer positions: the labelled ones, padded to the fullest row
    positions = batch["input_ids"].numel()
    fullest = int(scored.sum(dim=1).max()) * batch["input_ids"].shape[0]
    assert rows_computed(full, batch) == positions
    assert rows_computed(pruned, batch) == fullest < positions


def test_evaluation_and_unlabelled_forwards_are_the_full_layer():
    full, pruned = pair("sdpa")
    batch = padded_batch()
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    assert rows_computed(pruned, inputs) == batch["input_ids"].numel()  # training, but no labels
    everything = {**inputs, "labels": torch.zeros_like(batch["input_ids"])}
    assert rows_computed(pruned, everything) == batch["input_ids"].numel()  # every position labelled
    full.eval(), pruned.eval()
    assert rows_computed(pruned, batch) == batch["input_ids"].numel()
    assert torch.equal(pruned(**batch).logits, full(**batch).logits)


def test_other_models_are_left_alone_and_nothing_saved_changes(tmp_path):
    classifier = BertForSequenceClassification(tiny_config("sdpa", num_labels=2))
    assert last_layer(classifier) is None and labelled_top(classifier) is classifier
    full, pruned = pair("sdpa")
    labelled_top(pruned)  # idempotent: one hook, one wrapped forward
    assert len(pruned._forward_pre_hooks) == 1
    assert list(pruned.state_dict()) == list(full.state_dict())
    pruned.save_pretrained(tmp_path)
    reloaded = BertForTokenClassification.from_pretrained(tmp_path).eval()
    batch = padded_batch()
    assert torch.equal(reloaded(**batch).logits, full.eval()(**batch).logits)


@pytest.mark.parametrize(
    "family", [(ElectraConfig, ElectraForTokenClassification), (RobertaConfig, RobertaForTokenClassification)]
)
def test_other_bert_family_taggers_get_the_same_loss_on_fewer_positions(family):
    config_type, model_type = family
    config = config_type(**{**tiny_config("sdpa").to_diff_dict(), "num_labels": 4, "pad_token_id": 1})
    torch.manual_seed(0)
    full = model_type(config).train()
    pruned = labelled_top(copy.deepcopy(full))
    batch = padded_batch()
    torch.testing.assert_close(pruned(**batch).loss, full(**batch).loss)
    assert rows_computed(pruned, batch) < rows_computed(full, batch) == batch["input_ids"].numel()
