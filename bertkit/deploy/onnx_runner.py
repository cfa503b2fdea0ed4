"""Run an exported model (``model.onnx``) with ONNX Runtime where bertkit runs a torch model.

The runner looks like a torch model to the inference loop (``Engine.run_model``): it is called
with the padded batch as keyword tensors and returns a dict of output tensors, and it has the
``eval()``/``to()``/``config`` a loaded model has. So predict, evaluate and serve keep one loop,
one length-sorted batching and one decoding for both runtimes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertkit.errors import BertkitError
from bertkit.modeling.heads import LAYER_MIX
from bertkit.modeling.loading import first_line

ONNX_FILE = "model.onnx"


def is_exported(model_dir: str | Path) -> bool:
    """A directory written by ``bertkit export`` (it holds model.onnx)."""
    return (Path(model_dir) / ONNX_FILE).is_file()


def uses_onnx(model_dir: str | Path, settings: Any) -> bool:
    """--runtime onnx, or auto on an exported directory; torch on an exported directory is a mistake."""
    runtime = getattr(settings, "runtime", "auto")
    exported = is_exported(model_dir)
    if runtime == "onnx" and not exported:
        raise BertkitError(
            f"{model_dir}: no {ONNX_FILE}; make one with: bertkit export --model {model_dir} "
            "--output DIR, or drop --runtime onnx"
        )
    if runtime == "torch" and exported:
        raise BertkitError(
            f"{model_dir}: an exported ONNX model has no torch weights; pass --runtime onnx (or auto), "
            "or the model/ folder it was exported from"
        )
    return exported


def thread_count(threads: int) -> int:
    """--threads, where 0 means every core this process may use."""
    if threads > 0:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class SavedLayerMix:
    """The learned layer weights saved at export, so evaluate reports them as it does for torch models."""

    def __init__(self, mix: dict):
        self.weights = list(mix["weights"])
        self.scale = torch.tensor(float(mix["scale"]))

    def layer_weights(self) -> list[float]:
        return self.weights


class OnnxRunner:
    """An ONNX Runtime session behind the interface of a torch task model."""

    def __init__(self, path: Path, config: Any, threads: int = 0, spin: bool = True):
        self.path, self.config, self.threads = path, config, threads
        self.session = self.open_session(spin)
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.output_names = [node.name for node in self.session.get_outputs()]

    def open_session(self, spin: bool):
        import onnxruntime

        path = self.path
        options = onnxruntime.SessionOptions()
        # Intra-op threads do the matrix products; one inter-op thread: a BERT graph is a chain.
        options.intra_op_num_threads = thread_count(self.threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for damaged files
            raise BertkitError(f"{path}: cannot load the ONNX model ({first_line(error)}); export it again") from None

    def stop_spinning(self) -> None:
        """Let idle worker threads sleep instead of spinning: a server needs those cores for its HTTP work
        between batches (measured: 1.7x the requests/s with 32 clients on 2 cores)."""
        self.session = self.open_session(spin=False)

    def eval(self) -> OnnxRunner:
        return self

    def to(self, *args, **kwargs) -> OnnxRunner:
        return self  # ONNX Runtime runs on the CPU here; the batch is moved to the CPU below

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        feed = {name: inputs[name].cpu().numpy().astype(np.int64) for name in self.input_names if name in inputs}
        missing = [name for name in self.input_names if name not in feed]
        if missing:  # e.g. a model without segments fed a batch without token_type_ids: zeros are its meaning
            shape = inputs["input_ids"].shape
            feed.update({name: np.zeros(shape, dtype=np.int64) for name in missing})
        outputs = self.session.run(self.output_names, feed)
        return {name: torch.from_numpy(value) for name, value in zip(self.output_names, outputs)}


def load_runner(model_dir: str | Path, info: dict, threads: int = 0) -> OnnxRunner:
    """The runner of an exported directory (its config.json gives labels and sizes, as for torch)."""
    from transformers import AutoConfig

    model_dir = Path(model_dir)
    runner = OnnxRunner(model_dir / ONNX_FILE, AutoConfig.from_pretrained(str(model_dir)), threads)
    mix = info.get("export", {}).get("layer_weights")
    if mix:
        setattr(runner, LAYER_MIX, SavedLayerMix(mix))
    return runner


def set_torch_threads(threads: int) -> None:
    """--threads for the torch runtime (0 leaves torch's default: every core)."""
    if threads > 0:
        torch.set_num_threads(threads)


def load_for_inference(task, model_dir: str | Path, info: dict, settings: Any):
    """The model predict, evaluate and serve run: an ONNX runner for an exported directory, else torch."""
    if uses_onnx(model_dir, settings):
        return load_runner(model_dir, info, settings.threads)
    from bertkit.modeling.build import load_model

    set_torch_threads(getattr(settings, "threads", 0))
    return load_model(
        task, model_dir, info, allow_pickle=settings.allow_pickle, trust_remote_code=settings.trust_remote_code
    )
