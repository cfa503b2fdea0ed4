"""Skewed labels: --class-weights none vs balanced on MR polarity cut to 1 negative per 9 positives, MiniLM.

    .venv/bin/python bench/imbalance.py --rows 2000 --seeds 42 43

all-MiniLM-L6-v2 fine-tuned by `bertkit finetune` (1 epoch, batch 32, lr 1e-4, max length 128, 10% warm-up)
on --rows rows of MR train.tsv: its first negatives and positives in the ratio 1:9 (skewed), and, to see
that weights cost nothing when classes are even, on its first --rows rows (balanced, about 1:1). Scored on
the unchanged test.tsv (533 + 533): macro-F1, accuracy and the negatives' recall, every seed in the same run.
With --goemotions-rows N: multi-label GoEmotions (28 emotions, most of them rare) trained on its first N rows
with every seed of --seeds, thresholds tuned on the first --goemotions-dev rows of dev.tsv and scored on the
first --goemotions-test rows of test.tsv (never the data they were tuned on): macro-F1 at the best global
threshold, at per-label thresholds, and with balanced label weights (positives weighted by negatives /
positives) at its global one.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from common import DATA, minilm_dir, over_seeds, read_rows, require_data, save_results, seed_line, timer

MR = DATA / "classification" / "mr-polarity"
GOEMOTIONS = DATA / "multilabel" / "goemotions"


def write_tsv(path: Path, rows: list[dict]) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in rows), encoding="utf-8")
    return path


def skewed(rows: list[dict], count: int, minority: str, share: float) -> list[dict]:
    """The first `share` x `count` rows of `minority` and the first rows of the other labels, in file order."""
    wanted = round(share * count)
    kept, taken = [], 0
    others = count - wanted
    for row in rows:
        if row["label"] == minority and taken < wanted:
            kept.append(row)
            taken += 1
        elif row["label"] != minority and others > 0:
            kept.append(row)
            others -= 1
    return kept


def run(train: Path, weights: str, seed: int, work: Path) -> dict:
    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings

    result: dict = {}
    settings = FinetuneSettings(
        task="classification",
        model=str(minilm_dir()),
        train=train,
        eval=MR / "test.tsv",
        output=work / f"{train.stem}-{weights}-{seed}",
        overwrite=True,
        class_weights=weights,
        epochs=1,
        batch_size=32,
        learning_rate=1e-4,
        max_length=128,
        warmup_ratio=0.1,
        seed=seed,
    )
    with timer(result, "wall_seconds"):
        summary = finetune(settings)
    result.update(
        macro_f1=100 * summary["macro_f1"],
        accuracy=100 * summary["accuracy"],
        neg_recall=100 * summary["per_class"]["neg"]["recall"],
        train_seconds=summary["train_seconds"],
    )
    return result


def goemotions(rows: int, dev_rows: int, test_rows: int, seed: int, work: Path) -> dict:
    """Test macro-F1 (x100) at the dev-tuned global threshold, at dev-tuned per-label thresholds, and with
    balanced label weights at its dev-tuned global threshold."""
    from bertkit.finetune import finetune
    from bertkit.settings import FinetuneSettings

    train = write_labels(work / "go-train.tsv", read_rows(GOEMOTIONS / "train.tsv", rows))
    dev = write_labels(work / "go-dev.tsv", read_rows(GOEMOTIONS / "dev.tsv", dev_rows))
    test = write_labels(work / "go-test.tsv", read_rows(GOEMOTIONS / "test.tsv", test_rows))
    result: dict = {"seed": seed}
    for weights, tune in (("none", "per-label"), ("balanced", "global")):
        output = work / f"go-{weights}"
        settings = FinetuneSettings(
            task="multilabel",
            model=str(minilm_dir()),
            train=train,
            eval=dev,
            output=output,
            overwrite=True,
            class_weights=weights,
            tune_threshold=tune,
            epochs=1,
            batch_size=32,
            learning_rate=1e-4,
            max_length=128,
            warmup_ratio=0.1,
            seed=seed,
        )
        with timer(result, f"{weights}_wall_seconds"):
            on_dev = finetune(settings)
        model = output / "model"
        if weights == "none":
            result["global_threshold"] = on_dev["best_threshold"]
            result["global_macro_f1"] = test_macro_f1(
                model, test, threshold=on_dev["best_threshold"], label_thresholds="{}"
            )
            result["per_label_macro_f1"] = test_macro_f1(model, test)  # the per-label thresholds saved with the model
        else:
            result["weighted_global_macro_f1"] = test_macro_f1(model, test)  # its tuned global threshold
    return result


def test_macro_f1(model: Path, test: Path, **options) -> float:
    from bertkit.inference import evaluate_file
    from bertkit.settings import EvaluateSettings

    return 100 * evaluate_file(EvaluateSettings(model=str(model), input=test, **options))["macro_f1"]


def write_labels(path: Path, rows: list[dict]) -> Path:
    path.write_text("text\tlabels\n" + "".join(f"{r['text']}\t{r['labels']}\n" for r in rows), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--balanced-seeds", type=int, nargs="*", default=[42], help="seeds of the 1:1 check")
    parser.add_argument("--goemotions-rows", type=int, default=0, help="GoEmotions training rows (0: skip)")
    parser.add_argument("--goemotions-dev", type=int, default=1000)
    parser.add_argument("--goemotions-test", type=int, default=2000)
    args = parser.parse_args()
    require_data(MR / "train.tsv")
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-imbalance-"))
    rows = read_rows(MR / "train.tsv")
    sets = {
        "skewed": write_tsv(work / "skewed.tsv", skewed(rows, args.rows, "neg", 0.1)),
        "even": write_tsv(work / "even.tsv", rows[: args.rows]),
    }
    results: dict = {
        "data": f"MR train.tsv: {args.rows} rows, skewed 1 neg : 9 pos (first of each) and even (first rows); "
        "test.tsv unchanged",
        "hyper": {"epochs": 1, "batch_size": 32, "learning_rate": 1e-4, "max_length": 128, "warmup_ratio": 0.1},
    }
    for name, seeds in (("skewed", args.seeds), ("even", args.balanced_seeds)):
        if not seeds:
            continue
        for weights in ("none", "balanced"):
            summary = over_seeds(seeds, lambda seed, data=sets[name], w=weights: run(data, w, seed, work))
            results[f"{name}_{weights}"] = summary
            print(seed_line(f"{name} {weights}", summary, ("macro_f1", "accuracy", "neg_recall")), flush=True)
    for name in ("skewed", "even"):
        if f"{name}_none" in results:
            for key in ("macro_f1", "accuracy"):
                results[f"{name}_{key}_gain"] = round(
                    results[f"{name}_balanced"]["mean"][key] - results[f"{name}_none"]["mean"][key], 2
                )
    if args.goemotions_rows:
        results["goemotions"] = over_seeds(
            args.seeds,
            lambda seed: goemotions(args.goemotions_rows, args.goemotions_dev, args.goemotions_test, seed, work),
        )
        keys = ("global_macro_f1", "per_label_macro_f1", "weighted_global_macro_f1")
        print(seed_line("goemotions", results["goemotions"], keys), flush=True)
    print(save_results("imbalance", results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
