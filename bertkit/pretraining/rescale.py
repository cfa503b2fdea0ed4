"""Save a pretrained model with its embeddings back at the scale a new model starts from.

Pretraining grows the word embeddings (tied to the masked-LM decoder, they also set the scale of its
logits): the `mini` model's mean row norm goes from 0.32 at initialisation to 0.47 after 10 minutes and
0.60 after 30. The encoder cannot tell: the embedding LayerNorm divides the sum of word, position and
segment embeddings by its own spread. Fine-tuning can: AdamW moves every weight by about the learning
rate, so twice the norm is half the relative step, and on a small data set the pretrained model then
fine-tunes as if its learning rate were lower (measured: BENCHMARKS.md, "What the 30-minute model's MR
deficit is made of"). Scaling the three embedding tables by one factor, and the masked-LM transform's
LayerNorm by its inverse, gives the same model (identical hidden states and masked-LM logits) that
fine-tunes as readily as a new one.
"""

from __future__ import annotations

import copy

import torch


def embedding_scale(model) -> float:
    """The factor that brings the mean word-embedding row norm to that of a newly initialised model."""
    config = model.config
    initial = config.initializer_range * config.hidden_size**0.5
    words = model.base_model.embeddings.word_embeddings.weight  # BertForPreTraining or BertModel
    current = words.detach().float().norm(dim=1).mean().item()
    return initial / current if current > 0 else 1.0


def scale_embeddings(embeddings, factor: float) -> None:
    """Word, position and segment tables times `factor`: the embedding LayerNorm makes it the same encoder."""
    with torch.no_grad():
        for table in (embeddings.word_embeddings, embeddings.position_embeddings, embeddings.token_type_embeddings):
            table.weight.mul_(factor)


def at_initial_embedding_scale(model):
    """A copy of a `BertForPreTraining` computing the same function, its embeddings at the initial scale;
    the model being trained is left untouched (its optimizer state belongs to its own scale)."""
    factor = embedding_scale(model)
    rescaled = copy.deepcopy(model)
    embeddings = rescaled.bert.embeddings
    scale_embeddings(embeddings, factor)
    with torch.no_grad():
        decoder = rescaled.cls.predictions.decoder.weight
        if decoder.data_ptr() == embeddings.word_embeddings.weight.data_ptr():
            # The decoder is the word embeddings: its input shrinks by the same factor, so the logits keep.
            norm = rescaled.cls.predictions.transform.LayerNorm
            norm.weight.div_(factor)
            norm.bias.div_(factor)
    return rescaled, factor
