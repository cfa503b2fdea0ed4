"""The value of pretraining on a budget: fine-tuning accuracy against pretraining minutes.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/pretrain_value.py                      # the full curve
    flock /tmp/bertkit-bench.lock .venv/bin/python bench/pretrain_value.py --budgets 0,5 --tasks mr \
        --poolings cls --seeds 1                                                                  # a short look
    flock /tmp/bertkit-bench.lock .venv/bin/python bench/pretrain_value.py --corpus imdb-unsup \
        --objective mlm,electra --sides bertkit-budget                          # in-domain text, both objectives

On the first --megabytes (20) of ../shared/data/corpus/gutenberg/corpus.txt, with one WordPiece
tokenizer for everybody (bertkit's deterministic trainer, 8,192 pieces: the budget recipe's size for
`mini`), the `mini` model (4 x 256) is pretrained for each budget in --budgets (minutes of training
time; 0 means random weights) by:
- bertkit, `--recipe budget` (the default) and `--recipe bert` (the paper's objective with NSP), each
  with every `--objective` asked for (mlm, the default, and/or electra: sides `bertkit-budget-electra`...);
- the peer: the Trainer set up as run_mlm.py (BertForMaskedLM, 15% masking, whole decoder, texts
  concatenated into 128-token blocks, linear schedule sized to the budget; bench/pretrain.py's side).
Each model is then fine-tuned with `bertkit finetune` (3 epochs, lr 1e-4 or --finetune-lr, batch 32) on MR polarity
(the first 4,000 training rows, scored on test.tsv), SICK NLI (train, scored on test) and, with --tasks imdb,
IMDB reviews (classification/imdb: 4,000 train, scored on the 1,000 dev, --max-length 256), with the
[CLS] head and with mean pooling, for each of --seeds fine-tuning seeds (--finetune-defaults: with
finetune's own epochs, learning rate and batch size instead, as a new user would run it). Results:
bench/results/pretrain-value.json and the plot bench/results/pretrain-value.png (--name changes the
name; --corpus imdb-unsup pretrains on ../shared/data/corpus/imdb-unsup, the text domain of MR).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from common import DATA, RESULTS, ROOT, require_data, save_results

CORPORA = {name: DATA / "corpus" / name / "corpus.txt" for name in ("gutenberg", "imdb-unsup")}
TASKS = {
    "mr": {
        "task": "classification",
        "train_rows": 4000,
        "train": DATA / "classification/mr-polarity/train.tsv",
        "test": DATA / "classification/mr-polarity/test.tsv",
    },
    "sick": {"task": "nli", "train_rows": 0, "train": DATA / "nli/sick/train.tsv", "test": DATA / "nli/sick/test.tsv"},
    # long reviews (issue 27: in-domain for imdb-unsup); 256 pieces keep most of a review at a mini model's cost
    "imdb": {
        "task": "classification",
        "train_rows": 0,
        "train": DATA / "classification/imdb/train.tsv",
        "test": DATA / "classification/imdb/dev.tsv",
        "options": ["--max-length", "256"],
    },
}
VOCAB = 8192
FINETUNE_LR = "1e-4"  # the rate every curve so far was fine-tuned at


def bertkit(*args) -> None:
    subprocess.run([sys.executable, "-m", "bertkit", *map(str, args)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def prepare(work: Path, corpus: Path, megabytes: float, mr_rows: int) -> None:
    """train.txt (whole paragraphs, blank lines kept), the shared tokenizer, and the task files."""
    from bertkit.modeling.scratch import train_wordpiece

    text = write_corpus(work, corpus, megabytes)
    lines = [line for line in text.splitlines() if line.strip()]
    train_wordpiece(lines, vocab_size=VOCAB).save_pretrained(work / "tokenizer")
    write_task_files(work, mr_rows)


def write_corpus(work: Path, corpus: Path, megabytes: float) -> str:
    """work/train.txt: the first `megabytes` of `corpus`, cut at a line end; returns its text."""
    text = require_data(corpus).read_bytes()[: int(megabytes * 1e6)].decode("utf-8", errors="ignore")
    text = text[: text.rfind("\n")] + "\n"  # the last line may be cut
    (work / "train.txt").write_text(text, encoding="utf-8")
    return text


def write_task_files(work: Path, mr_rows: int) -> None:
    """work/TASK-train.tsv for every task: the training rows each fine-tuning reads."""
    for name, spec in TASKS.items():
        rows = require_data(spec["train"]).read_text(encoding="utf-8").splitlines()
        limit = mr_rows if name == "mr" else spec["train_rows"]
        keep = rows[: limit + 1] if limit else rows
        (work / f"{name}-train.tsv").write_text("\n".join(keep) + "\n", encoding="utf-8")


def pretrain_bertkit(
    work: Path,
    minutes: float,
    recipe: str,
    reuse: bool = False,
    objective: str = "mlm",
    eval_every: int = 0,
    attention_start: str = "",
) -> Path:
    """A model of `minutes` of `bertkit pretrain` (0: its untrained start); `attention_start` '': pretrain's default."""
    start = f"-{attention_start}-start" if attention_start else ""  # the default start keeps the old names
    output = work / f"bertkit-{recipe}{'' if objective == 'mlm' else '-' + objective}{start}-{minutes:g}m"
    if reuse and (output / "model" / "bertkit.json").is_file():
        return rescaled_as_saved_now(output / "model")
    length = ["--max-steps", "0"] if minutes == 0 else ["--time-budget", f"{minutes:g}m"]
    bertkit(
        "pretrain",
        work / "train.txt",
        "--output",
        output,
        "--overwrite",
        "--tokenizer",
        work / "tokenizer",
        "--size",
        "mini",
        "--recipe",
        recipe,
        "--objective",
        objective,
        "--seed",
        "1",
        "--log-every",
        "20",
        "--eval-every",
        eval_every,
        *(["--attention-start", attention_start] if attention_start else []),
        *length,
    )
    return output / "model"


def rescaled_as_saved_now(model_dir: Path) -> Path:
    """A model saved before `bertkit pretrain` rescaled its embeddings gets the rescale it would get now
    (the same function, so the run's metrics stand); one saved since is left as it is."""
    from transformers import BertForPreTraining

    from bertkit.pretraining.rescale import at_initial_embedding_scale

    info = json.loads((model_dir / "bertkit.json").read_text())
    if "embedding_rescale" not in info:
        model, info["embedding_rescale"] = at_initial_embedding_scale(BertForPreTraining.from_pretrained(model_dir))
        model.save_pretrained(model_dir)
        (model_dir / "bertkit.json").write_text(json.dumps(info, indent=2))
    return model_dir


def pretrain_trainer(work: Path, minutes: float, reuse: bool = False) -> Path:
    """bench/pretrain.py's run_mlm-style Trainer side, in its own folder, for `minutes` of training."""
    side = work / f"trainer-{minutes:g}m"
    if reuse and (side / "trainer-model").is_dir():
        return side / "trainer-model"
    side.mkdir(exist_ok=True)
    shutil.copy(work / "train.txt", side / "train.txt")
    shutil.copytree(work / "tokenizer", side / "tokenizer", dirs_exist_ok=True)
    for role in ("calibrate", "trainer"):
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench/pretrain.py"),
                "--side",
                role,
                "--budget",
                str(minutes * 60),
                "--work",
                str(side),
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
    return side / "trainer-model"


def finetune(
    work: Path, model: Path, task: str, pooling: str, seed: int, epochs: float | None, lr: str = FINETUNE_LR
) -> float:
    """Accuracy on the task's test file; `epochs` None: finetune's own defaults (no --epochs, --lr, --batch-size)."""
    spec = TASKS[task]
    defaults = epochs is None
    rate = "" if defaults or lr == FINETUNE_LR else f"-lr{lr}"  # the curves' rate keeps its directories' names
    output = (
        work / ("finetune-defaults" if defaults else "finetune") / f"{model.parent.name}-{task}-{pooling}-{seed}{rate}"
    )
    tuning = [] if defaults else ["--epochs", epochs, "--lr", lr, "--batch-size", "32"]
    bertkit(
        "finetune",
        "--task",
        spec["task"],
        "--model",
        model,
        "--train",
        work / f"{task}-train.tsv",
        "--eval",
        spec["test"],
        "--output",
        output,
        "--overwrite",
        *tuning,
        "--pooling",
        pooling,
        "--seed",
        seed,
        *spec.get("options", []),
    )
    return json.loads((output / "metrics.json").read_text())["accuracy"]


def summary(values: list[float]) -> dict:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": values,
    }


def plot(results: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(
        {
            (task, pooling)
            for side in results["scores"].values()
            for budget in side.values()
            for task, pooling in (key.split("/") for key in budget)
        }
    )
    figure, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
    for axis, (task, pooling) in zip(axes[0], keys):
        for side, budgets in results["scores"].items():
            points = sorted(
                (float(b), s[f"{task}/{pooling}"]["mean"]) for b, s in budgets.items() if f"{task}/{pooling}" in s
            )  # a pooling may be measured at some budgets only
            axis.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", label=side)
        axis.set_title(f"{task}, {pooling} head")
        axis.set_xlabel("pretraining minutes")
        axis.set_ylabel("accuracy (%)")
        axis.legend()
    if results.get("plot_note"):  # e.g. budgets measured on machines of different speed
        figure.suptitle(results["plot_note"], fontsize=9)
    figure.tight_layout()
    figure.savefig(target, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="0,10,30,60", help="pretraining minutes, comma-separated (0: random)")
    parser.add_argument("--tasks", default="mr,sick")
    parser.add_argument("--poolings", default="cls,mean")
    parser.add_argument("--seeds", type=int, default=2, help="fine-tuning seeds per model")
    parser.add_argument("--sides", default="bertkit-budget,bertkit-bert,trainer")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="gutenberg", help="the pretraining text")
    parser.add_argument(
        "--objective", default="mlm", help="bertkit's objectives, comma-separated: mlm, electra (each bertkit side)"
    )
    parser.add_argument("--name", default="", help="result files' name (default pretrain-value[-CORPUS])")
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--mr-rows", type=int, default=4000, help="MR training rows (smoke tests use fewer)")
    parser.add_argument("--epochs", type=float, default=3, help="fine-tuning epochs")
    parser.add_argument("--finetune-lr", default=FINETUNE_LR, help="fine-tuning learning rate")
    parser.add_argument(
        "--attention-start",
        choices=("", "mimetic", "random"),
        default="",
        help="bertkit pretrain's --attention-start for every bertkit model, random weights included ('': its default)",
    )
    parser.add_argument(
        "--pretrain-eval-every",
        type=int,
        default=0,
        help="held-out evaluation every N pretraining steps (0: at the end)",
    )
    parser.add_argument(
        "--finetune-defaults",
        action="store_true",
        help="fine-tune with finetune's own defaults (no --epochs, --lr or --batch-size given), as a new user would",
    )
    parser.add_argument("--work", type=Path, default=None, help="default runs/bench-pretrain-value[-CORPUS]")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="fine-tune the models an earlier run pretrained under --work instead of pretraining anew",
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="add these budgets to bench/results/pretrain-value.json instead of starting it anew",
    )
    args = parser.parse_args()
    suffix = "" if args.corpus == "gutenberg" else f"-{args.corpus}"  # the gutenberg names stay as they were
    name = args.name or f"pretrain-value{suffix}"
    args.work = args.work or ROOT / "runs" / f"bench-pretrain-value{suffix}"
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.reuse and (args.work / "tokenizer").is_dir()):  # the reused models were made with this one
        prepare(args.work, CORPORA[args.corpus], args.megabytes, args.mr_rows)
    budgets = [float(b) for b in args.budgets.split(",")]
    objectives = args.objective.split(",")
    sides = [
        f"{side}{'' if objective == 'mlm' else '-' + objective}"
        for side in args.sides.split(",")
        for objective in (objectives if side.startswith("bertkit") else ["mlm"])
    ]
    results: dict = {
        "corpus": args.corpus,
        "budgets_minutes": budgets,
        "seeds": args.seeds,
        "megabytes": args.megabytes,
        "vocab": VOCAB,
        "finetune_lr": None if args.finetune_defaults else args.finetune_lr,
        "attention_start": args.attention_start or "pretrain's default",
        "pretraining": {},
        "scores": {side: {} for side in sides},
    }
    previous = RESULTS / f"{name}.json"
    if args.add and previous.is_file():  # budgets run in several sittings share one table and plot
        results = json.loads(previous.read_text())
        results.pop("machine", None)
        results["budgets_minutes"] = sorted(set(results["budgets_minutes"]) | set(budgets))
        for side in sides:
            results["scores"].setdefault(side, {})
    epochs = None if args.finetune_defaults else args.epochs
    random_model = (
        pretrain_bertkit(args.work, 0, "budget", args.reuse, attention_start=args.attention_start)
        if 0 in budgets
        else None
    )
    for minutes in budgets:
        for side in sides:
            # random weights: one model, scored once, the same for every side
            if minutes == 0 and side != sides[0] and "0" in results["scores"][sides[0]]:
                results["scores"][side]["0"] = results["scores"][sides[0]]["0"]
                continue
            if minutes == 0:
                model = random_model
            elif side == "trainer":
                model = pretrain_trainer(args.work, minutes, args.reuse)
            else:
                _, recipe, *objective = side.split("-")  # bertkit-RECIPE[-OBJECTIVE]
                model = pretrain_bertkit(
                    args.work,
                    minutes,
                    recipe,
                    args.reuse,
                    (objective or ["mlm"])[0],
                    args.pretrain_eval_every,
                    args.attention_start,
                )
            metrics_file = model.parent / "metrics.json"
            if minutes and metrics_file.is_file():
                results["pretraining"][f"{side}/{minutes:g}"] = {
                    k: v for k, v in json.loads(metrics_file.read_text()).items() if not isinstance(v, (list, dict))
                }
            scores = {}
            for task in args.tasks.split(","):
                for pooling in args.poolings.split(","):
                    values = [
                        finetune(args.work, model, task, pooling, seed, epochs, args.finetune_lr)
                        for seed in range(1, args.seeds + 1)
                    ]
                    scores[f"{task}/{pooling}"] = summary(values)
                    print(side, f"{minutes:g} min", task, pooling, scores[f"{task}/{pooling}"], flush=True)
            # merged, not replaced: [CLS] and mean pooling (or tasks) may come from separate sittings
            results["scores"][side].setdefault(f"{minutes:g}", {}).update(scores)
            save_results(name, results)  # after every model: a stopped run keeps what it measured
    plot(results, RESULTS / f"{name}.png")
    print(json.dumps(results["scores"], indent=2))


if __name__ == "__main__":
    main()
