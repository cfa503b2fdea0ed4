"""Pretraining benchmark: `bertkit pretrain` against the transformers Trainer, for the same wall-clock budget.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/pretrain.py --budget 300

On ../shared/data/corpus/gutenberg/corpus.txt (the first --books books, 8 by default, to train
on, the next 2 held out), with one WordPiece tokenizer (30,522 pieces, trained here on the training books),
the `mini` size (4 x 256) at length 128, batch 32, lr 5e-4, 6% warm-up, linear decay:
1. bertkit pretrain --no-nsp (masked LM on packed sequences; the MLM decoder only at masked positions),
   and with --nsp-too also the default recipe with next-sentence prediction,
2. the Trainer with DataCollatorForLanguageModeling on BertForMaskedLM, data set up as
   run_mlm.py does (each line tokenized, texts concatenated and cut into 128-token blocks);
   its linear schedule is sized to the budget from a short calibration run.
Each trains for --budget seconds of training time. Then both models are scored on the same
held-out blocks (run_mlm layout, 15% masked with a fixed seed): MLM accuracy. The fp32 matmul
peak of this CPU is measured in the same run (before and after). Results: bench/results/pretrain.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, ROOT, require_data, save_results

CORPUS = DATA / "corpus" / "gutenberg" / "corpus.txt"
HYPER = {"batch_size": 32, "learning_rate": 5e-4, "warmup_ratio": 0.06, "weight_decay": 0.01, "seq": 128, "seed": 42}
EVAL_BLOCKS = 400


def matmul_peak(size: int = 2048, repeats: int = 12) -> float:
    """Best fp32 GFLOP/s of a square matmul over a few repeats."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def prepare(work: Path, books: int) -> dict:
    """train.txt / valid.txt (whole books, BERT's blank-line layout) and the shared tokenizer."""
    from bertkit.modeling.scratch import train_wordpiece

    blocks = require_data(CORPUS).read_text(encoding="utf-8").split("\n\n")
    train, valid = blocks[:books], blocks[books : books + 2]
    (work / "train.txt").write_text("\n\n".join(train) + "\n", encoding="utf-8")
    (work / "valid.txt").write_text("\n\n".join(valid) + "\n", encoding="utf-8")
    lines = [line for block in train for line in block.splitlines() if line.strip()]
    train_wordpiece(lines, vocab_size=30522).save_pretrained(work / "tokenizer")
    return {
        "train_books": len(train),
        "train_words": sum(len(b.split()) for b in train),
        "valid_words": sum(len(b.split()) for b in valid),
    }


def run_bertkit(work: Path, budget: float, nsp: bool) -> dict:
    name = "bertkit-nsp" if nsp else "bertkit"
    # No held-out evaluation inside the run: both sides are scored afterwards by heldout_accuracy.
    command = [
        sys.executable,
        "-m",
        "bertkit",
        "pretrain",
        str(work / "train.txt"),
        "--validation-fraction",
        "0",
        "--tokenizer",
        str(work / "tokenizer"),
        "--output",
        str(work / name),
        "--overwrite",
        "--size",
        "mini",
        "--max-seq-length",
        str(HYPER["seq"]),
        "--time-budget",
        f"{budget}s",
        "--batch-size",
        str(HYPER["batch_size"]),
        "--lr",
        str(HYPER["learning_rate"]),
        "--warmup-ratio",
        str(HYPER["warmup_ratio"]),
        "--weight-decay",
        str(HYPER["weight_decay"]),
        "--seed",
        str(HYPER["seed"]),
        "--log-every",
        "20",
        "--nsp" if nsp else "--no-nsp",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    metrics = json.loads((work / name / "metrics.json").read_text())
    predictions, lengths_sq, lengths = bertkit_shape(work / name)
    return {
        "tokens_per_second": metrics["tokens_per_second"],
        "train_tokens": metrics["train_tokens"],
        "train_seconds": metrics["train_seconds"],
        "steps": metrics["steps"],
        "wall_seconds": round(wall, 1),
        "predictions_per_token": predictions,
        "attention_length": lengths_sq / lengths,
        "model": str(work / name / "model"),
    }


def bertkit_shape(run: Path) -> tuple[float, float, float]:
    """Masked positions per real token and the token-weighted mean sequence length, from the run's cache."""
    import numpy as np

    from bertkit.pretraining.instances import instance_lengths

    split = run / "cache" / "train"
    lengths = instance_lengths(
        np.load(split / "instances.npy"), np.load(split / "sentences.npy"), np.load(split / "documents.npy")
    ).astype(np.float64)
    specials = 2 + (np.load(split / "instances.npy").shape[1] == 5)  # [CLS] + [SEP]s (a lower bound when packed)
    predictions = np.minimum(20, np.floor((lengths - specials) * 0.15 + 0.5))
    return float(predictions.sum() / lengths.sum()), float((lengths**2).sum()), float(lengths.sum())


def trainer_side(work: Path, budget: float, calibrate_steps: int = 0) -> dict:
    """The Trainer as run_mlm.py sets it up; with calibrate_steps it only times that many steps."""
    import torch
    from datasets import load_dataset
    from transformers import (
        BertForMaskedLM,
        BertTokenizerFast,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    from bertkit.modeling.scratch import bert_config

    tokenizer = BertTokenizerFast.from_pretrained(work / "tokenizer")
    raw = load_dataset("text", data_files={"train": str(work / "train.txt")}, cache_dir=str(work / "hf-cache"))
    tokenized = raw.map(
        lambda batch: tokenizer(batch["text"], return_special_tokens_mask=True), batched=True, remove_columns=["text"]
    )
    seq = HYPER["seq"]

    def group_texts(examples):  # run_mlm.py's: concatenate, then cut into blocks of `seq`
        joined = {k: sum(examples[k], []) for k in examples}
        total = len(joined["input_ids"]) // seq * seq
        return {k: [t[i : i + seq] for i in range(0, total, seq)] for k, t in joined.items()}

    blocks = tokenized.map(group_texts, batched=True)["train"]
    set_seed(HYPER["seed"])
    model = BertForMaskedLM(bert_config(len(tokenizer), "mini", max_position=512))
    clock: dict = {}

    class Budget(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.setdefault("start", time.perf_counter())
            if state.global_step == 3:
                clock["after_warmup"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            clock["end"], clock["steps"] = time.perf_counter(), state.global_step
            if not calibrate_steps and clock["end"] - clock["start"] >= budget:
                control.should_training_stop = True

    steps = calibrate_steps or max(10, int(json.loads((work / "calibration.json").read_text())["steps_in_budget"]))
    arguments = TrainingArguments(
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=HYPER["batch_size"],
        max_steps=steps,
        learning_rate=HYPER["learning_rate"],
        warmup_steps=int(HYPER["warmup_ratio"] * steps),
        weight_decay=HYPER["weight_decay"],
        lr_scheduler_type="linear",
        logging_steps=20,
        save_strategy="no",
        report_to=[],
        seed=HYPER["seed"],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    Trainer(model=model, args=arguments, train_dataset=blocks, data_collator=collator, callbacks=[Budget()]).train()
    seconds = clock["end"] - clock["start"]
    if calibrate_steps:
        per_step = (clock["end"] - clock["after_warmup"]) / (clock["steps"] - 3)
        (work / "calibration.json").write_text(
            json.dumps({"seconds_per_step": per_step, "steps_in_budget": budget / per_step})
        )
        return {}
    model.save_pretrained(work / "trainer-model")
    tokenizer.save_pretrained(work / "trainer-model")
    tokens = clock["steps"] * HYPER["batch_size"] * seq
    return {
        "tokens_per_second": tokens / seconds,
        "train_tokens": tokens,
        "train_seconds": seconds,
        "steps": clock["steps"],
        "predictions_per_token": 1.0,
        "attention_length": float(seq),
        "model": str(work / "trainer-model"),
        "torch_threads": torch.get_num_threads(),
    }


def heldout_accuracy(model_dir: str, work: Path) -> float:
    """MLM accuracy on the same masked held-out blocks (run_mlm layout, fixed seed) for any model."""
    import torch
    from transformers import BertForMaskedLM, BertTokenizerFast, DataCollatorForLanguageModeling

    tokenizer = BertTokenizerFast.from_pretrained(work / "tokenizer")
    ids = [
        t
        for line in (work / "valid.txt").read_text(encoding="utf-8").splitlines()
        if line.strip()
        for t in tokenizer(line)["input_ids"]
    ]
    blocks = [{"input_ids": ids[i : i + HYPER["seq"]]} for i in range(0, len(ids) - HYPER["seq"], HYPER["seq"])]
    blocks = blocks[:EVAL_BLOCKS]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=123)
    model = BertForMaskedLM.from_pretrained(model_dir).eval()
    correct = total = 0
    with torch.inference_mode():
        for start in range(0, len(blocks), 50):
            batch = collator(blocks[start : start + 50])
            logits = model(input_ids=batch["input_ids"]).logits
            chosen = batch["labels"] != -100
            correct += int((logits.argmax(-1)[chosen] == batch["labels"][chosen]).sum())
            total += int(chosen.sum())
    return correct / total


def model_flops_per_token(result: dict, hidden: int = 256, layers: int = 4, vocab: int = 30522) -> dict:
    """Training FLOPs per real token: 6 x non-embedding encoder parameters, attention scores and mixing
    over the real sequence length, and the MLM head (transform + decoder) where it is computed."""
    intermediate = 4 * hidden
    layer = 4 * hidden * hidden + 2 * hidden * intermediate  # q, k, v, o and the two FFN matrices
    encoder = 6 * layers * layer
    attention = 3 * layers * 4 * hidden * result["attention_length"]  # QK^T and AV, forward x3
    head = 6 * (hidden * hidden + hidden * vocab) * result["predictions_per_token"]
    return {"encoder": encoder, "attention": attention, "mlm_head": head, "total": encoder + attention + head}


def markdown(results: dict) -> str:
    """The BENCHMARKS.md table of a results file."""
    sides, peak = results["sides"], max(results["peak_gflops_before"], results["peak_gflops_after"])
    rows = ["| | " + " | ".join(sides) + " |", "|---|" + "---|" * len(sides)]
    lines = {
        "real tokens / s": lambda s: f"{s['tokens_per_second']:,.0f}",
        "tokens trained": lambda s: f"{s['train_tokens']:,}",
        "training seconds": lambda s: f"{s['train_seconds']:.0f}",
        "optimizer steps": lambda s: f"{s['steps']}",
        "held-out MLM accuracy": lambda s: f"{s['heldout_mlm_accuracy']:.4f}",
        "model FLOPs / token (M)": lambda s: f"{s['flops_per_token']['total'] / 1e6:.1f}",
        "  of which MLM head (M)": lambda s: f"{s['flops_per_token']['mlm_head'] / 1e6:.1f}",
        "model GFLOP/s": lambda s: f"{s['model_gflops']:.1f}",
        f"share of the matmul peak ({peak:.0f} GFLOP/s)": lambda s: f"{100 * s['share_of_peak']:.0f}%",
    }
    for label, show in lines.items():
        rows.append(f"| {label} | " + " | ".join(show(side) for side in sides.values()) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300, help="training seconds per side")
    parser.add_argument("--books", type=int, default=8, help="books to train on (the next 2 are held out)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-pretrain")
    parser.add_argument("--nsp-too", action="store_true", help="also run bertkit's default recipe (with NSP)")
    parser.add_argument("--side", choices=["trainer", "calibrate"], help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help="print the markdown table of a results file and exit")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return
    if args.side:
        result = trainer_side(args.work, args.budget, calibrate_steps=12 if args.side == "calibrate" else 0)
        (args.work / f"{args.side}.json").write_text(json.dumps(result))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {"budget_seconds": args.budget, "hyper": HYPER, "peak_gflops_before": matmul_peak()}
    results["data"] = prepare(args.work, args.books)
    sides = {"bertkit": run_bertkit(args.work, args.budget, nsp=False)}
    for side in ("calibrate", "trainer"):
        subprocess.run(
            [sys.executable, __file__, "--side", side, "--budget", str(args.budget), "--work", str(args.work)],
            check=True,
        )
    sides["trainer"] = json.loads((args.work / "trainer.json").read_text())
    if args.nsp_too:
        sides["bertkit-nsp"] = run_bertkit(args.work, args.budget, nsp=True)
    results["peak_gflops_after"] = matmul_peak()
    peak = max(results["peak_gflops_before"], results["peak_gflops_after"])
    for side in sides.values():
        side["heldout_mlm_accuracy"] = heldout_accuracy(side["model"], args.work)
        side["flops_per_token"] = model_flops_per_token(side)
        side["model_gflops"] = side["flops_per_token"]["total"] * side["tokens_per_second"] / 1e9
        side["share_of_peak"] = side["model_gflops"] / peak
    results["sides"] = sides
    results["ratios"] = {
        "tokens_per_second": sides["bertkit"]["tokens_per_second"] / sides["trainer"]["tokens_per_second"],
        "heldout_accuracy_gain": sides["bertkit"]["heldout_mlm_accuracy"] - sides["trainer"]["heldout_mlm_accuracy"],
    }
    print(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"results: {save_results('pretrain', results)}")


if __name__ == "__main__":
    main()
