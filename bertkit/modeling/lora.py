"""LoRA (Hu et al., 2021) through ``peft``: low-rank updates ``B @ A * alpha / rank`` beside frozen projections.

The targets are the encoder's linear layers whose last name is in ``--lora-targets``; the default
``query,key,value,dense`` covers every projection of every layer (attention and feed-forward),
which the LoRA and QLoRA papers found better than query/value alone for the same budget. The
pooler is not a target: it belongs to the head, which trains in full (peft's modules_to_save).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from pathlib import Path

from torch import nn

from bertkit.errors import BertkitError
from bertkit.modeling.strategies import head_modules


def target_modules(model: nn.Module, targets: list[str]) -> list[str]:
    """Full names of the encoder's linear layers called one of `targets`."""
    prefix = f"{model.base_model_prefix}.encoder."
    found = [
        name
        for name, module in model.named_modules()
        if name.startswith(prefix) and isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets
    ]
    if not found:
        raise BertkitError(
            f"--lora-targets {','.join(targets)}: no linear layer of the encoder has one of these names; "
            "BERT's are query, key, value and dense"
        )
    return found


def add_lora(model: nn.Module, rank: int, alpha: float, dropout: float, targets: list[str]) -> nn.Module:
    """Wrap `model` in a peft LoRA model; only the LoRA matrices and the head train."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        bias="none",
        target_modules=target_modules(model, targets),
        modules_to_save=head_modules(model),
    )
    with quiet_peft():
        return get_peft_model(model, config)


def load_lora(model: nn.Module, directory: Path) -> nn.Module:
    """Put the saved LoRA adapter (and head) of `directory` onto a freshly loaded base `model`."""
    from peft import PeftModel

    with quiet_peft():
        return PeftModel.from_pretrained(model, str(directory), is_trainable=False)


def save_lora(model: nn.Module, directory: Path) -> None:
    """peft's adapter layout: adapter_config.json + adapter_model.safetensors (LoRA matrices and head)."""
    with quiet_peft():
        model.save_pretrained(str(directory))


@contextlib.contextmanager
def quiet_peft():
    """peft 0.21 asks transformers 5 a deprecated question (is_gradient_checkpointing); not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def merged_copy(model: nn.Module) -> nn.Module:
    """A plain transformers model with the LoRA updates folded into its weights (the trained one is untouched)."""
    return copy.deepcopy(model).merge_and_unload()
