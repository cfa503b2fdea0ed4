"""`bertkit export`: a fine-tuned model directory -> an ONNX model directory that ONNX Runtime loads.

    export_model(ExportSettings(model="runs/sentiment/model", output=Path("runs/sentiment/onnx"), quantize="int8"))

The model is loaded exactly as predict loads it (any task, any strategy), LoRA updates are merged
into the weights, and a small wrapper module turns the task model into a function of plain tensors
(input_ids, attention_mask[, token_type_ids]) -> logits. Tracing it with torch's TorchScript-based
exporter (``dynamo=False``: robust for BERT with dynamic batch and sequence axes, and it records
the forward hooks through which adapters, the weighted layer mix and mean pooling act) gives a
graph with bertkit's additions built in. int8 is ONNX Runtime's dynamic quantization.

With --optimize fused (the default) the traced graph goes through ONNX Runtime's BERT fusions
(`graphs.fuse`; attention is traced in its eager form, the one the fusions recognise) before it is
checked and quantized.

Before anything is written the export checks itself (`checks`): an fp32 graph must give PyTorch's
outputs; an int8 graph must keep the task's main metric on a labelled --check-inputs file (at most
--max-metric-drop points lost), else agree with PyTorch's decoded predictions on the inputs PyTorch
decides clearly. When the fully quantized graph fails, the most sensitive matrix products stay fp32
(`graphs.int8_with_fallback`); the model card and bertkit.json list them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from bertkit import __version__
from bertkit.atomic import publish_directory
from bertkit.deploy.checks import ATOL, RTOL, CheckInputs, Int8Rule, Reference, read_check_inputs
from bertkit.deploy.graphs import fuse, int8_with_fallback
from bertkit.deploy.onnx_runner import ONNX_FILE, is_exported
from bertkit.engine.batching import collate
from bertkit.errors import BertkitError
from bertkit.inference import Finetuned, load_finetuned
from bertkit.modeling.heads import layer_weights
from bertkit.modeling.loading import BERTKIT_FILE
from bertkit.modeling.strategies import unwrap
from bertkit.settings import ExportSettings, PredictSettings


class ExportWrapper(nn.Module):
    """The task model as a function of positional tensors returning a tuple, which is what tracing needs."""

    def __init__(self, model: nn.Module, input_names: list[str], output_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.output_names = output_names

    def forward(self, *tensors: torch.Tensor):
        outputs = self.model(**dict(zip(self.input_names, tensors)))
        return tuple(outputs[name] for name in self.output_names)


def export_model(settings: ExportSettings) -> Path:
    """Write the export directory (atomically) and return it; raises BertkitError on any failure."""
    settings.validate()
    source, output = Path(settings.model), Path(settings.output)
    prepare_output(source, output, settings.overwrite)
    predict = PredictSettings(
        model=settings.model,
        input=Path("-"),
        runtime="torch",
        threads=0,
        allow_pickle=settings.allow_pickle,
        trust_remote_code=settings.trust_remote_code,
    )
    finetuned = load_finetuned(predict)
    if hasattr(finetuned.model, "merge_adapter"):  # peft LoRA: fold B @ A * alpha / rank into the weights
        finetuned.model.merge_adapter()
    check = read_check_inputs(finetuned, predict.max_length, settings.check_inputs)
    if settings.optimize == "fused":  # the fusions recognise eager attention, not torch's fused kernel
        unwrap(finetuned.model).set_attn_implementation("eager")
    reference = Reference(finetuned, check, settings.model)
    temporary = output.with_name(f".{output.name}.tmp")
    try:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        with tempfile.TemporaryDirectory(prefix="bertkit-export-") as scratch:
            traced = fp32 = Path(scratch) / "model-traced.onnx"
            trace(finetuned, check, traced, settings.opset, settings.model)
            fused = {}
            if settings.optimize == "fused":
                fp32 = Path(scratch) / "model-fused.onnx"
                fused = fuse(traced, fp32, unwrap(finetuned.model).config)
            report, kept = {"fp32": reference.check_fp32(fp32)}, []
            if settings.quantize == "int8":
                rule = Int8Rule(settings.max_metric_drop, settings.min_agreement, settings.check_margin)
                report["int8"], kept = int8_with_fallback(
                    fp32, temporary / ONNX_FILE, reference, rule, settings, Path(scratch)
                )
            else:
                shutil.copyfile(fp32, temporary / ONNX_FILE)
        write_companions(finetuned, source, temporary, settings, report, {"fused": fused, "int8_fp32_nodes": kept})
        publish_directory(temporary, output)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise BertkitError(
            f"{output}: cannot write the export ({error.strerror or error}); check the path, its "
            "permissions and free space"
        ) from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return output


def prepare_output(source: Path, output: Path, overwrite: bool) -> None:
    if is_exported(source):
        raise BertkitError(f"{source}: already an ONNX export; pass the model/ folder it was exported from")
    if output.resolve() == source.resolve():
        raise BertkitError(f"--output {output} is the model directory itself; pass a new directory")
    if output.exists() and not overwrite:
        raise BertkitError(f"{output}: already exists; pass --overwrite to replace it, or another --output")
    if output.exists() and not output.is_dir():
        raise BertkitError(f"{output}: is a file; --output takes a directory")


def model_io(finetuned: Finetuned) -> tuple[list[str], list[str]]:
    """Graph inputs (the tokenizer's, in forward order) and outputs (the task head's)."""
    inputs = ["input_ids", "attention_mask"]
    if "token_type_ids" in finetuned.tokenizer.model_input_names:
        inputs.append("token_type_ids")
    return inputs, list(finetuned.task.outputs)


def trace(finetuned: Finetuned, check: CheckInputs, path: Path, opset: int, model_name: str) -> None:
    input_names, output_names = model_io(finetuned)
    wrapper = ExportWrapper(finetuned.model, input_names, output_names).eval()  # eval: export restores the mode
    batch = collate(check.features[:2], check.pad_token_id)
    args = tuple(batch[name] if name in batch else torch.zeros_like(batch["input_ids"]) for name in input_names)
    per_text = finetuned.task.sequence_level  # [batch, labels]; the others are per token
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes.update({name: {0: "batch"} if per_text else {0: "batch", 1: "sequence"} for name in output_names})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on Python-side checks, which are constant for BERT
        try:
            torch.onnx.export(
                wrapper,
                args,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        except (RuntimeError, torch.onnx.errors.OnnxExporterError) as error:
            raise BertkitError(
                f"{model_name}: the ONNX exporter failed ({str(error).strip().splitlines()[0]}); try another --opset"
            ) from None


def write_companions(
    finetuned: Finetuned, source: Path, target: Path, settings: ExportSettings, report: dict, graph: dict
) -> None:
    """config.json, the tokenizer, bertkit.json (with an "export" record) and the model card; `graph` holds
    the fused operators and the matrix products the int8 search kept in fp32."""
    import onnx
    import onnxruntime

    unwrap(finetuned.model).config.save_pretrained(target)
    finetuned.tokenizer.save_pretrained(target)
    export = {
        "format": "onnx",
        "file": ONNX_FILE,
        "quantize": settings.quantize,
        "opset": settings.opset,
        "source": str(source.resolve()),
        "inputs": model_io(finetuned)[0],
        "outputs": model_io(finetuned)[1],
        "check": report,
        "optimize": settings.optimize,
        "fused_operators": graph["fused"],
        "int8_keep_fp32": settings.int8_keep_fp32,
        "int8_fp32_nodes": graph["int8_fp32_nodes"],
        "int8_weight_bits": settings.int8_weight_bits,
        "tolerance": {
            "atol": ATOL,
            "rtol": RTOL,
            "int8_max_metric_drop": settings.max_metric_drop,
            "int8_min_agreement": settings.min_agreement,
            "int8_check_margin": settings.check_margin,
        },
        "versions": {
            "bertkit": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    mix = layer_weights(unwrap(finetuned.model))
    if mix is not None:
        export["layer_weights"] = mix
    info = {**finetuned.info, "export": export}
    (target / BERTKIT_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (target / "README.md").write_text(model_card(info, target), encoding="utf-8")


def weights_line(export: dict) -> str:
    if export["quantize"] != "int8":
        return "fp32"
    kept = {
        "none": "",
        "head": ", the head in fp32",
        "last-ffn": ", the last feed-forward block and the head in fp32",
        "last-layer": ", the last layer and the head in fp32",
    }
    bits = export.get("int8_weight_bits", 8)
    return f"int8 (dynamic quantization, {bits}-bit weights{kept[export.get('int8_keep_fp32', 'none')]})"


def check_line(kind: str, report: dict) -> str:
    line = (
        f"{kind}: largest output difference {report['max_abs_difference']:.2g}, agreement "
        f"{report['agreement']:.1%} ({report['measure']}) on {report['inputs']} inputs"
    )
    if "metric" in report:
        line += (
            f", {report['metric']} {report['metric_pytorch']:.4g} (PyTorch) vs {report['metric_onnx']:.4g} "
            f"({report['metric_drop_points']:.2f} points lost)"
        )
    elif "clear_agreement" in report:
        line += f", {report['clear_agreement']:.1%} on the {report['clear_compared']} clear of the boundary"
    return line


def model_card(info: dict, target: Path) -> str:
    export, strategy = info["export"], info.get("strategy") or {"name": "full"}
    size = (target / ONNX_FILE).stat().st_size / 2**20
    checks = "; ".join(check_line(kind, r) for kind, r in export["check"].items())
    fused = ", ".join(f"{name} x{count}" for name, count in export.get("fused_operators", {}).items())
    graph = (
        f"ONNX Runtime's BERT fusions ({fused or 'none applied'})" if export.get("optimize") == "fused" else "as traced"
    )
    kept = export.get("int8_fp32_nodes") or []
    if kept:
        graph += f"; kept in fp32 because the fully quantized graph failed its check: {', '.join(kept)}"
    return f"""# bertkit ONNX export: {info["task"]}

Exported with `bertkit export --model {export["source"]} --quantize {export["quantize"]} --opset {export["opset"]}`
(bertkit {export["versions"]["bertkit"]}, torch {export["versions"]["torch"]}, onnx {export["versions"]["onnx"]},
onnxruntime {export["versions"]["onnxruntime"]}).

- `{ONNX_FILE}` ({size:.1f} MiB): inputs {", ".join(export["inputs"])} (int64, [batch, sequence]);
  outputs {", ".join(export["outputs"])}. Weights: {weights_line(export)}. Graph: {graph}.
- Task: {info["task"]}; labels: {", ".join(info.get("labels") or []) or "(start and end positions)"};
  strategy: {strategy["name"]} (LoRA merged into the weights; adapters, layer mix and mean pooling are in the graph).
- Self-check against PyTorch: {checks}.
- Tokenizer files, `config.json` and `bertkit.json` (labels, training settings) sit beside it.

Use it with `bertkit predict --model DIR inputs.txt`, `bertkit evaluate --model DIR test.tsv`,
`bertkit serve --model DIR`, or directly with `onnxruntime.InferenceSession("{ONNX_FILE}")`.
"""
