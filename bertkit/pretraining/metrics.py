"""Held-out evaluation of pretraining: MLM accuracy and loss (and perplexity), NSP accuracy; for ELECTRA
the generator's MLM accuracy and loss and replaced-token detection.

The held-out instances are masked with static masks from the seed, so every evaluation of a
run scores the same predictions and the numbers are comparable across steps.
"""

from __future__ import annotations

import math

import torch

from bertkit.engine.inference import run_batches

# Held-out rtd_auc below this: ELECTRA's detector has not begun to learn (0.5 is guessing; measured: 0.51-0.55
# in the first 300 steps on movie reviews, bench/results/electra.md run 5).
DETECTION_STARTED = 0.55


def evaluate_pretraining(model, features, collator, batch_size: int, accelerator) -> dict:
    """Sums over this process's share of the batches, added up over all processes."""
    sums = torch.zeros(5, dtype=torch.float64, device=accelerator.device)  # loss, correct, count, nsp ok, nsp n
    make_batch = lambda indices: collator([features[i] for i in indices])  # noqa: E731
    for indices, batch, output in run_batches(accelerator, model, features.lengths, batch_size, make_batch):
        logits, labels = output.mlm_logits.float(), output.mlm_labels
        sums[0] += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").double()
        sums[1] += (logits.argmax(-1) == labels).sum()
        sums[2] += labels.numel()
        if output.nsp_logits is not None:
            sums[3] += (output.nsp_logits.argmax(-1) == batch["next_sentence_label"]).sum()
            sums[4] += len(indices)
    sums = accelerator.reduce(sums, reduction="sum") if accelerator.num_processes > 1 else sums
    loss, correct, count, nsp_correct, nsp_count = sums.tolist()
    mlm_loss = loss / max(count, 1)
    metrics = {
        "mlm_accuracy": correct / max(count, 1),
        "mlm_loss": mlm_loss,
        "perplexity": math.exp(min(mlm_loss, 50.0)),
        "masked_tokens": int(count),
    }
    if nsp_count:
        metrics["nsp_accuracy"] = nsp_correct / nsp_count
    return metrics


def evaluate_electra(model, features, collator, batch_size: int, accelerator, seed: int) -> dict:
    """The generator's masked-LM accuracy and loss, and replaced-token detection over every scored position.

    The replacements are sampled from a stream seeded afresh at each evaluation (and apart from the
    training's random state), so evaluations differ only by what the model learned in between.
    `replaced_share` is the share of scored positions the generator replaced (the detection's base rate).
    `rtd_auc` is how well the detector ranks replaced above original positions: 0.5 while it has learned
    nothing, whatever the base rate; it moves long before `replaced_recall` (which needs a confident "replaced").
    """
    model.sampler = torch.Generator(device=accelerator.device).manual_seed(seed)
    sums = torch.zeros(8, dtype=torch.float64, device=accelerator.device)
    scores: list[tuple[torch.Tensor, torch.Tensor]] = []
    make_batch = lambda indices: collator([features[i] for i in indices])  # noqa: E731
    try:
        for _, _, output in run_batches(accelerator, model, features.lengths, batch_size, make_batch):
            logits, labels = output.mlm_logits.float(), output.mlm_labels
            sums[0] += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").double()
            sums[1] += (logits.argmax(-1) == labels).sum()
            sums[2] += labels.numel()
            detected, replaced = output.rtd_logits.float(), output.rtd_labels
            sums[3] += torch.nn.functional.binary_cross_entropy_with_logits(
                detected, replaced, reduction="sum"
            ).double()
            sums[4] += ((detected > 0).float() == replaced).sum()
            sums[5] += replaced.numel()
            sums[6] += replaced.sum()
            sums[7] += ((detected > 0) & (replaced > 0)).sum()
            scores.append((detected.cpu(), replaced.cpu()))
    finally:
        model.sampler = None
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        sums = accelerator.reduce(sums, reduction="sum")
        scores = gather_object(scores)
    loss, correct, count, rtd_loss, rtd_correct, scored, replaced, caught = sums.tolist()
    return {
        "rtd_accuracy": rtd_correct / max(scored, 1),
        "rtd_loss": rtd_loss / max(scored, 1),
        "replaced_share": replaced / max(scored, 1),
        "replaced_recall": caught / max(replaced, 1),
        "rtd_auc": ranking_auc(torch.cat([s for s, _ in scores]), torch.cat([r for _, r in scores])) if scores else 0.5,
        "mlm_accuracy": correct / max(count, 1),
        "mlm_loss": loss / max(count, 1),
        "masked_tokens": int(count),
    }


def ranking_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative (ties count
    half), from the rank sum of the positives (Mann-Whitney); 0.5 when either class is missing."""
    positives = int(positive.sum().item())
    negatives = positive.numel() - positives
    if not positives or not negatives:
        return 0.5
    ordered, order = scores.double().sort()
    _, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()
    ranks = (last - (counts.double() - 1) / 2)[inverse]  # 1-based, tied scores share their mean rank
    rank_sum = ranks[positive[order] > 0].sum().item()
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def detector_warning(metrics: dict) -> str:
    """What to do when ELECTRA's detector has not begun to tell replaced from original tokens."""
    return (
        f"[yellow]warning:[/] the detector has not started learning yet (held-out rtd_auc "
        f"{metrics['rtd_auc']:.3f}; 0.5 is guessing), so the encoder in model/ may fine-tune no better than "
        f"random weights. Pretrain for longer (a larger --time-budget or --max-steps; `pretrain --objective "
        f"electra --model OUTPUT/model` continues this one), or use --objective mlm, which learns sooner."
    )
