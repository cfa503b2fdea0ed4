"""Which parameters a fine-tuning strategy trains, and which options fit together.

- ``full``: everything (the default, usually the most accurate).
- ``frozen``: only the task head; the pretrained encoder stays exactly as it was.
- ``adapters``: small bottleneck adapters in every encoder layer, plus the head.
- ``lora``: low-rank updates of the encoder's projections through ``peft``, plus the head.

Whatever bertkit adds (``bertkit_*`` modules: adapters, the layer mix) always trains. The "head"
is every module outside the pretrained base model plus the base model's pooler, which exists
only for sequence-level heads and is part of reading one vector per text.
"""

from __future__ import annotations

from torch import nn

from bertkit.errors import BertkitError

STRATEGIES = ("full", "frozen", "adapters", "lora")
POOLINGS = ("cls", "mean")
LAYER_MIXES = ("last", "weighted")
ADDED = "bertkit_"


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def is_added(name: str) -> bool:
    return ADDED in name


def is_head(name: str, model: nn.Module) -> bool:
    prefix = model.base_model_prefix
    return not name.startswith(prefix + ".") or name.startswith(prefix + ".pooler.")


def head_modules(model: nn.Module) -> list[str]:
    """Names of the head's modules (e.g. ['bert.pooler', 'classifier']), for peft's modules_to_save."""
    prefix = model.base_model_prefix
    names = [
        name
        for name, child in model.named_children()
        if name != prefix and not is_added(name) and any(True for _ in child.parameters())
    ]
    if getattr(model.base_model, "pooler", None) is not None:
        names.insert(0, f"{prefix}.pooler")
    return names


def select_trainable(model: nn.Module, strategy: str) -> None:
    """Set requires_grad for `strategy`; under lora, peft has already chosen for the pretrained part."""
    inner = unwrap(model)
    for name, parameter in inner.named_parameters():
        if is_added(name):
            parameter.requires_grad_(True)
        elif strategy == "full":
            parameter.requires_grad_(True)
        elif strategy in ("frozen", "adapters"):
            parameter.requires_grad_(is_head(name, inner))


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, each tensor once."""
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in unique if p.requires_grad), sum(p.numel() for p in unique)


def validate_strategy(settings, sequence_level: bool) -> None:
    """Check the strategy options of FinetuneSettings; raises BertkitError naming the option.

    `sequence_level`: the task's head reads one vector per text (the only case where --pooling means anything).
    """
    choices = {
        "strategy": (settings.strategy, STRATEGIES),
        "pooling": (settings.pooling, POOLINGS),
        "layer_mix": (settings.layer_mix, LAYER_MIXES),
    }
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise BertkitError(f"--{name.replace('_', '-')} is '{value}'; choose one of: {', '.join(allowed)}")
    for name in ("adapter_size", "lora_rank"):
        if getattr(settings, name) < 1:
            raise BertkitError(f"--{name.replace('_', '-')} is {getattr(settings, name)}; it must be at least 1")
    if settings.lora_alpha <= 0:
        raise BertkitError(f"--lora-alpha is {settings.lora_alpha}; it must be above 0")
    if not 0 <= settings.lora_dropout < 1:
        raise BertkitError(f"--lora-dropout is {settings.lora_dropout}; give a share from 0 up to (not including) 1")
    if not lora_targets(settings.lora_targets):
        raise BertkitError("--lora-targets is empty; name the projections to adapt, e.g. query,key,value,dense")
    if settings.merge and settings.strategy != "lora":
        raise BertkitError(
            f"--merge folds LoRA updates into the weights; it needs --strategy lora (not {settings.strategy})"
        )
    if settings.pooling == "mean" and not sequence_level:
        raise BertkitError(
            f"--pooling mean applies to tasks with one label per text; --task {settings.task} "
            "labels tokens or spans, so drop --pooling"
        )


def lora_targets(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]
