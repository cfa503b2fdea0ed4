"""The one place where task models are built, saved and loaded, with their fine-tuning strategy.

    spec = strategy_spec(settings, model_dir)          # recorded in bertkit.json as "strategy"
    model = build_model(task, model_dir, labels, spec)  # finetune
    save_model(model, tokenizer, target, info, card)    # the best model of a run
    model = load_model(task, model_dir, info)           # predict / evaluate

What a model directory holds, by strategy:
- full, frozen (and lora with --merge): a plain transformers model (``model.safetensors``);
- adapters: ``config.json`` and ``bertkit_weights.safetensors`` with only the adapters and the head;
- lora: peft's ``adapter_config.json`` + ``adapter_model.safetensors`` (LoRA matrices and head).
Adapter and LoRA directories reference their base model by path and a checksum of its weights.
Anything bertkit adds (the weighted layer mix) goes to ``bertkit_weights.safetensors`` too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch import nn

from bertkit.errors import BertkitError
from bertkit.modeling.adapters import add_adapters
from bertkit.modeling.heads import add_layer_mix, add_mean_pooling
from bertkit.modeling.loading import load_pretrained, save_model_dir
from bertkit.modeling.lora import add_lora, load_lora, merged_copy, save_lora
from bertkit.modeling.reinit import reinit_plan, reinitialize
from bertkit.modeling.strategies import is_added, is_head, lora_targets, select_trainable, unwrap
from bertkit.tasks.base import Task

WEIGHTS_FILE = "bertkit_weights.safetensors"
REFERENCING = ("adapters", "lora")  # strategies whose saved model needs its base model


def strategy_spec(settings, model_name: str) -> dict:
    """The strategy and its options as bertkit.json records them (with the base reference where needed)."""
    spec = {
        "name": settings.strategy,
        "layer_mix": settings.layer_mix,
        "pooling": settings.pooling,
        "reinit": reinit_plan(settings.reinit_pooler, settings.reinit_layers, model_name),
    }
    if settings.strategy == "adapters":
        spec["adapter_size"] = settings.adapter_size
    if settings.strategy == "lora":
        spec.update(
            rank=settings.lora_rank,
            alpha=settings.lora_alpha,
            dropout=settings.lora_dropout,
            targets=lora_targets(settings.lora_targets),
            merge=settings.merge,
        )
    if needs_base(spec):
        if not Path(model_name).is_dir():
            raise BertkitError(
                f"--strategy {settings.strategy} saves a reference to the base model's files; "
                f"pass a local model directory to --model (not '{model_name}')"
            )
        spec["base"] = {"path": str(Path(model_name).resolve()), "sha256": weights_checksum(model_name)}
    return spec


def needs_base(spec: dict) -> bool:
    return spec["name"] in REFERENCING and not spec.get("merge")


def build_model(task: Task, model_name: str, labels: list[str], spec: dict, **load_options) -> nn.Module:
    """The task's transformers model from `model_name` with a fresh head, set up for `spec`.

    `load_options` (allow_pickle, trust_remote_code) go to `load_pretrained`."""
    model = load_pretrained(task.auto_model, model_name, **load_options, **task.head_config(labels))
    reinitialize(model, spec.get("reinit") or {})
    if spec["name"] == "lora":
        model = add_lora(model, spec["rank"], spec["alpha"], spec["dropout"], spec["targets"])
    attach(unwrap(model), spec)
    select_trainable(model, spec["name"])
    return model


def attach(model: nn.Module, spec: dict) -> None:
    """Add what the strategy inserts into the forward pass (after peft, so its hooks see the final modules)."""
    if spec["name"] == "adapters":
        add_adapters(model, spec["adapter_size"])
    if spec.get("layer_mix") == "weighted":
        add_layer_mix(model)
    if spec.get("pooling") == "mean":
        add_mean_pooling(model)


def save_model(model: nn.Module, tokenizer, target: Path, info: dict, card: str) -> None:
    """Write model/ (atomically) in the layout of the model's strategy."""
    spec = info.get("strategy") or {"name": "full"}
    save_model_dir(model, tokenizer, target, info, card, write_weights=lambda d: write_weights(model, d, spec))


def write_weights(model: nn.Module, directory: Path, spec: dict) -> None:
    inner = unwrap(model)
    state = inner.state_dict()
    extra = {name: tensor for name, tensor in state.items() if is_added(name)}
    if spec["name"] == "lora" and not spec.get("merge"):
        save_lora(model, directory)
        inner.config.save_pretrained(directory)
    elif spec["name"] == "adapters":
        inner.config.save_pretrained(directory)
        extra.update((name, tensor) for name, tensor in state.items() if is_head(name, inner))
    else:
        plain = merged_copy(model) if spec["name"] == "lora" else inner
        plain.save_pretrained(
            directory,
            safe_serialization=True,
            state_dict={k: v for k, v in plain.state_dict().items() if not is_added(k)},
        )
    if extra:
        from safetensors.torch import save_file

        save_file(
            {name: tensor.detach().contiguous().cpu() for name, tensor in extra.items()}, str(directory / WEIGHTS_FILE)
        )


def load_model(task: Task, model_dir: str | Path, info: dict, **load_options) -> nn.Module:
    """The fine-tuned model of `model_dir` (bertkit.json read into `info`) for `task`, ready for inference.

    `load_options` (allow_pickle, trust_remote_code) go to `load_pretrained`."""
    spec = info.get("strategy") or {"name": "full"}
    model_dir = Path(model_dir)
    if needs_base(spec):
        base = check_base(spec, model_dir)
        model = load_pretrained(task.auto_model, base, **load_options, **task.head_config(info.get("labels") or []))
        if spec["name"] == "lora":
            model = load_lora(model, model_dir)
    else:
        model = load_pretrained(task.auto_model, str(model_dir), **load_options)
    attach(unwrap(model), spec)
    load_extra_weights(unwrap(model), model_dir, spec)
    model.eval()
    return model


def check_base(spec: dict, model_dir: Path) -> str:
    """The base model's path, after checking it is there and unchanged."""
    base = spec.get("base") or {}
    path = base.get("path", "")
    what = "adapters" if spec["name"] == "adapters" else "LoRA adapter"
    if not path or not Path(path).is_dir():
        raise BertkitError(
            f"{model_dir}: its base model {path or '(unrecorded)'} is missing; this model holds only its "
            f"{what} and head, so restore the base model at that path"
        )
    if weights_checksum(path) != base.get("sha256"):
        raise BertkitError(
            f"{model_dir}: its base model {path} has changed since fine-tuning (the weights' checksum "
            "differs); restore the original base model or fine-tune again"
        )
    return path


def load_extra_weights(model: nn.Module, model_dir: Path, spec: dict) -> None:
    """Load bertkit_weights.safetensors into the model: every added (and, for adapters, head) tensor must be there."""
    expected = {name for name in model.state_dict() if is_added(name)}
    if spec["name"] == "adapters":
        expected |= {name for name in model.state_dict() if is_head(name, model)}
    if not expected:
        return
    path = model_dir / WEIGHTS_FILE
    if not path.is_file():
        raise BertkitError(
            f"{path}: missing; this {spec['name']} model cannot be used without it "
            "(copy the whole model directory, or fine-tune again)"
        )
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    missing = sorted(expected - set(tensors))
    if missing:
        raise BertkitError(
            f"{path}: lacks {len(missing)} tensors (e.g. {missing[0]}); the directory is damaged or from "
            "a different run: fine-tune again"
        )
    model.load_state_dict(tensors, strict=False)


def weights_checksum(model_dir: str | Path) -> str:
    """sha256 over the names and bytes of a model directory's safetensors files."""
    digest = hashlib.sha256()
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise BertkitError(f"{model_dir}: no .safetensors weights; adapters and LoRA need a model saved as safetensors")
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()
