"""Large inputs (issue #13): encoding classification rows from Parquet through datasets.map against today's
reader, and the pretraining cache build against the fast tokenizer's raw batch throughput.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/data_inputs.py [--sizes 200000 2000000] [--timeout 290]
        [--modes today arrow streamed] [--today-max 400000] [--skip-pretrain]

1. Rows synthesised from MR polarity `train.tsv` (each row: sentence i plus another sentence, so rows
   differ), written once to a TSV and to Parquet (not timed). Each measurement runs in a fresh process
   (peak RSS is the process's own `ru_maxrss`; the import baseline is reported beside it):
   - today: `task.read(TSV)` + `task.encode` (examples and features as Python objects),
   - arrow: `task.read(Parquet)` (through datasets, examples in memory) + the task's encode through
     datasets.map into memory-mapped Arrow, then the same again (a repeated run: read from the cache),
   - streamed: what `--cache-encoded` does now: `task.stream(Parquet)` (batches into Arrow, examples made a
     batch at a time), label set in a streaming pass, features written batch by batch; then again.
   Each process gets a fresh `datasets` cache; the scaling smallest -> largest size is in "scaling".
2. `build_cache` of `bertkit pretrain` on the Gutenberg corpus (60 MB) against one pass of the same
   tokenizer over the same lines in batches of 1,000 (`add_special_tokens=False`), both single-threaded.
The tokenizer is all-MiniLM-L6-v2's (bert-base-uncased WordPiece). Results: bench/results/data_inputs-SIZES.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, ROOT, minilm_dir, require_data, save_results

MR = DATA / "classification" / "mr-polarity" / "train.tsv"
CORPUS = DATA / "corpus" / "gutenberg" / "corpus.txt"
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/bertkit-bench-data"))


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def synthesise(rows: int) -> tuple[Path, Path]:
    """TSV and Parquet files of `rows` classification rows made from MR sentences (made once per size)."""
    tsv, parquet = WORK / f"rows-{rows}.tsv", WORK / f"rows-{rows}.parquet"
    if tsv.is_file() and parquet.is_file():
        return tsv, parquet
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = [line.split("\t") for line in require_data(MR).read_text(encoding="utf-8").splitlines()[1:] if line]
    count = len(lines)
    texts = [f"{lines[i % count][0]} {lines[(i * 7919 + 13) % count][0]}" for i in range(rows)]
    labels = [lines[i % count][1] for i in range(rows)]
    WORK.mkdir(parents=True, exist_ok=True)
    with open(tsv, "w", encoding="utf-8") as stream:
        stream.write("text\tlabel\n")
        stream.writelines(f"{text}\t{label}\n" for text, label in zip(texts, labels))
    pq.write_table(pa.table({"text": texts, "label": labels}), parquet)
    return tsv, parquet


def worker(mode: str, path: Path, rows: int) -> dict:
    """One measurement in this (fresh) process."""
    from bertkit.data.encoding import encode_training, encoded_dir
    from bertkit.modeling.loading import load_tokenizer
    from bertkit.settings import FinetuneSettings, options_from
    from bertkit.tasks import get_task

    tokenizer = load_tokenizer(str(minilm_dir()))
    task = get_task("classification")
    output = WORK / f"run-{mode}-{rows}"
    shutil.rmtree(encoded_dir(output), ignore_errors=True)
    settings = FinetuneSettings(model="m", train=path, output=output, max_length=128, cache_encoded=mode != "today")
    options = options_from(task.options_type, settings)
    result = {"baseline_rss_mb": peak_mb()}

    def prepare() -> tuple:  # as finetune's prepare_inputs does it
        started = time.perf_counter()
        examples = None
        if mode == "streamed":
            examples = task.stream(str(path), options, True, encoded_dir(output))
        if examples is None:
            examples = task.read(str(path), options, labelled=True)
        labels = task.label_names(examples)
        read = time.perf_counter() - started
        label2id = {name: i for i, name in enumerate(labels)}
        features, _ = encode_training(task, examples, tokenizer, 128, label2id, options, settings)
        return features, read, time.perf_counter() - started

    features, read, total = prepare()
    result.update(
        read_s=round(read, 2),
        total_s=round(total, 2),
        rows_per_s=round(rows / total),
        features=len(features),
        peak_rss_mb=peak_mb(),
    )
    if mode != "today":
        del features
        again, _, repeat = prepare()
        result["repeat_s"] = round(repeat, 2)
        result["peak_rss_after_repeat_mb"] = peak_mb()
        assert len(again) == rows
    return result


def pretrain_worker() -> dict:
    from bertkit.modeling.loading import load_tokenizer
    from bertkit.pretraining.cache import build_cache
    from bertkit.pretraining.corpus import read_lines
    from bertkit.settings import PretrainSettings

    tokenizer = load_tokenizer(str(minilm_dir()))
    corpus = require_data(CORPUS)
    lines = [line.strip() for line in read_lines(corpus) if line.strip()]
    started = time.perf_counter()
    tokens = 0
    for begin in range(0, len(lines), 1000):
        encoded = tokenizer(
            lines[begin : begin + 1000],
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]
        tokens += sum(len(ids) for ids in encoded)
    raw = time.perf_counter() - started
    folder = WORK / "pretrain-cache"
    shutil.rmtree(folder, ignore_errors=True)
    settings = PretrainSettings(corpus=[corpus], output=WORK / "pretrain-run", max_seq_length=128)
    started = time.perf_counter()
    build_cache([corpus], tokenizer, settings, folder, notify=lambda _: None)
    build = time.perf_counter() - started
    megabytes = corpus.stat().st_size / 1e6
    return {
        "corpus_mb": round(megabytes, 1),
        "lines": len(lines),
        "tokens": tokens,
        "raw_tokenize_s": round(raw, 2),
        "raw_mb_per_s": round(megabytes / raw, 2),
        "cache_build_s": round(build, 2),
        "cache_mb_per_s": round(megabytes / build, 2),
        "cache_over_raw": round(build / raw, 2),
        "peak_rss_mb": peak_mb(),
    }


def run_worker(args: list[str], timeout: int) -> dict:
    """One measurement in a fresh process, with a fresh `datasets` cache (no run reuses another's conversions)."""
    cache = WORK / "hf-datasets-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "HF_DATASETS_CACHE": str(cache),
    }
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT / "bench",
        )
    except subprocess.TimeoutExpired:
        return {"missed": f"did not finish in {timeout} s"}
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def scaling(measured: dict, sizes: list[int]) -> dict:
    """Smallest -> largest size, per mode: time ratio (linear = the rows ratio) and peak-memory ratio (target < 2)."""
    small, large = min(sizes), max(sizes)
    found = {}
    for mode in ("today", "arrow", "streamed"):
        first, last = measured.get(f"{mode}-{small}", {}), measured.get(f"{mode}-{large}", {})
        if small < large and "total_s" in first and "total_s" in last:
            found[mode] = {
                "rows_ratio": large / small,
                "time_ratio": round(last["total_s"] / first["total_s"], 2),
                "memory_ratio": round(last["peak_rss_mb"] / first["peak_rss_mb"], 2),
            }
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--timeout", type=int, default=290, help="seconds allowed to each measurement")
    parser.add_argument(
        "--modes", nargs="+", default=["today", "arrow", "streamed"], choices=["today", "arrow", "streamed"]
    )
    parser.add_argument(
        "--today-max",
        type=int,
        default=400_000,
        help="largest size measured with today's reader (about 13 KB a row: 2M rows do not fit)",
    )
    parser.add_argument("--skip-pretrain", action="store_true")
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker is not None:
        kind = args.worker[0]
        result = pretrain_worker() if kind == "pretrain" else worker(kind, Path(args.worker[1]), int(args.worker[2]))
        print(json.dumps(result))
        return
    results: dict = {"uptime_before": os.popen("uptime").read().strip(), "classification": {}}
    for rows in args.sizes:
        tsv, parquet = synthesise(rows)
        for mode, path in (("today", tsv), ("arrow", parquet), ("streamed", parquet)):
            if mode not in args.modes or (mode == "today" and rows > args.today_max):
                continue
            outcome = run_worker([mode, str(path), str(rows)], args.timeout)
            results["classification"][f"{mode}-{rows}"] = outcome
            print(f"{mode} {rows}: {outcome}", flush=True)
    if not args.skip_pretrain:
        results["pretraining_cache"] = run_worker(["pretrain"], args.timeout)
        print(f"pretraining cache: {results['pretraining_cache']}", flush=True)
    results["uptime_after"] = os.popen("uptime").read().strip()
    results["scaling"] = scaling(results["classification"], args.sizes)
    name = "data_inputs-" + "-".join(str(rows) for rows in args.sizes)
    print(f"results: {save_results(name, results)}")


if __name__ == "__main__":
    main()
