"""Distillation benchmark (issue #28): students of a MiniLM teacher on MR, accuracy and predict speed.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/distill.py                 # bench/results/distill.json
    flock /tmp/bertkit-bench.lock .venv/bin/python bench/distill.py --teacher DIR --train-rows 2000

Teacher: all-MiniLM-L6-v2 fine-tuned on MR train (bench/deploy.py's recipe; --teacher reuses one). Students,
in the same run: `layers-of-teacher` (3 of its 6 layers) and `mini` (a new 4 x 256 BERT on its vocabulary),
each without and with --unlabeled-rows IMDB reviews (corpus/imdb-unsup, the teacher's labels only). Then
MR test accuracy of every model, and bertkit predict speed on 2,000 MR sentences: the teacher and the
students in PyTorch, and the mini student exported with the default `--quantize int8`.
--hidden-weights 0 1 trains each student once per `distill --hidden-weight` (hidden-state matching off / on);
--unlabeled-rows 0 leaves out the +unlabeled students.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from classification import MR, read_tsv
from common import DATA, require_data, save_results
from deploy import finetune_minilm, load
from deploy_int8 import accuracy, speed

from bertkit.settings import DistillSettings

IMDB_UNSUP = DATA / "corpus" / "imdb-unsup" / "corpus.txt"
STUDENTS = {"layers-of-teacher": 1e-4, "mini": 5e-4}  # learning rates: copied layers, and a new model


def unlabeled_reviews(rows: int, target: Path) -> Path:
    reviews = []
    with open(IMDB_UNSUP, encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                reviews.append(line.strip())
            if len(reviews) == rows:
                break
    target.write_text("\n".join(reviews) + "\n", encoding="utf-8")
    return target


def train_student(
    teacher: Path, student: str, train: Path, unlabeled: Path | None, work: Path, args, hidden_weight: float
) -> dict:
    from bertkit.distill import distill

    name = f"{student}{'+unlabeled' if unlabeled else ''}"
    if len(args.hidden_weights) > 1:
        name += f"+hidden{hidden_weight:g}"
    started = time.perf_counter()
    distill(
        DistillSettings(
            teacher=str(teacher),
            student=student,
            train=train,
            unlabeled=unlabeled,
            output=work / name,
            overwrite=True,
            epochs=args.epochs,
            batch_size=32,
            learning_rate=STUDENTS[student],
            max_length=128,
            warmup_ratio=0.1,
            seed=42,
            hidden_weight=hidden_weight,
        )
    )
    return {"name": name, "dir": work / name / "model", "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, help="a fine-tuned MR teacher (default: fine-tune one here)")
    parser.add_argument("--train-rows", type=int, default=0, help="MR train rows for teacher and students (0: all)")
    parser.add_argument("--unlabeled-rows", type=int, default=5000, help="IMDB reviews for the +unlabeled students")
    parser.add_argument("--epochs", type=float, default=3, help="student epochs")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    parser.add_argument(
        "--hidden-weights",
        type=float,
        nargs="+",
        default=[DistillSettings.hidden_weight],
        help="distill --hidden-weight values, a student each (default: bertkit's default only)",
    )
    parser.add_argument("--name", default="distill", help="results file name (bench/results/NAME.json)")
    args = parser.parse_args()
    require_data(MR / "train.tsv")
    require_data(IMDB_UNSUP)
    work = Path(tempfile.mkdtemp(prefix="bertkit-bench-distill-"))
    texts, labels = read_tsv(MR / "train.tsv")
    rows = args.train_rows or len(texts)
    train = work / "train.tsv"
    train.write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in zip(texts[:rows], labels[:rows])))
    results: dict = {"train_rows": rows, "unlabeled_rows": args.unlabeled_rows, "epochs": args.epochs}
    results["hidden_weights"] = args.hidden_weights
    results["load_before"] = load()
    teacher = args.teacher or finetune_minilm(train, work)
    results["teacher"] = str(teacher)
    extras = [None] + ([unlabeled_reviews(args.unlabeled_rows, work / "unlabeled.txt")] if args.unlabeled_rows else [])
    trained = [
        train_student(teacher, student, train, extra, work, args, weight)
        for student in args.students
        for extra in extras
        for weight in args.hidden_weights
    ]
    results["students"] = {t["name"]: {"seconds": t["seconds"]} for t in trained}
    dirs = {"torch": teacher, **{t["name"]: t["dir"] for t in trained}}
    if "mini" in args.students:
        from bertkit.deploy.export import export_model
        from bertkit.settings import ExportSettings

        mini = next(t["name"] for t in trained if t["name"].startswith("mini"))
        dirs["mini_int8"] = export_model(
            ExportSettings(model=str(dirs[mini]), output=work / "mini-int8", quantize="int8")
        )
    results["accuracy"] = accuracy(dirs)  # "torch" is the teacher: drop_points are against it
    spare = texts[rows : rows + 2000] if len(texts) - rows >= 2000 else texts[:2000]
    results["predict"] = speed(dirs, spare, work)  # speedup_vs_torch: against the teacher in PyTorch
    results["load_after"] = load()
    print(save_results(args.name, results).read_text())
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
