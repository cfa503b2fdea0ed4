"""The pretraining model: a `BertForPreTraining` whose masked-LM decoder runs only at the chosen positions.

`transformers`' own forward projects every position onto the vocabulary, although only ~15%
carry a label; for a small model that projection costs more than the encoder. Here the encoder
output is gathered at the masked positions first, then the MLM head (transform + tied decoder)
runs on those rows alone. The wrapped model is saved as a plain `BertForPreTraining`.

With a head warm-up (`--head-warmup-steps`, for a --model that came without a masked-LM head) the
first batches train the new head alone: the encoder runs without gradients and the decoder (the word
embeddings) is read detached, so AdamW, which skips parameters without a gradient, leaves them as loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bertkit.pretraining.masking import IGNORE


@dataclass
class PretrainingOutput:
    loss: torch.Tensor
    mlm_loss: torch.Tensor
    mlm_logits: torch.Tensor  # [masked positions in the batch, vocab]
    mlm_labels: torch.Tensor  # [masked positions in the batch]
    nsp_logits: torch.Tensor | None


class PretrainingModel(torch.nn.Module):
    def __init__(self, model, head_warmup_batches: int = 0):
        super().__init__()
        self.model = model  # a transformers BertForPreTraining
        self.head_warmup_batches = head_warmup_batches
        if head_warmup_batches:  # in the checkpoints (so a resumed run knows how far the warm-up went), not in model/
            self.register_buffer("batches_trained", torch.zeros((), dtype=torch.long))

    def warming_up(self) -> bool:
        """Whether this training batch is one of the head warm-up's; counts it."""
        if not (self.head_warmup_batches and self.training):
            return False
        self.batches_trained += 1
        return int(self.batches_trained) <= self.head_warmup_batches

    def forward(
        self, input_ids, attention_mask, token_type_ids, masked_positions, masked_labels, next_sentence_label=None
    ) -> PretrainingOutput:
        warming_up = self.warming_up()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not warming_up):
            sequence, pooled = self.model.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=False
            )[:2]
        chosen = masked_labels != IGNORE
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(masked_positions)
        hidden = sequence[rows[chosen], masked_positions[chosen]]  # [masked, hidden]
        head = self.model.cls.predictions
        if warming_up:  # the transform and the bias learn; the tied decoder (the word embeddings) stays
            logits = F.linear(head.transform(hidden), head.decoder.weight.detach(), head.decoder.bias)
        else:
            logits = head(hidden)
        labels = masked_labels[chosen]
        mlm_loss = F.cross_entropy(logits.float(), labels)
        loss, nsp_logits = mlm_loss, None
        if next_sentence_label is not None:
            nsp_logits = self.model.cls.seq_relationship(pooled)
            loss = loss + F.cross_entropy(nsp_logits.float(), next_sentence_label)
        return PretrainingOutput(loss, mlm_loss, logits, labels, nsp_logits)
