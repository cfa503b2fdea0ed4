"""Bottleneck adapters (Houlsby et al., 2019), written for bertkit.

An adapter is ``x + up(gelu(down(x)))`` with a small bottleneck (``--adapter-size``). Two sit in
every encoder layer: after the attention output projection and after the feed-forward output
projection, before each sub-layer's residual connection and LayerNorm. The up-projection starts
at zero, so an adapted model computes exactly what the pretrained one did until training moves it.

They are attached with forward hooks on the projections, so the pretrained weights keep their
names and stay untouched; the adapters themselves are modules named ``bertkit_adapter``.
(AdapterHub's ``adapters`` package does not support transformers 5.)
"""

from __future__ import annotations

import torch
from torch import nn

from bertkit.errors import BertkitError
from bertkit.modeling.heads import encoder_of

ADAPTER = "bertkit_adapter"


class BottleneckAdapter(nn.Module):
    def __init__(self, hidden: int, size: int):
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        self.activation = nn.GELU()
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)  # identity at initialisation
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.activation(self.down(hidden)))

    def after(self, module, inputs, output):
        """Forward hook on a projection: its output goes through the adapter."""
        return self(output)


def adapted_sublayers(model: nn.Module) -> list[nn.Module]:
    """Each encoder layer's attention-output and feed-forward-output sub-layers (BERT, RoBERTa, ELECTRA names)."""
    sublayers = []
    for index, layer in enumerate(encoder_of(model).encoder.layer):
        for path in ("attention.output", "output"):
            sublayer = layer.get_submodule(path) if _has(layer, path) else None
            if sublayer is None or not isinstance(getattr(sublayer, "dense", None), nn.Linear):
                raise BertkitError(
                    f"encoder layer {index} has no '{path}.dense' projection; adapters need a "
                    "BERT-style encoder (use --strategy lora or full for this model)"
                )
            sublayers.append(sublayer)
    return sublayers


def add_adapters(model: nn.Module, size: int) -> int:
    """Insert adapters into every encoder layer; returns how many were added."""
    sublayers = adapted_sublayers(model)
    for sublayer in sublayers:
        adapter = BottleneckAdapter(sublayer.dense.out_features, size)
        setattr(sublayer, ADAPTER, adapter)
        sublayer.dense.register_forward_hook(adapter.after)
    return len(sublayers)


def _has(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
        return True
    except AttributeError:
        return False
