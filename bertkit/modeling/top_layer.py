"""While a tagger trains, its last encoder layer computes only where the loss reads.

A token-classification loss reads the final states of the labelled positions (a word's first piece),
not those of [CLS], [SEP] or a word's other pieces: 41% of WNUT-17's pieces carry no label. Every
lower layer needs every position (they are the keys and values of the next layer); the last one needs
them only as keys and values. So while training with per-token labels, `labelled_top(model)` makes the
last layer take its queries, its output projection and its feed-forward block at the labelled positions
alone, and hands the other positions on unchanged (their logits are computed but never scored). The
states at labelled positions are the ones the full layer computes; only the layer's dropout masks are
drawn over fewer entries. Evaluation, prediction and a model without labels run the layer as it is.

Layers of the BERT family (BERT, ELECTRA, RoBERTa: `attention.self.{query,key,value}`, `attention.output`,
`feed_forward_chunk`), on transformers' attention interface; anything else is left alone.
"""

from __future__ import annotations

import sys
import types

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

IGNORED = -100  # the label of a position no loss reads


def last_layer(model: nn.Module) -> nn.Module | None:
    """The last encoder layer of a BERT-family token classifier, or None."""
    checkpointed = getattr(model, "is_activation_checkpointing", False)
    if checkpointed or not type(model).__name__.endswith("ForTokenClassification"):
        return None
    layers = getattr(getattr(getattr(model, "base_model", None), "encoder", None), "layer", None)
    if not layers:
        return None
    top = layers[-1]
    attention = getattr(top, "attention", None)
    needed = ("query", "key", "value", "attention_head_size", "scaling", "config")
    if attention is None or not all(hasattr(attention.self, name) for name in needed):
        return None
    if not hasattr(
        sys.modules[type(attention.self).__module__], "eager_attention_forward"
    ):  # `attend` falls back to it
        return None
    return top if hasattr(top, "feed_forward_chunk") and hasattr(attention, "output") else None


def labelled_top(model: nn.Module) -> nn.Module:
    """Make `model`'s last layer compute only at labelled positions while it trains (see the module docstring);
    in place, idempotent, and a no-op for models it does not know."""
    top = last_layer(model)
    if top is None or getattr(top, "_bertkit_labelled", None) is not None:
        return model
    state = types.SimpleNamespace(positions=None)
    top._bertkit_labelled = state
    full = top.forward

    def forward(hidden_states, attention_mask=None, encoder_hidden_states=None, **kwargs):
        keep = state.positions
        usable = keep is not None and top.training and keep.shape == hidden_states.shape[:2]
        if not usable or encoder_hidden_states is not None:
            return full(hidden_states, attention_mask, encoder_hidden_states, **kwargs)
        return queries_at(top, hidden_states, attention_mask, keep)

    def read_labels(module, args, kwargs):
        labels = kwargs.get("labels")
        per_token = module.training and labels is not None and labels.dim() == 2
        state.positions = (labels != IGNORED) if per_token else None

    top.forward = forward
    model.register_forward_pre_hook(read_labels, with_kwargs=True)
    return model


def queries_at(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor | None, keep: torch.Tensor) -> torch.Tensor:
    """A BERT layer's output at the positions `keep` ([batch, length] booleans); other positions keep `hidden`."""
    counts = keep.sum(dim=1)
    width = max(int(counts.max()), 1)
    # Each row's kept columns first (stable order), padded with the row's other columns.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :width]
    valid = torch.arange(width, device=hidden.device)[None, :] < counts[:, None]
    queries = torch.take_along_dim(hidden, order[:, :, None], dim=1)
    attention = layer.attention
    attended = attend(attention.self, queries, hidden, rows_of(mask, order))
    output = layer.feed_forward_chunk(attention.output(attended, queries))
    rows, columns = torch.nonzero(valid, as_tuple=True)
    return hidden.index_put((rows, order[rows, columns]), output[rows, columns])


def rows_of(mask: torch.Tensor | None, order: torch.Tensor) -> torch.Tensor | None:
    """The attention mask's query rows `order` ([batch, width]); a mask without query rows stays as it is."""
    if mask is None or mask.dim() != 4 or mask.shape[2] == 1:
        return mask
    mask = mask.expand(order.shape[0], -1, -1, -1)
    return torch.take_along_dim(mask, order[:, None, :, None], dim=2)


def attend(self_attention: nn.Module, queries: torch.Tensor, hidden: torch.Tensor, mask) -> torch.Tensor:
    """BertSelfAttention's computation with queries from `queries` and keys and values from `hidden`."""
    size = self_attention.attention_head_size

    def heads(states: torch.Tensor) -> torch.Tensor:
        return states.view(*states.shape[:2], -1, size).transpose(1, 2)

    eager = sys.modules[type(self_attention).__module__].eager_attention_forward
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(self_attention.config._attn_implementation, eager)
    output, _ = interface(
        self_attention,
        heads(self_attention.query(queries)),
        heads(self_attention.key(hidden)),
        heads(self_attention.value(hidden)),
        mask,
        dropout=self_attention.dropout.p if self_attention.training else 0.0,
        scaling=self_attention.scaling,
    )
    return output.reshape(*queries.shape[:2], -1).contiguous()
