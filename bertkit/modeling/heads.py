"""What the task head reads: a learned weighted sum of all layers, and mean pooling.

Both are attached to an unchanged transformers model with forward hooks, so each task keeps its
own transformers head and loss (classification, NLI, tagging, QA alike) and the pretrained
weights keep their names (a full-strategy model still loads in plain transformers):

- ``add_layer_mix``: the encoder's output becomes ``scale * sum_i softmax(w)_i * h_i`` over the
  embedding output and every layer's output (ELMo's scalar mix), because lower layers hold
  more lexical and upper layers more task-like features. The head (and the pooler) read that.
- ``add_mean_pooling``: the pooler reads the mask-aware mean of all token vectors instead of
  the ``[CLS]`` vector (sequence-level heads only: they are the ones with a pooler).

Modules bertkit adds are named ``bertkit_*``, which is how saving tells them apart.
"""

from __future__ import annotations

import torch
from torch import nn

from bertkit.errors import BertkitError

LAYER_MIX = "bertkit_layer_mix"
MEAN_POOLING = "bertkit_mean_pooling"


class LayerMix(nn.Module):
    """Softmax-normalised learned weights over `count` hidden states, and a learned scale."""

    def __init__(self, count: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(count))  # uniform at the start: every layer counts the same
        self.scale = nn.Parameter(torch.ones(()))
        self._states: list[torch.Tensor] = []

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        if len(states) != self.weights.numel():
            raise RuntimeError(f"layer mix expected {self.weights.numel()} hidden states, got {len(states)}")
        weights = torch.softmax(self.weights, dim=0).to(states[0].dtype)
        return self.scale * sum(w * h for w, h in zip(weights, states))

    def layer_weights(self) -> list[float]:
        return [float(w) for w in torch.softmax(self.weights.detach().float(), dim=0)]

    # Hooks are bound methods, so copy.deepcopy(model) re-binds them to the copy.
    def start(self, module, inputs, output):
        self._states = [output]

    def record(self, module, inputs, output):
        self._states.append(output[0] if isinstance(output, tuple) else output)

    def replace_output(self, module, inputs, output):
        states, self._states = self._states, []
        output["last_hidden_state"] = self(states)
        return output


class MeanPooling(nn.Module):
    """Hands the pooler the mask-aware mean of the token vectors in place of the [CLS] vector."""

    def __init__(self):
        super().__init__()
        self._mask: torch.Tensor | None = None

    def remember_mask(self, module, args, kwargs):
        self._mask = kwargs.get("attention_mask")

    def pool(self, module, args):
        hidden = args[0]
        return (masked_mean(hidden, self._mask)[:, None, :],)  # the pooler reads position 0


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the positions where `mask` is 1 (all positions without a mask)."""
    if mask is None:
        return hidden.mean(dim=1)
    weights = mask[:, : hidden.shape[1]].to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def encoder_of(model: nn.Module) -> nn.Module:
    """The transformers base model (BertModel & co.) under a task model."""
    base = getattr(model, "base_model", model)
    if not hasattr(base, "encoder") or not hasattr(base.encoder, "layer") or not hasattr(base, "embeddings"):
        raise BertkitError(
            f"{type(model).__name__}: not a BERT-style encoder (embeddings + encoder.layer); "
            "the fine-tuning strategies need one"
        )
    return base


def add_layer_mix(model: nn.Module) -> LayerMix:
    base = encoder_of(model)
    mix = LayerMix(len(base.encoder.layer) + 1)
    setattr(model, LAYER_MIX, mix)
    base.embeddings.register_forward_hook(mix.start)
    for layer in base.encoder.layer:
        layer.register_forward_hook(mix.record)
    base.encoder.register_forward_hook(mix.replace_output)
    return mix


def add_mean_pooling(model: nn.Module) -> MeanPooling:
    base = encoder_of(model)
    if getattr(base, "pooler", None) is None:
        raise BertkitError(
            "--pooling mean needs a head that reads one vector per text (classification, nli); "
            "this task's head reads every token, so drop --pooling"
        )
    pooling = MeanPooling()
    setattr(model, MEAN_POOLING, pooling)
    base.register_forward_pre_hook(pooling.remember_mask, with_kwargs=True)
    base.pooler.register_forward_pre_hook(pooling.pool)
    return pooling


def layer_weights(model: nn.Module) -> dict | None:
    """The learned layer weights and scale of a model with a layer mix, else None."""
    mix = getattr(model, LAYER_MIX, None)
    if mix is None:
        return None
    return {"weights": mix.layer_weights(), "scale": float(mix.scale.detach())}
