"""Long documents: --long-inputs truncate / head-tail / windows on IMDB reviews (mean 232 words), MiniLM.

    .venv/bin/python bench/long_inputs.py --train-rows 1000 --dev-rows 500 --configs truncate-128 windows-128 ...

all-MiniLM-L6-v2 fine-tuned by `bertkit finetune` on the first --train-rows of imdb/train.tsv (1 epoch, batch
32, lr 1e-4, 10% warm-up, seed 42), scored on the first --dev-rows of imdb/dev.tsv. A config is MODE-LENGTH:
truncate-128 (bertkit's default), truncate-512, head-tail-256, windows-128 (stride 32, at most 16 windows,
mean pooling), ... all in the same run, so their times compare; --seeds runs the whole grid once per seed.
--trainer adds the transformers Trainer as run_glue.py sets it up (every review padded to --trainer-length)
on the same rows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from common import DATA, RESULTS, minilm_dir, read_rows, require_data, run_trainer_peer, save_results, timer

IMDB = DATA / "classification" / "imdb"
HYPER = {"epochs": 1, "batch_size": 32, "learning_rate": 1e-4, "warmup_ratio": 0.1, "seed": 42}


def write_tsv(path: Path, rows: list[dict]) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows), encoding="utf-8")
    return path


def run_bertkit(config: str, train: Path, dev: Path, work: Path, stride: int, seed: int) -> dict:
    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings

    mode, length = config.rsplit("-", 1)
    result: dict = {"long_inputs": mode, "max_length": int(length), "seed": seed}
    settings = FinetuneSettings(
        task="classification",
        model=str(minilm_dir()),
        train=train,
        eval=dev,
        output=work / config,
        overwrite=True,
        max_length=int(length),
        long_inputs=mode,
        window_stride=stride,
        epochs=HYPER["epochs"],
        batch_size=HYPER["batch_size"],
        learning_rate=HYPER["learning_rate"],
        warmup_ratio=HYPER["warmup_ratio"],
        seed=seed,
    )
    with timer(result, "wall_seconds"):
        summary = finetune(settings)
    result.update(
        accuracy=summary["accuracy"],
        train_seconds=summary["train_seconds"],
        eval_seconds=summary["eval_seconds"],
        steps=summary["steps"],
        eval_windows=summary.get("eval_outputs"),
    )
    return result


def run_trainer(train_rows: list[dict], dev_rows: list[dict], work: Path, length: int, seed: int) -> dict:
    import numpy as np

    labels = sorted({r["label"] for r in train_rows})
    label2id = {label: i for i, label in enumerate(labels)}
    head = {"num_labels": len(labels), "id2label": dict(enumerate(labels)), "label2id": label2id}
    result, logits = run_trainer_peer(
        ([r["text"] for r in train_rows], None),
        [label2id[r["label"]] for r in train_rows],
        ([r["text"] for r in dev_rows], None),
        head,
        work,
        True,
        {**HYPER, "max_length": length, "seed": seed},
    )
    gold = np.array([label2id[r["label"]] for r in dev_rows])
    result.update(max_length=length, seed=seed, accuracy=float(np.mean(np.argmax(logits, axis=-1) == gold)))
    return result


def seed_means(runs: dict) -> dict:
    """Mean accuracy and train time of each config over the seeds it has run."""
    by_config: dict[str, list[dict]] = {}
    for key, run in runs.items():
        by_config.setdefault(key.split("/")[0], []).append(run)
    return {
        config: {
            "seeds": [r.get("seed", HYPER["seed"]) for r in group],
            "accuracy": sum(r["accuracy"] for r in group) / len(group),
            "train_seconds": sum(r["train_seconds"] for r in group) / len(group),
        }
        for config, group in by_config.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=4000)
    parser.add_argument("--dev-rows", type=int, default=1000)
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["truncate-128", "truncate-512", "head-tail-512", "windows-128", "windows-256"],
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="each config once per seed, in turn")
    parser.add_argument("--window-stride", type=int, default=32)
    parser.add_argument("--trainer", action="store_true", help="also the Trainer, padded to --trainer-length")
    parser.add_argument("--trainer-length", type=int, default=512)
    parser.add_argument("--name", default="long_inputs", help="results file name in bench/results")
    parser.add_argument("--append", action="store_true", help="add these configs to the runs of an earlier result")
    args = parser.parse_args()
    require_data(IMDB / "train.tsv")
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-long-"))
    train_rows = read_rows(IMDB / "train.tsv", args.train_rows)
    dev_rows = read_rows(IMDB / "dev.tsv", args.dev_rows)
    train, dev = write_tsv(work / "train.tsv", train_rows), write_tsv(work / "dev.tsv", dev_rows)
    earlier = RESULTS / f"{args.name}.json"
    results: dict = {
        "data": f"imdb train.tsv first {len(train_rows)}, dev.tsv first {len(dev_rows)}",
        "hyper": HYPER,
        "window_stride": args.window_stride,
        "max_windows": 16,
        "window_pool": "mean",
        "runs": json.loads(earlier.read_text())["runs"] if args.append and earlier.is_file() else {},
    }
    for seed in args.seeds:  # saved after each run, so a benchmark stopped for time keeps what it measured
        for config in args.configs + ([f"trainer-{args.trainer_length}"] if args.trainer else []):
            key = config if seed == HYPER["seed"] else f"{config}/seed{seed}"
            if config.startswith("trainer-"):
                results["runs"][key] = run_trainer(train_rows, dev_rows, work, args.trainer_length, seed)
            else:
                results["runs"][key] = run_bertkit(config, train, dev, work, args.window_stride, seed)
            print(key, results["runs"][key], flush=True)
            results["means"] = seed_means(results["runs"])
            save_results(args.name, results)
    print(save_results(args.name, results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
