"""What a training run is built from: the Accelerator, AdamW, the learning-rate schedules, and the typed
options the engine runs with (`EngineOptions`, read from any command's settings by field name)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch

from bertkit.errors import BertkitError


@dataclass
class EngineOptions:
    """Everything the engine reads; a command's settings give them by name (`options_from`)."""

    precision: str = "auto"
    seed: int = 42
    learning_rate: float = 5e-5
    batch_size: int = 32
    grad_accum: int = 1
    epochs: float = 3.0
    max_steps: int = -1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    layer_lr_decay: float = 1.0  # 1.0: every parameter at the full learning rate
    max_grad_norm: float = 1.0
    length_grouping: int = 50  # batches per length-sorted group (1: random batches)
    micro_batches: int = 1  # each batch computed as this many length-grouped micro-batches, gradients accumulated
    batch_sampler: str = "length-grouped"  # the batch order: step-sorted, length-grouped or random (engine/batching.py)
    eval_every: int = 0
    save_every: int = 0
    keep_checkpoints: int = 1
    patience: int = 0
    log_every: int = 10
    skip_nonfinite: int = 0
    resume: bool = False
    time_budget_seconds: float = 0.0  # 0: no time budget
    distributed_timeout: int = 7200


class _TiedWeightsNotice(logging.Filter):
    """Accelerate warns at every checkpoint that tied weights (e.g. BERT's MLM decoder, which shares the
    word embeddings) are stored once; they are re-tied on loading, so the notice is only noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in record.getMessage()


logging.getLogger("accelerate.utils.other").addFilter(_TiedWeightsNotice())


def make_accelerator(precision: str, grad_accum: int = 1, timeout_seconds: int = 7200, **options):
    """An Accelerator that autocasts to bf16 on GPU and never on CPU (bf16 is ~150x slower on these CPUs).

    Batches are split: every process gets its slice of one global batch drawn by the sampler, so N
    processes with --batch-size B step exactly like one process with batch N*B. The generous
    process-group time-out lets the main process prepare a large data set while the others wait.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs

    on_gpu = torch.cuda.is_available()
    if precision == "auto":
        mixed = "bf16" if on_gpu else "no"
    elif precision == "fp32":
        mixed = "no"
    else:
        if not on_gpu:
            raise BertkitError(
                f"--precision {precision} needs a GPU (on CPU it is far slower than fp32); use --precision fp32 or auto"
            )
        mixed = precision
    return Accelerator(
        mixed_precision=mixed,
        gradient_accumulation_steps=grad_accum,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=timeout_seconds))],
        **options,
    )


def make_optimizer(
    model: torch.nn.Module, learning_rate: float, weight_decay: float, layer_lr_decay: float = 1.0
) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; biases and LayerNorm weights get no weight decay.

    With `layer_lr_decay` below 1 each encoder layer learns at learning_rate * decay^(its distance from the
    top): the head at the full rate, the top layer at rate * decay, the embeddings at rate * decay^(layers + 1).
    """
    groups: dict[tuple[int, bool], dict] = {}
    depths = layer_depths(model) if layer_lr_decay != 1.0 else None
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decayed = not (parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name)
        distance = depths(name) if depths else 0
        group = groups.setdefault(
            (distance, decayed),
            {
                "params": [],
                "weight_decay": weight_decay if decayed else 0.0,
                "lr": learning_rate * layer_lr_decay**distance,
            },
        )
        group["params"].append(parameter)
    # The full-rate groups first: the log shows the first group's learning rate.
    ordered = [groups[key] for key in sorted(groups, key=lambda key: (key[0], not key[1]))]
    # The fused kernel (CPU and GPU) updates each tensor in one pass: ~4x faster than foreach on CPU.
    return torch.optim.AdamW(ordered, lr=learning_rate, fused=True)


LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")


def layer_depths(model: torch.nn.Module) -> Callable[[str], int]:
    """name -> distance from the top for a BERT-style encoder: 0 for the head (and the pooler), i + 1 for
    encoder layer L - 1 - i, L + 1 for the embeddings."""
    config = getattr(model, "config", None)
    count = getattr(config, "num_hidden_layers", None)
    if count is None:
        found = [int(m.group(1)) for name, _ in model.named_parameters() if (m := LAYER_INDEX.search(name))]
        count = max(found, default=-1) + 1

    def distance(name: str) -> int:
        if "embeddings" in name:
            return count + 1
        match = LAYER_INDEX.search(name)
        return count - int(match.group(1)) if match else 0

    return distance


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def timed_schedule(optimizer: torch.optim.Optimizer, warmup_ratio: float, fraction_done: Callable[[], float]):
    """Linear warm-up and decay over a time budget: the factor follows the share of the budget spent."""

    def factor(_step: int) -> float:
        done = min(1.0, fraction_done())
        if done < warmup_ratio:
            return max(done / warmup_ratio, 1e-3)
        return max(0.0, (1.0 - done) / max(1e-9, 1.0 - warmup_ratio))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
