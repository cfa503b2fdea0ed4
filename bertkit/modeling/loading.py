"""Finding, loading and saving model directories, offline first.

A saved model is a plain Hugging Face directory (config.json, model.safetensors, tokenizer
files) plus ``bertkit.json`` (task, labels, settings), so transformers loads it on its own.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bertkit.atomic import publish_directory, writing
from bertkit.errors import BertkitError

BERTKIT_FILE = "bertkit.json"
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def quiet_transformers() -> None:
    """Hide transformers' notices about freshly initialised heads: that is what fine-tuning means."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def resolve_model_dir(name: str, option: str = "--model") -> str:
    """A local directory as-is; a hub name only when online, else a one-line error."""
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BertkitError(
                f"{path}: not a model directory (no config.json); pass the model/ folder of a run "
                "or a Hugging Face model directory"
            )
        return str(path)
    if path.exists():
        raise BertkitError(f"{path}: is a file; {option} takes a model directory")
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep + os.sep in name
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if looks_local or offline:
        reason = (
            "no such directory" if looks_local else "no such local directory, and the hub is offline (HF_HUB_OFFLINE=1)"
        )
        raise BertkitError(f"{name}: {reason}; pass a local model directory to {option}")
    return name  # a hub name while online: transformers fetches it, and a failure becomes one line below


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    # transformers would otherwise build an empty tokenizer (special tokens only) and train on nothing.
    if Path(model).is_dir() and not any((Path(model) / name).is_file() for name in TOKENIZER_FILES):
        raise BertkitError(
            f"{model}: no tokenizer files (tokenizer.json or vocab.txt); copy them from the model the run started from"
        )

    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise BertkitError(
            f"{model}: cannot load a tokenizer ({first_line(error)}); the model directory needs "
            "tokenizer files (tokenizer.json or vocab.txt)"
        ) from None
    if not tokenizer.is_fast:
        raise BertkitError(f"{model}: only a slow tokenizer is available; bertkit needs a fast one (tokenizer.json)")
    return tokenizer


def load_pretrained(
    auto_class: str, model: str, *, allow_pickle: bool = False, trust_remote_code: bool = False, **kwargs: Any
):
    """Load weights into a transformers Auto class: safetensors unless --allow-pickle, no remote code unless asked."""
    import transformers

    quiet_transformers()
    use_safetensors = weights_format(model, allow_pickle) == "safetensors"
    cls = getattr(transformers, auto_class)
    try:
        return cls.from_pretrained(
            model, use_safetensors=use_safetensors, trust_remote_code=trust_remote_code, **kwargs
        )
    except Exception as error:  # transformers, safetensors and torch each raise their own kinds
        if isinstance(error, (KeyboardInterrupt, MemoryError)):
            raise
        raise BertkitError(
            f"{model}: cannot load the model ({first_line(error)}); check that the directory holds "
            "config.json and model.safetensors from a complete run"
        ) from None


def model_config(model: str, trust_remote_code: bool = False):
    """The transformers config of a model directory (no weights read)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise BertkitError(f"{model}: cannot read its config.json ({first_line(error)})") from None


def weights_format(model: str, allow_pickle: bool) -> str:
    """'safetensors' or 'pickle' for a local directory (a hub name: safetensors); refuses unsafe or missing weights."""
    path = Path(model)
    if not path.is_dir() or any((path / name).is_file() for name in SAFE_WEIGHTS):
        return "safetensors"
    if any((path / name).is_file() for name in PICKLE_WEIGHTS):
        if not allow_pickle:
            raise BertkitError(
                f"{path}: holds only pytorch_model.bin, a pickle file that can run code when loaded; "
                "convert it to model.safetensors, or pass --allow-pickle if you trust its source"
            )
        return "pickle"
    raise BertkitError(f"{path}: no weights (model.safetensors); pass a directory saved by a complete run")


def read_bertkit_file(model_dir: str) -> dict:
    path = Path(model_dir) / BERTKIT_FILE
    if not path.is_file():
        raise BertkitError(f"{model_dir}: no {BERTKIT_FILE}; pass the model/ folder of a 'bertkit finetune' run")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise BertkitError(f"{path}: damaged (not valid JSON); re-run the fine-tuning or restore the file") from None


def pretraining_record(model_dir: str) -> dict | None:
    """The bertkit.json of a `bertkit pretrain` run's model (how it was made), or None for any other model
    (from elsewhere, fine-tuned, or a file that cannot be read: those are trusted as they are)."""
    path = Path(model_dir) / BERTKIT_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("task") == "pretraining" else None


def save_model_dir(
    model, tokenizer, target: Path, info: dict, card: str, write_weights: Callable[[Path], None] | None = None
) -> None:
    """Write model/ completely in a temporary directory, then move it into place (see bertkit.atomic).

    `write_weights(directory)` writes the weights when a plain `save_pretrained` is not the layout
    (see bertkit/modeling/build.py)."""
    temporary = target.with_name(f".{target.name}.tmp")
    if temporary.exists():
        shutil.rmtree(temporary)
    kept = f"the previous {target.name}/ is intact" if target.exists() else f"no {target.name}/ was written"
    with writing(temporary, f"{target.name}/", kept):
        if write_weights is None:
            model.save_pretrained(temporary, safe_serialization=True)
        else:
            temporary.mkdir(parents=True)
            write_weights(temporary)
        tokenizer.save_pretrained(temporary)
        (temporary / BERTKIT_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (temporary / "README.md").write_text(card, encoding="utf-8")
        publish_directory(temporary, target)


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
