"""Cheap-mask dropout (bertkit/modeling/dropout.py): the masks are Bernoulli(1 - p) draws scaled as torch's,
a pure function of torch's generator; the gradient is the mask; a model given them computes what it computed
before whenever dropout is off, and its attention equals SDPA's when nothing is dropped."""

from __future__ import annotations

import json

import pytest
import torch

from bertkit.modeling.dropout import ATTENTION, FastDropout, attention, dropout_mask, fast_dropout, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_masks_keep_one_minus_p_scaled_as_torch(p):
    torch.manual_seed(0)
    mask = dropout_mask(torch.Size([1000, 1000]), p)
    assert mask.unique().tolist() == pytest.approx([0.0, 1 / (1 - p)])
    # 10^6 draws: the kept share is within 5 standard deviations (0.0015 at p = 0.5) of 1 - p.
    assert abs((mask > 0).float().mean().item() - (1 - p)) < 0.0025
    # Neighbouring entries are independent: a kept entry is followed by a kept one 1 - p of the time.
    kept = (mask > 0).flatten()
    assert abs((kept[1:] & kept[:-1]).float().mean().item() - (1 - p) ** 2) < 0.003


def test_masks_follow_torch_generator():
    torch.manual_seed(7)
    first, second = dropout_mask(torch.Size([64, 64]), 0.1), dropout_mask(torch.Size([64, 64]), 0.1)
    torch.manual_seed(7)
    assert torch.equal(dropout_mask(torch.Size([64, 64]), 0.1), first)
    assert not torch.equal(first, second)


def test_gradient_is_the_mask_and_off_means_identity():
    inputs = torch.ones(50, 40, requires_grad=True)
    torch.manual_seed(1)
    outputs = fast_dropout(inputs, 0.2)
    outputs.sum().backward()
    assert torch.equal(inputs.grad, outputs.detach())  # d(x * mask)/dx = mask = the output for x = 1
    assert 0 < (outputs == 0).float().mean().item() < 0.4
    assert fast_dropout(inputs, 0.2, training=False) is inputs
    assert fast_dropout(inputs, 0.0) is inputs
    assert torch.count_nonzero(fast_dropout(inputs, 1.0)) == 0
    assert torch.equal(dropout_mask(torch.Size([3, 3]), 1e-7), torch.full((3, 3), 1 / (1 - 1e-7)))


class _Layer(torch.nn.Module):
    pass


@pytest.mark.parametrize("boolean", [True, False])
def test_attention_equals_sdpa_when_nothing_is_dropped(boolean):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 4, 9, 8, generator=generator) for _ in range(3))
    allowed = (torch.rand(2, 1, 9, 9, generator=generator) > 0.4) | torch.eye(9, dtype=torch.bool)
    mask = allowed if boolean else torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    layer = _Layer().train()
    expected, _ = sdpa_attention_forward(layer.eval(), query, key, value, mask, 0.0, 8**-0.5)
    # A rate below half a mask level keeps every weight: the training path, nothing dropped.
    ours, _ = attention(layer.train(), query, key, value, mask, dropout=1e-7, scaling=8**-0.5)
    assert torch.allclose(ours, expected, atol=1e-5)
    torch.manual_seed(0)
    dropped, _ = attention(layer, query, key, value, mask, dropout=0.5, scaling=8**-0.5)
    assert not torch.allclose(dropped, expected, atol=1e-3)


def test_a_model_given_fast_dropout(tmp_path):
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_labels=3
    )
    plain = BertForTokenClassification(config)
    fast = BertForTokenClassification(config)
    fast.load_state_dict(plain.state_dict())
    use_fast_dropout(fast)
    assert not any(type(module) is torch.nn.Dropout for module in fast.modules())
    assert sum(isinstance(module, FastDropout) for module in fast.modules()) == 2 * 3 + 2
    assert fast.config._attn_implementation == ATTENTION
    ids = torch.randint(1, 120, (3, 11), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[0, 6:] = 0
    plain.eval(), fast.eval()
    expected = plain(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(fast(input_ids=ids, attention_mask=mask).logits, expected)
    fast.train()
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(fast(input_ids=ids, attention_mask=mask).logits)
    assert torch.equal(runs[0], runs[1])  # a pure function of the seed
    assert not torch.allclose(runs[0], expected)
    fast.save_pretrained(tmp_path)
    assert ATTENTION not in json.dumps(json.loads((tmp_path / "config.json").read_text()))
