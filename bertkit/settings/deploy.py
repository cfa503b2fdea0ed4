"""The deploy commands' settings: ``bertkit export`` and ``bertkit serve``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bertkit.errors import BertkitError
from bertkit.settings.commands import RunSettings, validate_threads
from bertkit.settings.options import flag, opt, validate_choices


@dataclass
class ExportSettings(RunSettings):
    """``bertkit export``: a fine-tuned model as an ONNX model directory (optionally int8)."""

    model: str = opt("", "Fine-tuned model directory (runs/NAME/model), any task and strategy.", short="-m")
    output: Optional[Path] = opt(
        None, "Directory to write: model.onnx, config.json, tokenizer, bertkit.json, README.md.", short="-o"
    )
    quantize: str = opt(
        "none",
        "int8: dynamic int8 quantization of the weights (about 4x smaller, faster on CPU); none: fp32.",
        choices=("none", "int8"),
    )
    opset: int = opt(17, "ONNX opset version.")
    optimize: str = opt(
        "fused",
        "fused: apply ONNX Runtime's BERT fusions (attention, skip-LayerNorm, bias-GELU) before checking and "
        "quantizing, faster on CPU; none: the graph as traced.",
        choices=("fused", "none"),
    )
    check_inputs: Optional[Path] = opt(
        None,
        "Check the export on this file instead of bertkit's built-in inputs: labelled data (the format "
        "evaluate reads, e.g. your dev set) makes the int8 check compare the task's main metric "
        "(--max-metric-drop); predict inputs make it compare predictions (--min-agreement).",
    )
    max_metric_drop: float = opt(
        0.5,
        "int8 with a labelled --check-inputs: most points (accuracy 0.9 -> 90) of the task's main "
        "metric the int8 model may lose against PyTorch.",
    )
    check_margin: float = opt(
        0.1,
        "int8 without labels: agreement counts only inputs PyTorch decides by at least this margin "
        "(top probability minus the runner-up; label sets: twice the distance to the threshold; "
        "tagging: per word, 2p - 1 for the tag's probability p; QA: the n-best probabilities). "
        "Inputs on the boundary flip under any rounding. Regression compares every score.",
    )
    int8_max_fp32: int = opt(
        8,
        "int8: when the fully quantized model fails its check, keep up to this many of its most sensitive "
        "matrix products in fp32 (measured one by one, added greedily until the check passes; 0: never).",
    )
    int8_keep_fp32: str = opt(
        "none",
        "int8: leave these matrix products in fp32: head (the task head), last-ffn "
        "(also the last layer's feed-forward block), last-layer (the whole last layer and "
        "the head): closer to fp32, a little larger and slower.",
        choices=("none", "head", "last-ffn", "last-layer"),
    )
    int8_weight_bits: int = opt(
        7,
        "int8: bits used of each int8 weight: 7 (ONNX Runtime's reduce_range; a QA model "
        "lost 0.4 F1 against fp32 with 7, 2.1 with 8: see BENCHMARKS.md) or 8.",
    )
    min_agreement: float = opt(
        0.99,
        "int8 without labels: how far its decoded predictions must agree with PyTorch's on the check "
        "inputs clear of the boundary (--check-margin): share of labels, label sets, scores, word tags; "
        "QA: mean answer F1.",
    )
    overwrite: bool = opt(False, "Replace an existing directory in --output.")

    def validate(self) -> None:
        validate_choices(self)
        if not self.model:
            raise BertkitError("no model given; pass --model DIR (the model/ folder of a fine-tuning run)")
        if self.output is None:
            raise BertkitError("no output directory given; pass --output DIR")
        if not 0 <= self.min_agreement <= 1:
            raise BertkitError(f"--min-agreement is {self.min_agreement}; give a share from 0 to 1")
        if self.max_metric_drop < 0:
            raise BertkitError(f"--max-metric-drop is {self.max_metric_drop}; give points from 0 up")
        if not 0 <= self.check_margin < 1:
            raise BertkitError(f"--check-margin is {self.check_margin}; give a probability margin from 0 to below 1")
        if self.int8_max_fp32 < 0:
            raise BertkitError(f"--int8-max-fp32 is {self.int8_max_fp32}; give a count from 0 up")
        if self.int8_weight_bits not in (7, 8):
            raise BertkitError(f"--int8-weight-bits is {self.int8_weight_bits}; give 7 or 8")
        if not 11 <= self.opset <= 21:
            raise BertkitError(f"--opset is {self.opset}; give a version from 11 to 21")


@dataclass
class ServeSettings(RunSettings):
    """``bertkit serve``: an HTTP JSON service over a model directory (PyTorch or exported)."""

    model: str = opt(
        "", "Model directory: the model/ folder of a fine-tuning run or a 'bertkit export' output.", short="-m"
    )
    host: str = opt(
        "127.0.0.1",
        "Address to listen on (0.0.0.0: every interface; any address but loopback needs --api-key-file or --no-auth).",
    )
    port: int = opt(8000, "Port to listen on.")
    max_batch_size: int = opt(32, "Most inputs run together: requests arriving together are batched up to this.")
    max_wait_ms: float = opt(5.0, "How long the first request of a batch waits for others to join it (ms).")
    max_inputs: int = opt(256, "Most inputs one request may hold.")
    max_chars: int = opt(20000, "Most characters of text one input may hold.")
    max_body_mb: float = opt(10.0, "Largest request body (MB); a larger one is refused (413) before it is read whole.")
    api_key_file: Optional[Path] = opt(
        None,
        "A file whose first line is the token clients must send (Authorization: Bearer TOKEN) on every "
        "request but /health; required when --host is not a loopback address.",
    )
    auth: bool = opt(
        True,
        "Off (--no-auth): serve a non-loopback --host without a token (anyone who can reach it may use it).",
    )
    batch_size: int = opt(64, "Inputs per model call inside a batch.")
    runtime: str = opt(
        "auto",
        "What runs the model: auto (onnx for an exported directory, else torch), torch or onnx.",
        choices=("auto", "torch", "onnx"),
    )
    threads: int = opt(0, "CPU threads for the model (0: all cores).")
    log_level: str = opt("info", "Log level; info shows every batch's size.", choices=("debug", "info", "warning"))

    def validate(self) -> None:
        validate_choices(self)
        validate_threads(self)
        if not self.model:
            raise BertkitError("no model given; pass --model DIR (a fine-tuned or exported model directory)")
        if not 1 <= self.port <= 65535:
            raise BertkitError(f"--port is {self.port}; give a port from 1 to 65535")
        for name in ("max_batch_size", "max_inputs", "max_chars", "batch_size"):
            if getattr(self, name) < 1:
                raise BertkitError(f"{flag(name)} is {getattr(self, name)}; it must be at least 1")
        if self.max_body_mb <= 0:
            raise BertkitError(f"--max-body-mb is {self.max_body_mb}; give a size above 0")
        if not is_loopback(self.host) and self.api_key_file is None and self.auth:
            raise BertkitError(
                f"--host {self.host} is reachable from other machines; pass --api-key-file FILE (a token on "
                "line 1; clients send 'Authorization: Bearer TOKEN'), or --no-auth to serve it open"
            )
        if self.max_wait_ms < 0:
            raise BertkitError(f"--max-wait-ms is {self.max_wait_ms}; it cannot be negative")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
