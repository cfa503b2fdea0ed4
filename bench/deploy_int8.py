"""Deploy benchmark, issue #28 part (`bench/deploy.py --suite int8`): the default int8 export and fused graphs.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/deploy.py --suite int8   # bench/results/deploy-int8.json

The model of the issue: all-MiniLM-L6-v2 fine-tuned 1 epoch on the first 2,000 MR train sentences (batch 32,
lr 1e-4, max length 128, seed 42; `--model` reuses one fine-tuned so before). Then, in the same run:
1. `bertkit export --quantize int8` with no other flag (fused graph, built-in check inputs), and again with
   `--check-inputs` MR test.tsv (labelled: the accuracy decides); what each check measured, what stayed fp32;
2. MR test accuracy (1,066 sentences) of PyTorch and of every export, the drop in points;
3. predict speed on MR train sentences the model was not trained on (rows 2,001-4,000, or --predict-texts; whole calls,
   loading included): bertkit predict on PyTorch, ONNX fp32 and int8, each fused and unfused
   (`--optimize none`), two rounds interleaved, the faster round kept.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from classification import MR, read_tsv

TRAIN_ROWS = 2000
EXPORTS = {  # name -> export options beyond --model/--output
    "int8_default": {"quantize": "int8"},
    "int8_checked_on_test": {"quantize": "int8", "check_inputs": MR / "test.tsv"},
    "int8_unfused": {"quantize": "int8", "optimize": "none"},
    "fp32_fused": {"quantize": "none"},
    "fp32_unfused": {"quantize": "none", "optimize": "none"},
}


def export_all(model_dir: Path, work: Path) -> tuple[dict[str, Path], dict]:
    from bertkit.deploy.export import export_model
    from bertkit.errors import BertkitError
    from bertkit.settings import ExportSettings

    dirs, report = {}, {}
    for name, options in EXPORTS.items():
        started = time.perf_counter()
        try:
            dirs[name] = export_model(ExportSettings(model=str(model_dir), output=work / name, **options))
        except BertkitError as refusal:  # the default refusing is a finding, not a crash
            report[name] = {"refused": str(refusal)}
            continue
        record = json.loads((dirs[name] / "bertkit.json").read_text())["export"]
        report[name] = {
            "seconds": round(time.perf_counter() - started, 1),
            "check": record["check"],
            "fused_operators": record["fused_operators"],
            "int8_fp32_nodes": record["int8_fp32_nodes"],
            "mib": round((dirs[name] / "model.onnx").stat().st_size / 2**20, 1),
        }
        print(name, json.dumps(report[name]["check"].get("int8", {}))[:300], flush=True)
    return dirs, report


def accuracy(dirs: dict[str, Path]) -> dict:
    from bertkit.inference import evaluate_file
    from bertkit.settings import EvaluateSettings

    scores = {
        name: evaluate_file(EvaluateSettings(input=MR / "test.tsv", model=str(d)))["accuracy"]
        for name, d in dirs.items()
    }
    return {
        **{f"{name}_accuracy": round(value, 4) for name, value in scores.items()},
        **{f"{name}_drop_points": round(100 * (scores["torch"] - value), 2) for name, value in scores.items()},
    }


def speed(dirs: dict[str, Path], texts: list[str], work: Path, rounds: int = 2) -> dict:
    from bertkit.inference import predict_file
    from bertkit.settings import PredictSettings

    inputs = work / "speed.txt"
    inputs.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    best: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, so a burst of load on the shared machine hits every model alike
        for name, model_dir in dirs.items():
            started = time.perf_counter()
            predict_file(PredictSettings(input=inputs, model=str(model_dir), output=work / f"{name}.jsonl"))
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
            print(name, round(time.perf_counter() - started, 2), "s", flush=True)
    result = {"texts": len(texts), "rounds": rounds}
    for name, seconds in best.items():
        result[f"{name}_seconds"] = round(seconds, 2)
        result[f"{name}_texts_per_second"] = round(len(texts) / seconds, 1)
        result[f"{name}_speedup_vs_torch"] = round(best["torch"] / seconds, 2)
    return result


def run(model_dir: Path | None, work: Path, finetune_minilm, load, speed_texts: int = 0) -> dict:
    texts, labels = read_tsv(MR / "train.tsv")
    results: dict = {"suite": "int8", "train_rows": TRAIN_ROWS, "load_before": load()}
    if model_dir is None:
        train_file = work / "train.tsv"
        train_file.write_text(
            "text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in zip(texts[:TRAIN_ROWS], labels[:TRAIN_ROWS]))
        )
        started = time.perf_counter()
        model_dir = finetune_minilm(train_file, work)
        results["finetune_seconds"] = round(time.perf_counter() - started, 1)
    results["model"] = str(model_dir)
    dirs, results["exports"] = export_all(model_dir, work)
    dirs = {"torch": model_dir, **dirs}
    results["accuracy"] = accuracy(dirs)
    timed = [name for name in ("torch", "fp32_unfused", "fp32_fused", "int8_unfused", "int8_default") if name in dirs]
    spare = texts[TRAIN_ROWS : TRAIN_ROWS + (speed_texts or TRAIN_ROWS)]  # sentences the model was not trained on
    results["predict"] = speed({name: dirs[name] for name in timed}, spare, work)
    results["load_after"] = load()
    return results
