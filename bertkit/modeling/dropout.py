"""Dropout whose random masks are cheap on a CPU.

torch draws a CPU dropout mask one number at a time from its Mersenne Twister, on one core: on a 2-core
machine that is ~17% of a fine-tuning step of MiniLM (WNUT-17, packed rows; `bernoulli_` alone 12.6% of
the profile). Here each mask is 16-bit integers from NumPy's PCG64 (raw 64-bit words cut in four, about
six times faster), compared with (1 - p) * 65536. The mask is the same Bernoulli draw to 1/65,536 of a
probability. Each mask's PCG64 seed is drawn from torch's own generator, so a run is a pure function of
its seed and a resumed run (which restores torch's RNG state) draws the masks the uninterrupted one would.

`use_fast_dropout(model)` swaps a model's `nn.Dropout` layers for `FastDropout` and, for a transformers
model on SDPA attention, routes attention through `attention` (registered with transformers as
`ATTENTION`): while training with attention dropout on a CPU it computes the attention probabilities
itself and drops them with the same masks; otherwise it is transformers' SDPA unchanged. On a GPU both
are torch's own (its dropout there is cheap). Nothing is saved differently: dropout has no weights and
the attention choice is not written to `config.json`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

ATTENTION = "bertkit_sdpa"
LEVELS = 1 << 16  # the mask's resolution: one of 65,536 levels


def dropout_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """The multiplier of dropout: a float tensor of `shape`, 1 / (1 - p) with probability 1 - p, else 0."""
    kept_levels = round((1 - p) * LEVELS)
    if kept_levels >= LEVELS:  # p below half a level: keep all (and no int16 overflow below)
        return torch.full(shape, 1 / (1 - p))
    count = int(np.prod(shape))
    seed = int(torch.randint(0, 2**62, (1,)).item())  # advances torch's generator, as its dropout would
    words = np.random.Generator(np.random.PCG64(seed)).bit_generator.random_raw((count + 3) // 4)
    # int16 in [-32768, 32767]: kept when below the threshold shifted by the same 32768.
    levels = torch.from_numpy(words.view(np.int16)[:count]).view(shape)
    return torch.where(levels < kept_levels - LEVELS // 2, 1 / (1 - p), 0.0)


def fast_dropout(inputs: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`torch.nn.functional.dropout` with cheap masks on a CPU (torch's own elsewhere, and for p of 0 or 1)."""
    if not training or p == 0:
        return inputs
    if inputs.device.type != "cpu" or p == 1:
        return nn.functional.dropout(inputs, p, training)
    # One multiply each way: autograd keeps the float mask for the backward pass.
    return inputs * dropout_mask(inputs.shape, p).to(inputs.dtype)


class FastDropout(nn.Dropout):
    """`nn.Dropout` drawing its masks with `dropout_mask` (see the module docstring)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return fast_dropout(inputs, self.p, self.training)


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' attention-function signature; SDPA except when dropping attention on a CPU in training."""
    ours = module.training and dropout > 0 and query.device.type == "cpu" and not getattr(module, "is_causal", False)
    if not ours or key.shape[1] != query.shape[1]:  # (grouped key heads: SDPA knows them)
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    # Scaling the queries costs less than scaling the scores (a head is narrower than most sequences), and the
    # mask goes into the scores in place: their product's backward needs only its inputs.
    scores = torch.matmul(query * (query.shape[-1] ** -0.5 if scaling is None else scaling), key.transpose(2, 3))
    if attention_mask is not None:  # boolean (True: may attend) as SDPA takes it, or additive
        if attention_mask.dtype == torch.bool:
            scores.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores += attention_mask
    probabilities = fast_dropout(scores.softmax(-1), dropout)
    return torch.matmul(probabilities, value).transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)  # the masks SDPA gets: `attention` may hand them on


def use_fast_dropout(model: nn.Module) -> nn.Module:
    """Swap `model`'s dropout layers (and SDPA attention's dropout) for cheap-mask ones, in place."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p))
    for module in model.modules():
        config = getattr(module, "config", None)
        can_set = getattr(module, "_can_set_attn_implementation", None)
        if getattr(config, "_attn_implementation", None) == "sdpa" and can_set and can_set():
            module.set_attn_implementation(ATTENTION)
    return model
