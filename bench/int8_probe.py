"""Probe: which part of dynamic int8 costs a QA model its F1 (quality only, plus size and one predict call).

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/int8_probe.py     # after bench/deploy_tasks.py

Takes the fp32 and int8 exports bench/deploy_tasks.py wrote for QA, re-quantizes the fp32 graph with one
onnxruntime option changed at a time (model.onnx replaced in a copy of the int8 directory), and scores each
on the same 500 questions. Results: bench/results/int8-probe.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
import time
from pathlib import Path

from common import RESULTS, save_results

from bertkit.inference import evaluate_file, predict_file
from bertkit.settings import EvaluateSettings, PredictSettings

WORK = RESULTS / "deploy-tasks-work" / "full" / "qa"


def variants(names: list[str]) -> dict[str, dict]:
    """quantize_dynamic options per probe: which nodes stay fp32, which op types are quantized, ..."""

    def matching(pattern: str) -> list[str]:
        return [n for n in names if re.search(pattern, n)]

    return {
        "embeddings_fp32": {"op_types_to_quantize": ["MatMul"]},
        "reduce_range": {"reduce_range": True},
        "per_tensor": {"per_channel": False},
        "ffn_out_fp32_all_layers": {"nodes_to_exclude": matching(r"/layer\.\d+/output/dense/")},
        "ffn_fp32_all_layers": {"nodes_to_exclude": matching(r"/layer\.\d+/(intermediate|output)/dense/")},
        "attention_fp32_all_layers": {"nodes_to_exclude": matching(r"/attention/")},
        "first_layer_fp32": {"nodes_to_exclude": matching(r"/layer\.0/")},
    }


def main() -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="probe names to run (default: all)")
    parser.add_argument("--work", type=Path, default=WORK, help="bench/deploy_tasks.py's QA work folder")
    parser.add_argument("--name", default="int8-probe", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args()
    work = args.work
    fp32, int8, scored = work / "onnx_fp32" / "model.onnx", work / "onnx_int8", work / "eval.json"
    names = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type in ("MatMul", "Gemm")]
    results: dict = {}
    for name, options in variants(names).items():
        if args.only and name not in args.only:
            continue
        target = work / f"probe_{name}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(int8, target)
        settings = {"weight_type": QuantType.QInt8, "per_channel": True, **options}
        quantize_dynamic(str(fp32), str(target / "model.onnx"), **settings)
        metrics = evaluate_file(EvaluateSettings(input=scored, model=str(target)))
        started = time.perf_counter()
        predict_file(PredictSettings(input=scored, model=str(target), output=target / "predictions.jsonl"))
        results[name] = {
            "f1": round(metrics["f1"], 2),
            "exact_match": round(metrics["exact_match"], 2),
            "predict_seconds": round(time.perf_counter() - started, 2),
            "mib": round((target / "model.onnx").stat().st_size / 2**20, 1),
            "excluded_nodes": len(options.get("nodes_to_exclude", [])),
        }
        print(name, results[name], flush=True)
        save_results(args.name, results)


if __name__ == "__main__":
    main()
