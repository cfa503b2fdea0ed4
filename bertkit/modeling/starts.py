"""Where a new encoder's attention starts: BERT's random draw, or a mimetic start that already attends.

From BERT's start (every weight N(0, 0.02)) the query and key matrices are so small that every head
attends uniformly: their gradients are products of each other, and for the first thousands of steps
they move by noise alone. A `mini` model after 600 masked-LM steps on movie reviews still averaged its
whole sequence in every head (bench/results/electra.md, run 9) and predicted from word counts only.

The mimetic start (Trockman and Kolter, "Mimetic Initialization of Self-Attention Layers", ICML 2023)
sets each head's W_q W_k^T near a1 Z + b1 I and the layer's W_v W_o near a2 Z - b2 I (Z a random
matrix with entries of variance 1/hidden), as trained heads tend to look: a token attends to
positions whose states resemble its own. The position table starts as sines and cosines of the
position, so that neighbouring positions resemble each other and "resembles" includes "is near".
The model is a plain BERT either way; only its first weights differ. The masked LM learns far
sooner from this start, but after 30 CPU-minutes it fine-tuned no better than BERT's start (run 9),
so `--attention-start random` stays the default.
"""

from __future__ import annotations

import math

import torch

QUERY_KEY = (0.7, 0.7)  # a1, b1: the paper's values
VALUE_OUTPUT = (0.4, 0.4)  # a2, b2
# The positions' scale in the summed embeddings (word rows start at std 0.02): large enough that a
# neighbour's state resembles a token's own. Held-out masked-LM loss after 600 steps of `mini` on movie
# reviews: 6.09 at 0.02, 5.17 at 0.05, 5.12 at 0.1, against 6.14 from BERT's start (electra.md, run 9).
POSITION_STD = 0.1


def start_mimetic(model, seed: int) -> None:
    """Give a new transformers BERT (any head) mimetic attention weights and sinusoidal positions."""
    start_mimetic_layers(model, seed)
    sinusoidal_positions(model.base_model.embeddings.position_embeddings.weight, POSITION_STD)


def start_mimetic_layers(model, seed: int) -> None:
    """Mimetic attention weights in every layer of a new transformers BERT or ELECTRA model."""
    generator = torch.Generator().manual_seed(seed)
    config = model.config
    for layer in model.base_model.encoder.layer:
        mimetic_layer(layer.attention, config.hidden_size, config.num_attention_heads, generator)


def mimetic_layer(attention, hidden: int, heads: int, generator: torch.Generator) -> None:
    """One BertAttention: per head W_q W_k^T ~ a1 Z + b1 I; over the heads W_v W_o ~ a2 Z - b2 I."""
    width = hidden // heads
    self_attention = attention.self
    with torch.no_grad():
        for head in range(heads):
            left, right = factors(noisy_identity(hidden, *QUERY_KEY, generator), width)
            rows = slice(head * width, (head + 1) * width)
            self_attention.query.weight[rows] = left.T  # nn.Linear keeps [out, in]: q = x @ weight.T
            self_attention.key.weight[rows] = right.T
        a2, b2 = VALUE_OUTPUT
        value, output = factors(noisy_identity(hidden, a2, -b2, generator), hidden)
        self_attention.value.weight.copy_(value.T)
        attention.output.dense.weight.copy_(output)  # output = v @ W_o, so its Linear weight is W_o^T


def noisy_identity(size: int, noise: float, identity: float, generator: torch.Generator) -> torch.Tensor:
    """noise * Z + identity * I, Z with independent N(0, 1/size) entries (float64 for the factoring)."""
    z = torch.randn(size, size, generator=generator, dtype=torch.float64) / math.sqrt(size)
    return noise * z + identity * torch.eye(size, dtype=torch.float64)


def factors(target: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) of `rank` columns with A @ B.T the best rank-`rank` approximation of `target`."""
    u, s, vh = torch.linalg.svd(target)
    root = s[:rank].sqrt()
    return (u[:, :rank] * root).float(), (vh[:rank].T * root).float()


def sinusoidal_positions(table: torch.Tensor, std: float) -> None:
    """Fill a [positions, hidden] table with the Transformer's sines and cosines, scaled to `std`."""
    positions, hidden = table.shape
    place = torch.arange(positions, dtype=torch.float64)[:, None]
    frequency = torch.exp(torch.arange(0, hidden, 2, dtype=torch.float64) * (-math.log(10000.0) / hidden))
    waves = torch.zeros(positions, hidden, dtype=torch.float64)
    waves[:, 0::2] = torch.sin(place * frequency)
    waves[:, 1::2] = torch.cos(place * frequency)[:, : hidden // 2]
    with torch.no_grad():
        table.copy_((waves / waves.std() * std).to(table.dtype))
