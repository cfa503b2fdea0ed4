"""The pretraining model: a `BertForPreTraining` whose masked-LM decoder runs only at the chosen positions.

`transformers`' own forward projects every position onto the vocabulary, although only ~15%
carry a label; for a small model that projection costs more than the encoder. Here the encoder
output is gathered at the masked positions first, then the MLM head (transform + tied decoder)
runs on those rows alone. The wrapped model is saved as a plain `BertForPreTraining`.
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
    def __init__(self, model):
        super().__init__()
        self.model = model  # a transformers BertForPreTraining

    def forward(
        self, input_ids, attention_mask, token_type_ids, masked_positions, masked_labels, next_sentence_label=None
    ) -> PretrainingOutput:
        sequence, pooled = self.model.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=False
        )[:2]
        chosen = masked_labels != IGNORE
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(masked_positions)
        hidden = sequence[rows[chosen], masked_positions[chosen]]  # [masked, hidden]
        logits = self.model.cls.predictions(hidden)
        labels = masked_labels[chosen]
        mlm_loss = F.cross_entropy(logits.float(), labels)
        loss, nsp_logits = mlm_loss, None
        if next_sentence_label is not None:
            nsp_logits = self.model.cls.seq_relationship(pooled)
            loss = loss + F.cross_entropy(nsp_logits.float(), next_sentence_label)
        return PretrainingOutput(loss, mlm_loss, logits, labels, nsp_logits)
