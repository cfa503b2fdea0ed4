"""Benchmark: SQuAD 2.0-style QA (unanswerable questions), bertkit against the Trainer
as run_qa.py --version_2_with_negative.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/qa_v2.py --seeds 1 2     # results: bench/results/qa-v2.json

The data set is built here from ../shared/data/qa/squad-v1.1 (SQuAD v1.1's dev set split by article),
split by article: train from the first 32 articles of train.json, tune from its last 6, test from
the 10 articles of eval.json (several gold answers per question). Every kept question stays with its
own paragraph (answerable), and each also comes back unanswerable, SQuAD 2.0-style: paired with the
paragraph of another article of the same split that shares the most (idf-weighted) words with the
question, among the articles closest in vocabulary to the question's own - a passage on a related
topic that reads as relevant but does not hold the answer (the gold answers must not occur in it).
So half the questions have no answer, and the all-empty baseline F1 is 50.

Both sides fine-tune all-MiniLM-L6-v2 on train (2 epochs, batch 16, lr 2e-4, 10% warm-up, max length 256,
stride 128), pick the null threshold that maximises F1 on tune, and answer test with it. bertkit:
`bertkit finetune --eval tune --tune-null-threshold`, then `bertkit evaluate` on test. The Trainer:
train, predict tune and test, null odds as utils_qa.py computes them (lowest [CLS] score over the
windows minus the best span's), the threshold from the same official walk. Scored with the official
SQuAD 2.0 definitions (HasAns / NoAns, best F1 and threshold from the null odds).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import qa
from common import RESULTS, ROOT, minilm_dir, over_seeds, require_data, save_results, seed_line

WORD = re.compile(r"[a-z0-9]+")
STOP = set(
    "the a an of in on at to for by with from and or is was were are be been as that this which who whom what "
    "when where why how did does do its it his her their there than then into over under after before during "
    "about also not no".split()
)


def words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOP}


def pick_questions(articles: list[dict], count: int) -> list[tuple[int, dict, dict]]:
    """About `count` questions spread over the articles: (article number, paragraph, qa),
    round-robin over paragraphs."""
    queues = [
        [(number, p, q) for p in article["paragraphs"] for q in p["qas"][:2]] for number, article in enumerate(articles)
    ]
    picked, depth = [], 0
    while len(picked) < count and any(depth < len(queue) for queue in queues):
        picked += [queue[depth] for queue in queues if depth < len(queue)][: count - len(picked)]
        depth += 1
    return picked


def unanswerable(
    question: dict, own: int, articles: list[dict], article_words: list[Counter], idf: dict
) -> dict | None:
    """The paragraph of another article that best matches the question's words without holding its answer."""
    asked = words(question["question"])
    answers = [" ".join(WORD.findall(a["text"].lower())) for a in question["answers"]]

    def weight(vocabulary) -> float:
        return sum(idf.get(w, 0.0) for w in asked if w in vocabulary)

    ranked = sorted((n for n in range(len(articles)) if n != own), key=lambda n: -weight(article_words[n]))
    for number in ranked[:3]:  # the articles closest to the question
        for paragraph in sorted(articles[number]["paragraphs"], key=lambda p: -weight(words(p["context"]))):
            flat = " ".join(WORD.findall(paragraph["context"].lower()))
            if not any(answer and answer in flat for answer in answers):
                return paragraph
    return None


def build_split(articles: list[dict], count: int) -> dict:
    """SQuAD 2.0 json: `count // 2` answerable questions and as many unanswerable twins."""
    article_words = [Counter(w for p in a["paragraphs"] for w in words(p["context"])) for a in articles]
    idf = {w: math.log(len(articles) / sum(1 for c in article_words if w in c)) for c in article_words for w in c}
    grouped: dict[int, list] = {}  # id(paragraph) -> (paragraph, qas)
    for own, paragraph, question in pick_questions(articles, count // 2):
        grouped.setdefault(id(paragraph), (paragraph, []))[1].append({**question, "is_impossible": False})
        other = unanswerable(question, own, articles, article_words, idf)
        if other is not None:
            twin = {
                "id": f"{question['id']}-unanswerable",
                "question": question["question"],
                "answers": [],
                "is_impossible": True,
            }
            grouped.setdefault(id(other), (other, []))[1].append(twin)
    paragraphs = [{"context": paragraph["context"], "qas": qas} for paragraph, qas in grouped.values()]
    return {"version": "v2.0", "data": [{"title": "bertkit-bench", "paragraphs": paragraphs}]}


def build_data(source: Path, sizes: dict, work: Path, answerable_train: bool = False) -> dict[str, Path]:
    train_articles = json.loads((source / "train.json").read_text(encoding="utf-8"))["data"]
    eval_articles = json.loads((source / "eval.json").read_text(encoding="utf-8"))["data"]
    pools = {"train": train_articles[:32], "tune": train_articles[32:], "test": eval_articles}
    paths = {}
    for split, articles in pools.items():
        data = build_split(articles, sizes[split])
        if answerable_train and split == "train":  # the diagnosis: the same answerable questions, no [CLS] windows
            for paragraph in data["data"][0]["paragraphs"]:
                paragraph["qas"] = [q for q in paragraph["qas"] if not q["is_impossible"]]
        questions = [q for p in data["data"][0]["paragraphs"] for q in p["qas"]]
        print(
            f"{split}: {len(questions)} questions, {sum(q['is_impossible'] for q in questions)} unanswerable, "
            f"from {len(articles)} articles",
            flush=True,
        )
        paths[split] = work / f"{split}-v2.json"
        paths[split].write_text(json.dumps(data), encoding="utf-8")
    return paths


def v2_scores(golds, spans, odds, threshold: float) -> dict:
    """Official SQuAD 2.0 figures at `threshold`, plus the best F1 and threshold on these null odds."""
    from bertkit.metrics.squad import best_null_threshold, squad_metrics

    answers = [span if value <= threshold else "" for span, value in zip(spans, odds)]
    metrics = squad_metrics(golds, answers, version_2=True)
    metrics["forced_has_ans_f1"] = forced_has_ans_f1(golds, spans)
    best, best_f1 = best_null_threshold(golds, spans, odds)
    metrics.update(
        null_threshold=threshold,
        best_f1=best_f1,
        best_null_threshold=best,
        answered=100.0 * sum(bool(a) for a in answers) / len(answers),
    )
    return metrics


def forced_has_ans_f1(golds: list[list[str]], spans: list[str]) -> float:
    """F1 of the best spans on the answerable questions, every one answered: how well spans were learned."""
    from bertkit.metrics.squad import squad_metrics

    kept = [(gold, span) for gold, span in zip(golds, spans) if any(gold)]
    return squad_metrics([g for g, _ in kept], [s for _, s in kept], version_2=False)["f1"]


def run_bertkit(model: str, data: dict[str, Path], work: Path, extra: tuple[str, ...] = ()) -> dict:
    started = time.perf_counter()
    trained = qa.run_bertkit(model, data["train"], data["tune"], work, extra=("--tune-null-threshold", *extra))
    scored = work / "bertkit-test"  # evaluate writes metrics.json and predictions.json there
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bertkit",
            "evaluate",
            "--model",
            str(work / "bertkit" / "model"),
            str(data["test"]),
            "--output",
            str(scored / "metrics.json"),
        ],
        check=True,
        env={**qa.os.environ, "PYTHONPATH": str(ROOT)},
    )
    metrics = json.loads((scored / "metrics.json").read_text())
    answers = json.loads((scored / "predictions.json").read_text())
    best_spans = {}  # the best non-null answer of each question, from the n-best lists
    for line in (scored / "nbest.jsonl").read_text().splitlines():
        record = json.loads(line)
        best_spans[record["id"]] = next((e["text"] for e in record["nbest"] if e["start"] != -1), "")
    test = [q for p in json.loads(data["test"].read_text())["data"][0]["paragraphs"] for q in p["qas"]]
    metrics["forced_has_ans_f1"] = forced_has_ans_f1(
        [[a["text"] for a in q["answers"]] for q in test], [best_spans[q["id"]] for q in test]
    )
    saved = json.loads((work / "bertkit" / "model" / "bertkit.json").read_text())
    return {
        **_picked(metrics),
        "null_threshold": saved.get("tuned", {}).get("null_threshold", 0.0),
        "answered": 100.0 * sum(bool(a) for a in answers.values()) / len(answers),
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": trained["train_seconds"],
    }


def run_trainer(model: str, data: dict[str, Path], work: Path) -> dict:
    started = time.perf_counter()
    trainer, tokenizer = qa.train_trainer(model, data["train"], work)
    trained = time.perf_counter()
    golds, spans, odds = qa.trainer_predict(trainer, tokenizer, data["tune"])
    threshold = v2_scores(golds, spans, odds, 0.0)["best_null_threshold"]
    metrics = v2_scores(*qa.trainer_predict(trainer, tokenizer, data["test"]), threshold)
    return {
        **_picked(metrics),
        "null_threshold": threshold,
        "answered": metrics["answered"],
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": trained - started,
    }


KEYS = (
    "f1",
    "exact_match",
    "has_ans_f1",
    "has_ans_exact_match",
    "no_ans_exact_match",
    "best_f1",
    "best_null_threshold",
    "forced_has_ans_f1",
)


def _picked(metrics: dict) -> dict:
    return {key: metrics[key] for key in KEYS if key in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-questions", type=int, default=1000)
    parser.add_argument("--tune-questions", type=int, default=300)
    parser.add_argument("--test-questions", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", choices=("bertkit", "trainer"))
    parser.add_argument("--extra", default="", help="more `bertkit finetune` flags, for ablations (one string)")
    parser.add_argument(
        "--answerable-train",
        action="store_true",
        help="diagnosis: train on the answerable half "
        "only (a v1.1 model: every test question gets a span; compare HasAns F1)",
    )
    parser.add_argument("--name", default="qa-v2")
    options = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    work = RESULTS / f"{options.name}-work"
    work.mkdir(parents=True, exist_ok=True)
    sizes = {"train": options.train_questions, "tune": options.tune_questions, "test": options.test_questions}
    data = build_data(require_data(qa.SQUAD), sizes, work, options.answerable_train)
    model = str(minilm_dir())
    results: dict = {
        "settings": {
            **qa.SETTINGS,
            "seeds": options.seeds,
            **sizes,
            "extra": options.extra,
            "answerable_train": options.answerable_train,
        }
    }
    extra = tuple(options.extra.split())
    sides = {
        "bertkit": lambda: run_bertkit(model, data, work, extra),
        "trainer": lambda: run_trainer(model, data, work),
    }
    for side in [options.only] if options.only else sides:

        def run_one(seed: int, run=sides[side]) -> dict:
            qa.SETTINGS["seed"] = seed
            return run()

        results[side] = over_seeds(options.seeds, run_one)
        print(
            seed_line(
                side,
                results[side],
                ("f1", "has_ans_f1", "no_ans_exact_match", "best_f1", "forced_has_ans_f1", "answered", "wall_seconds"),
            ),
            flush=True,
        )
        save_results(options.name, results)
    if "bertkit" in results and "trainer" in results:
        b, t = results["bertkit"]["mean"], results["trainer"]["mean"]
        results["differences"] = {
            "f1": b["f1"] - t["f1"],
            "exact_match": b["exact_match"] - t["exact_match"],
            "has_ans_f1": b["has_ans_f1"] - t["has_ans_f1"],
            "wall_ratio": b["wall_seconds"] / t["wall_seconds"],
        }
    print(json.dumps({k: v for k, v in results.items() if k != "settings"}, indent=2))
    print(f"written to {save_results(options.name, results)}")


if __name__ == "__main__":
    main()
