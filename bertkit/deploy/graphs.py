"""What export does to the traced graph: ONNX Runtime's BERT fusions, and dynamic int8 quantization with
the most sensitive matrix products kept in fp32 when the fully quantized graph fails its check.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path

from bertkit.deploy.checks import Int8Rule, Reference
from bertkit.errors import BertkitError

LAYER_NODE = re.compile(r"/layer\.(\d+)/")  # an encoder layer's nodes: /model/bert/encoder/layer.5/...
# What dynamic quantization turns into integer arithmetic: the matrix products, and the embedding tables
# (a Gather from a weight, or the fused EmbedLayerNormalization).
PRODUCTS = ("MatMul", "Gemm", "Attention", "EmbedLayerNormalization")
SENSITIVITY_SAMPLE = 32  # check features on which each product's own int8 error is measured


@contextmanager
def quiet_onnxruntime_tools():
    """Their advice (pre-process for static quantization, fusion statistics) is not the user's concern."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def fuse(source: Path, target: Path, config) -> dict:
    """ONNX Runtime's transformer optimizer for BERT (attention, embedding and skip LayerNorm, bias-GELU
    fusions; the Python pass only, opt_level 0, so the graph stays portable across CPUs); returns the
    count of each fused operator it made."""
    from onnxruntime.transformers.optimizer import optimize_model

    with quiet_onnxruntime_tools():
        try:
            optimized = optimize_model(
                str(source),
                model_type="bert",
                # 0: read from the graph (configs that name them otherwise, e.g. DistilBERT's n_heads / dim)
                num_heads=getattr(config, "num_attention_heads", 0),
                hidden_size=getattr(config, "hidden_size", 0),
                opt_level=0,
                use_gpu=False,
            )
        except Exception as error:  # the optimizer failing on a graph it does not know: name the way out
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise BertkitError(
                f"ONNX Runtime's BERT fusions failed on this model ({first}); export with --optimize none"
            ) from None
        optimized.save_model_to_file(str(target))
        return {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}


def quantize_int8(source: Path, target: Path, weight_bits: int, excluded: list[str]) -> None:
    """Dynamic int8: weights stored as int8, activations quantized on the fly (no calibration data needed);
    a scale per output channel keeps the small weights of a layer from rounding to zero. 7 weight bits
    (reduce_range, documented against int16 saturation in u8 x s8 kernels: 255 x 127 x 2 > 32767) kept a QA
    model within 0.4 F1 of fp32, where 8 bits lost 2.1 (BENCHMARKS.md). `excluded` products stay fp32."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_onnxruntime_tools():
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=weight_bits == 7,
            # it rewrites each Gemm as a MatMul named after it before it looks at the exclusions
            nodes_to_exclude=excluded + [f"{name}_MatMul" for name in excluded],
            # shape inference stops at the fused (com.microsoft) operators; their outputs are float
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )


def products(path: Path) -> list[str]:
    """The names of what quantization would quantize, in graph (topological) order."""
    import onnx

    graph = onnx.load(str(path)).graph
    weights = {tensor.name for tensor in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type in PRODUCTS or (node.op_type == "Gather" and node.input[0] in weights)
    ]


def fp32_nodes(path: Path, keep_fp32: str) -> list[str]:
    """The matrix products --int8-keep-fp32 names: "head" those after the encoder (pooler, classifier,
    qa_outputs); "last-ffn" also the last encoder layer's feed-forward pair; "last-layer" all of the last
    layer's (the exporter names nodes by module path: /model/bert/encoder/layer.5/output/dense/MatMul; a
    fused graph's attention nodes are numbered instead, the last one being the last layer's)."""
    if keep_fp32 == "none":
        return []
    import onnx

    nodes = onnx.load(str(path)).graph.node
    names = [node.name for node in nodes if node.op_type in ("MatMul", "Gemm")]
    attention = [node.name for node in nodes if node.op_type == "Attention"]
    layers = [int(match.group(1)) for match in map(LAYER_NODE.search, names) if match]
    kept = [name for name in names if "/encoder/" not in name and "/embeddings/" not in name]
    last = f"/layer.{max(layers)}/" if layers else None
    if last and keep_fp32 == "last-ffn":
        kept += [name for name in names if f"{last}intermediate/" in name or f"{last}output/" in name]
    if last and keep_fp32 == "last-layer":
        kept += [name for name in names if last in name] + attention[-1:]
    return kept


def int8_with_fallback(
    fp32: Path, target: Path, reference: Reference, rule: Int8Rule, settings, scratch: Path
) -> tuple[dict, list[str]]:
    """Quantize `fp32` into `target` and check it. When the fully quantized graph fails, rank the products
    by the error each alone adds when quantized (its mean output deviation on a sample of the check
    inputs), then keep them in fp32 greedily, most sensitive first, until the check passes or
    --int8-max-fp32 are kept. Returns (the check report, the products kept in fp32 by this search);
    raises BertkitError, writing nothing, when no graph within the cap passes."""
    excluded = fp32_nodes(fp32, settings.int8_keep_fp32)
    quantize_int8(fp32, target, settings.int8_weight_bits, excluded)
    report = reference.judge_int8(target, rule)
    if report["passed"] or settings.int8_max_fp32 == 0:
        return finished(report, [], reference, rule)
    ranked = rank_by_sensitivity(fp32, reference, settings, excluded, scratch)
    kept: list[str] = []
    first = report
    for name in ranked[: settings.int8_max_fp32]:
        kept.append(name)
        quantize_int8(fp32, target, settings.int8_weight_bits, excluded + kept)
        report = reference.judge_int8(target, rule)
        if report["passed"]:
            break
    if kept:  # the report of the graph that failed first, beside the one that passed
        report["fully_quantized"] = first
    return finished(report, kept, reference, rule)


def rank_by_sensitivity(fp32: Path, reference: Reference, settings, excluded: list[str], scratch: Path) -> list[str]:
    """The products not already kept, most sensitive first: each quantized alone, the rest left fp32."""
    candidates = [name for name in products(fp32) if name not in excluded]
    probe = scratch / "probe.onnx"
    errors = {}
    for name in candidates:
        quantize_int8(fp32, probe, settings.int8_weight_bits, [other for other in candidates if other != name])
        errors[name] = reference.deviation(probe, SENSITIVITY_SAMPLE)
    probe.unlink(missing_ok=True)
    return sorted(candidates, key=lambda name: -errors[name])


def finished(report: dict, kept: list[str], reference: Reference, rule: Int8Rule) -> tuple[dict, list[str]]:
    if report["passed"]:
        return report, kept
    found = (
        f"{report['metric_drop_points']:.2f} points of {report['metric']} lost"
        if reference.check.labelled
        else f"{report['clear_agreement']:.1%} agreement ({report['measure']}, {report['clear_compared']} compared)"
    )
    tried = f" even with {len(kept)} matrix products kept in fp32" if kept else ""
    raise BertkitError(
        f"{reference.model_name}: the int8 model fails its check{tried}: {found}, needs "
        f"{rule.describe(reference.check.labelled)}; nothing was written: raise --int8-max-fp32, relax the "
        "rule, or export with --quantize none"
    )
