"""ELECTRA (Clark et al. 2020): a small generator fills the masked positions, the encoder learns from every position.

The generator is a narrow masked LM; at each masked position a token is sampled from its softmax
(no gradient flows through the sampling), and the discriminator -- a plain BERT encoder with a
two-layer head -- tells for every real position whether its token is the original or a replacement.
The loss is the generator's masked-LM loss plus `rtd_weight` times the replaced-token-detection loss.

Token, position and segment embeddings are shared: the generator is a transformers
`ElectraForMaskedLM` whose embedding module *is* the discriminator's (at the discriminator's width)
and whose `embeddings_project` brings it down to the generator's width, and whose output is decoded
by the same word embeddings, as the paper ties them. The discriminator stays a `BertModel`, so the
saved `model/` is a plain BERT directory; the generator and the detection head are saved in
`model/generator/`, from which `pretrain --model` continues a run.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bertkit.pretraining.masking import IGNORE
from bertkit.pretraining.rescale import embedding_scale, scale_embeddings

GENERATOR_DIR = "generator"
HEAD_FILE = "discriminator_head.safetensors"


@dataclass
class ElectraOutput:
    loss: torch.Tensor
    mlm_loss: torch.Tensor  # the generator's
    mlm_logits: torch.Tensor  # [masked positions in the batch, vocab]
    mlm_labels: torch.Tensor  # [masked positions in the batch]
    rtd_loss: torch.Tensor
    rtd_logits: torch.Tensor  # [scored positions in the batch]: > 0 means "replaced"
    rtd_labels: torch.Tensor  # [scored positions in the batch]: 1 where the token was replaced
    discriminator_ids: torch.Tensor  # [batch, length]: what the discriminator read


class DetectionHead(torch.nn.Module):
    """Replaced or original, per position: dense + GELU + a single logit (as the paper's discriminator head)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dense = torch.nn.Linear(hidden, hidden)
        self.prediction = torch.nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.prediction(F.gelu(self.dense(states))).squeeze(-1)


class ElectraPretrainingModel(torch.nn.Module):
    def __init__(self, discriminator, generator, head: DetectionHead, rtd_weight: float, never_ids, forbidden_ids):
        super().__init__()
        self.discriminator = discriminator  # a transformers BertModel
        self.generator = generator  # a transformers ElectraForMaskedLM sharing the discriminator's embeddings
        self.head = head
        self.rtd_weight = rtd_weight
        # [CLS], [SEP], [PAD]: never scored; the generator may not sample any special token.
        self.register_buffer("never_ids", torch.as_tensor(never_ids, dtype=torch.long), persistent=False)
        penalty = torch.zeros(generator.config.vocab_size)
        penalty[list(forbidden_ids)] = float("-inf")
        self.register_buffer("sampling_penalty", penalty, persistent=False)
        self.sampler: torch.Generator | None = None  # a seeded stream for evaluation and dumps; else the global one
        tie_embeddings(discriminator, generator)

    def forward(self, input_ids, attention_mask, token_type_ids, masked_positions, masked_labels) -> ElectraOutput:
        chosen = masked_labels != IGNORE
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(masked_positions)
        rows, columns, labels = rows[chosen], masked_positions[chosen], masked_labels[chosen]

        generated = self.generator.electra(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        logits = self.generator.generator_lm_head(self.generator.generator_predictions(generated[rows, columns]))
        mlm_loss = F.cross_entropy(logits.float(), labels)

        with torch.no_grad():  # the replacements are data: nothing flows back through the sampling
            weights = F.softmax(logits.detach().float() + self.sampling_penalty, dim=-1)
            sampled = torch.multinomial(weights, 1, generator=self.sampler).squeeze(-1)
            original = input_ids.clone()
            original[rows, columns] = labels
            corrupted = original.clone()
            corrupted[rows, columns] = sampled
            scored = attention_mask.bool() & ~torch.isin(original, self.never_ids)
            replaced = (corrupted != original)[scored].float()  # a sampled original counts as original

        states = self.discriminator(
            input_ids=corrupted, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=False
        )[0]
        rtd_logits = self.head(states[scored])
        rtd_loss = F.binary_cross_entropy_with_logits(rtd_logits.float(), replaced)
        loss = mlm_loss + self.rtd_weight * rtd_loss
        return ElectraOutput(loss, mlm_loss, logits, labels, rtd_loss, rtd_logits, replaced, corrupted)


def tie_embeddings(discriminator, generator) -> None:
    """The generator reads the discriminator's embedding module and decodes with its word embeddings."""
    generator.electra.embeddings = discriminator.embeddings
    generator.generator_lm_head.weight = discriminator.embeddings.word_embeddings.weight


def generator_config(config, size: float, dropout: float):
    """The generator of a discriminator `config`: `size` of its width at the same depth.

    The paper makes generators smaller "by decreasing the layer sizes while keeping the other
    hyperparameters constant" (section 3.2): the same number of layers, narrower, with 64-wide
    attention heads where the width allows (one head below that). Its embeddings are the
    discriminator's (embedding_size = the discriminator's width), projected down to its own.
    """
    from transformers import ElectraConfig

    width = max(16, round(config.hidden_size * size))
    heads = max(1, width // 64)
    width = heads * (width // heads)
    return ElectraConfig(
        vocab_size=config.vocab_size,
        embedding_size=config.hidden_size,
        hidden_size=width,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=config.pad_token_id,
    )


def make_electra(discriminator, settings, tokenizer, saved: Path | None) -> ElectraPretrainingModel:
    """The ELECTRA pair around `discriminator`: its generator and head from `saved` (model/generator/ of an
    earlier run) when there is one, else new ones of --generator-size."""
    from transformers import ElectraForMaskedLM

    from bertkit.modeling.loading import load_pretrained

    head = DetectionHead(discriminator.config.hidden_size)
    if saved is not None:
        from safetensors.torch import load_file

        generator = load_pretrained("ElectraForMaskedLM", str(saved))
        head.load_state_dict(load_file(str(saved / HEAD_FILE)))
    else:
        generator = ElectraForMaskedLM(
            generator_config(discriminator.config, settings.generator_size, settings.dropout)
        )
        with torch.no_grad():  # BERT's initialisation, as the discriminator's own layers got
            for module in head.modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight.normal_(0.0, discriminator.config.initializer_range)
                    module.bias.zero_()
            # The detection's first lesson is its base rate: a new generator replaces nearly every masked
            # position. Unless the bias already says so, the first steps learn it by making every output
            # state alike, and the encoder then fine-tunes at chance (measured: a tiny model after 24 steps).
            share = settings.mlm_probability
            head.prediction.bias.fill_(math.log(share / (1 - share)))
    never = sorted({tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id})
    return ElectraPretrainingModel(
        discriminator, generator, head, settings.rtd_weight, never, tokenizer.all_special_ids
    )


def saved_generator(model_dir: str | None) -> Path | None:
    """model/generator/ of an earlier ELECTRA run, if `model_dir` has one."""
    if model_dir is None:
        return None
    path = Path(model_dir) / GENERATOR_DIR
    return path if (path / "config.json").is_file() and (path / HEAD_FILE).is_file() else None


def electra_at_initial_scale(model: ElectraPretrainingModel):
    """A copy computing the same functions with the shared embeddings at the initial scale (see rescale.py):
    the discriminator's embedding LayerNorm absorbs the factor, the generator's output LayerNorm undoes it
    for the tied decoder. The model being trained is left untouched."""
    factor = embedding_scale(model.discriminator)
    rescaled = copy.deepcopy(model)  # keeps the sharing: one embedding module, one decoder weight
    scale_embeddings(rescaled.discriminator.embeddings, factor)
    with torch.no_grad():
        norm = rescaled.generator.generator_predictions.LayerNorm
        norm.weight.div_(factor)
        norm.bias.div_(factor)
    return rescaled, factor


def write_electra(model: ElectraPretrainingModel, tokenizer, directory: Path) -> None:
    """The discriminator as a plain BERT directory's weights, the generator and head in generator/."""
    from safetensors.torch import save_file

    model.discriminator.save_pretrained(directory, safe_serialization=True)
    generator = directory / GENERATOR_DIR
    model.generator.save_pretrained(generator, safe_serialization=True)
    tokenizer.save_pretrained(generator)
    save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, str(generator / HEAD_FILE))


def describe_generator(model: ElectraPretrainingModel) -> dict:
    config = model.generator.config
    return {"hidden": config.hidden_size, "layers": config.num_hidden_layers, "heads": config.num_attention_heads}


def replacements(model: ElectraPretrainingModel, batch: dict, seed: int) -> tuple[list[int], list[int]]:
    """(the discriminator's input ids, the positions the generator replaced) for a batch of one instance."""
    was_training = model.training
    model.eval()
    model.sampler = torch.Generator().manual_seed(seed)
    try:
        with torch.inference_mode():
            output = model(**batch)
    finally:
        model.sampler = None
        model.train(was_training)
    corrupted = output.discriminator_ids[0]
    original = batch["input_ids"][0].clone()
    chosen = batch["masked_labels"][0] != IGNORE
    original[batch["masked_positions"][0][chosen]] = batch["masked_labels"][0][chosen]
    return corrupted.tolist(), torch.nonzero(corrupted != original).flatten().tolist()
