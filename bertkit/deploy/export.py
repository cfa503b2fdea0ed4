"""`bertkit export`: a fine-tuned model directory -> an ONNX model directory that ONNX Runtime loads.

    export_model(ExportSettings(model="runs/sentiment/model", output=Path("runs/sentiment/onnx"), quantize="int8"))

The model is loaded exactly as predict loads it (any task, any strategy), LoRA updates are merged
into the weights, and a small wrapper module turns the task model into a function of plain tensors
(input_ids, attention_mask[, token_type_ids]) -> logits. Tracing it with torch's TorchScript-based
exporter (``dynamo=False``: robust for BERT with dynamic batch and sequence axes, and it records
the forward hooks through which adapters, the weighted layer mix and mean pooling act) gives a
graph with bertkit's additions built in. int8 is ONNX Runtime's dynamic quantization.

Before anything is written the export checks itself on a few built-in inputs run through the same
inference loop as predict: fp32 outputs must match PyTorch within ATOL + RTOL * |x|; an int8 model's
decoded predictions must agree with PyTorch's by at least 99% (--min-agreement) on the task's own
measure (`Task.agreement`): the same labels (classification, NLI), label sets (multi-label), scores
within 5% of their range (regression), tags per word (tagging), or a mean answer F1 (QA).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bertkit import __version__
from bertkit.atomic import publish_directory
from bertkit.deploy.onnx_runner import ONNX_FILE, OnnxRunner, is_exported
from bertkit.engine.batching import collate
from bertkit.errors import BertkitError
from bertkit.inference import Finetuned, load_finetuned
from bertkit.modeling.heads import layer_weights
from bertkit.modeling.loading import BERTKIT_FILE
from bertkit.modeling.strategies import unwrap
from bertkit.settings import ExportSettings, PredictSettings

LAYER_NODE = re.compile(r"/layer\.(\d+)/")  # an encoder layer's nodes: /model/bert/encoder/layer.5/...
ATOL, RTOL = 1e-4, 1e-3  # fp32: |onnx - torch| <= ATOL + RTOL * |torch| for every output value

# Inputs for the self-check: short and long, plain and punctuated, so padding and length vary.
CHECK_TEXTS = [
    "the film was a delight from start to finish",
    "a dull, lifeless and overlong story.",
    "Anna Berg moved from Oslo to Paris in 2019 and works for the city library.",
    "great",
    "I would not recommend this product to anyone; it broke after two days of use.",
    "The quick brown fox jumps over the lazy dog near the river bank every morning.",
    "honestly, the service was slow but the food made up for it",
    "What a waste of time!",
    "Tom Hill lives in Lima and has a parrot called Pepper.",
    "the screen is bright, the battery lasts all day and the price is fair",
    "no",
    "It rained in London on Monday, so the match between Leeds and York was moved to Friday evening.",
]


def check_texts() -> list[str]:
    """The check texts alone and every ordered pair of them joined (144): enough inputs that the 99%
    agreement of int8 allows a flip of a near-tie, as it would on real data."""
    joined = [f"{a} {b}" for a in CHECK_TEXTS for b in CHECK_TEXTS if a != b]
    return CHECK_TEXTS + joined


def check_records(task) -> list[dict]:
    """The built-in check inputs, shaped as the task's predict input records."""
    texts = check_texts()
    return [task.input_record(i, text, texts[(i + 1) % len(texts)]) for i, text in enumerate(texts)]


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


@dataclass
class CheckInputs:
    examples: list
    features: list[dict]
    pad_token_id: int


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
    check = check_inputs(finetuned, predict.max_length, settings.check_inputs)
    temporary = output.with_name(f".{output.name}.tmp")
    try:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        with tempfile.TemporaryDirectory(prefix="bertkit-export-") as scratch:
            fp32 = Path(scratch) / "model-fp32.onnx"
            trace(finetuned, check, fp32, settings.opset, settings.model)
            report = {"fp32": compare(finetuned, check, fp32, settings.model)}
            if settings.quantize == "int8":
                quantize_int8(fp32, temporary / ONNX_FILE, settings.int8_keep_fp32, settings.int8_weight_bits)
                report["int8"] = compare(
                    finetuned, check, temporary / ONNX_FILE, settings.model, settings.min_agreement
                )
            else:
                shutil.copyfile(fp32, temporary / ONNX_FILE)
        write_companions(finetuned, source, temporary, settings, report)
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


def check_inputs(finetuned: Finetuned, max_length: int, given: Path | None) -> CheckInputs:
    """Encode the check inputs (--check-inputs, else the built-in records) with the task's own reader
    and encoder, as predict would."""
    task, options = finetuned.task, finetuned.options
    with tempfile.TemporaryDirectory(prefix="bertkit-check-") as folder:
        path = Path(folder) / "check.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in check_records(task)), encoding="utf-8")
        examples = task.read(given or path, options, labelled=False)
    max_length = max_length or finetuned.info.get("max_length", 512)
    features, _ = task.encode(examples, finetuned.tokenizer, max_length, None, options)
    return CheckInputs(examples, features, finetuned.tokenizer.pad_token_id or 0)


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


def quantize_int8(source: Path, target: Path, keep_fp32: str = "none", weight_bits: int = 7) -> None:
    """Dynamic int8: weights stored as int8, activations quantized on the fly (no calibration data needed);
    a scale per output channel keeps the small weights of a layer from rounding to zero. `keep_fp32`
    (--int8-keep-fp32) leaves the matrix products `fp32_nodes` names unquantized. 7 weight bits (reduce_range,
    documented against int16 saturation in u8 x s8 kernels: 255 x 127 x 2 > 32767) kept a QA model within
    0.4 F1 of fp32, where 8 bits lost 2.1 (BENCHMARKS.md)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # its advice to pre-process applies to static quantization of CNNs
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=weight_bits == 7,
            nodes_to_exclude=fp32_nodes(source, keep_fp32),
        )
    finally:
        logging.disable(logging.NOTSET)


def fp32_nodes(path: Path, keep_fp32: str) -> list[str]:
    """The matrix products --int8-keep-fp32 names: "head" those after the encoder (pooler, classifier,
    qa_outputs); "last-ffn" also the last encoder layer's feed-forward pair; "last-layer" all of the last
    layer's (the exporter names nodes by module path: /model/bert/encoder/layer.5/output/dense/MatMul)."""
    if keep_fp32 == "none":
        return []
    import onnx

    names = [node.name for node in onnx.load(str(path)).graph.node if node.op_type in ("MatMul", "Gemm")]
    layers = [int(match.group(1)) for match in map(LAYER_NODE.search, names) if match]
    kept = [name for name in names if "/encoder/" not in name and "/embeddings/" not in name]
    last = f"/layer.{max(layers)}/" if layers else None
    if last and keep_fp32 == "last-ffn":
        kept += [name for name in names if f"{last}intermediate/" in name or f"{last}output/" in name]
    if last and keep_fp32 == "last-layer":
        kept += [name for name in names if last in name]
    return kept


def compare(
    finetuned: Finetuned, check: CheckInputs, path: Path, model: str, min_agreement: float | None = None
) -> dict:
    """Run the check features through torch and ONNX in the same inference loop and decode both as predict
    does; raise if they differ: fp32 (no `min_agreement`) beyond the tolerance on any output value, int8 when
    its predictions agree with PyTorch's less than `min_agreement` by the task's own measure (labels,
    label sets, scores within a tolerance, words' tags, answers' F1: `Task.agreement`)."""
    engine, features, task = finetuned.engine, check.features, finetuned.task
    reference = dict(engine.run_model(finetuned.model, features, 4, check.pad_token_id, task.outputs))
    exported = dict(engine.run_model(OnnxRunner(path, None, threads=0), features, 4, check.pad_token_id, task.outputs))
    worst, largest = 0.0, 0.0
    for index, outputs in reference.items():
        for name, expected in outputs.items():
            difference = np.abs(exported[index][name] - expected)
            worst = max(worst, float(np.max(difference - RTOL * np.abs(expected))))
            largest = max(largest, float(np.max(difference)))
    decoded = [
        task.decode(check.examples, features, iter(outputs.items()), finetuned.labels, finetuned.options)
        for outputs in (reference, exported)
    ]
    agreement = task.agreement(*decoded)
    result = {"inputs": len(check.examples), "max_abs_difference": largest, **agreement}
    if min_agreement is None and worst > ATOL:
        raise BertkitError(
            f"{model}: the ONNX model's outputs differ from PyTorch by {worst:.2g} (tolerance {ATOL} + "
            f"{RTOL} x |value|) on the check inputs; nothing was written: report this model's type"
        )
    if min_agreement is not None and agreement["agreement"] < min_agreement:
        raise BertkitError(
            f"{model}: the int8 model agrees with PyTorch on only {agreement['agreement']:.1%} "
            f"({agreement['measure']}, {agreement['compared']} compared; needs {min_agreement:.1%}); "
            "nothing was written: lower --min-agreement, or export with --quantize none (check on "
            "your own data with --check-inputs FILE)"
        )
    return result


def write_companions(finetuned: Finetuned, source: Path, target: Path, settings: ExportSettings, report: dict) -> None:
    """config.json, the tokenizer, bertkit.json (with an "export" record) and the model card."""
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
        "int8_keep_fp32": settings.int8_keep_fp32,
        "int8_weight_bits": settings.int8_weight_bits,
        "tolerance": {"atol": ATOL, "rtol": RTOL, "int8_min_agreement": settings.min_agreement},
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


def model_card(info: dict, target: Path) -> str:
    export, strategy = info["export"], info.get("strategy") or {"name": "full"}
    size = (target / ONNX_FILE).stat().st_size / 2**20
    checks = "; ".join(
        f"{kind}: largest output difference {r['max_abs_difference']:.2g}, "
        f"agreement {r['agreement']:.1%} ({r['measure']}) on {r['inputs']} inputs"
        for kind, r in export["check"].items()
    )
    return f"""# bertkit ONNX export: {info["task"]}

Exported with `bertkit export --model {export["source"]} --quantize {export["quantize"]} --opset {export["opset"]}`
(bertkit {export["versions"]["bertkit"]}, torch {export["versions"]["torch"]}, onnx {export["versions"]["onnx"]},
onnxruntime {export["versions"]["onnxruntime"]}).

- `{ONNX_FILE}` ({size:.1f} MiB): inputs {", ".join(export["inputs"])} (int64, [batch, sequence]);
  outputs {", ".join(export["outputs"])}. Weights: {weights_line(export)}.
- Task: {info["task"]}; labels: {", ".join(info.get("labels") or []) or "(start and end positions)"};
  strategy: {strategy["name"]} (LoRA merged into the weights; adapters, layer mix and mean pooling are in the graph).
- Self-check against PyTorch: {checks}.
- Tokenizer files, `config.json` and `bertkit.json` (labels, training settings) sit beside it.

Use it with `bertkit predict --model DIR inputs.txt`, `bertkit evaluate --model DIR test.tsv`,
`bertkit serve --model DIR`, or directly with `onnxruntime.InferenceSession("{ONNX_FILE}")`.
"""
