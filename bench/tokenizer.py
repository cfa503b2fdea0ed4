"""Tokenizer benchmark: bertkit's deterministic WordPiece training against the upstream `tokenizers` trainer.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/tokenizer.py --megabytes 20 --runs 3

On the first --megabytes of ../shared/data/corpus/gutenberg/corpus.txt (the last 5% of its lines
held out), each side trains a 30,522-piece lower-cased vocabulary --runs times, each run in a fresh
process (so each gets its own hash seed). Reported per side: how many distinct vocabularies the runs
produced, held-out WordPieces per word (lower is better; the target: bertkit within 1% of upstream),
the share of held-out words that become [UNK], and the training time. Results: bench/results/tokenizer.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, ROOT, require_data, save_results

CORPUS = DATA / "corpus" / "gutenberg" / "corpus.txt"
VOCAB = 30522


def upstream_wordpiece(lines: list[str], vocab_size: int):
    """The plain upstream trainer, with the same normalizer, pre-tokenizer and special tokens as bertkit."""
    from tokenizers import Tokenizer, models, trainers

    from bertkit.modeling.scratch import SPECIAL_TOKENS, as_bert_tokenizer, bert_wordpiece_pipeline

    tokenizer = bert_wordpiece_pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")), lowercase=True)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer=trainer)
    return as_bert_tokenizer(tokenizer, lowercase=True)


def one_run(side: str, train: Path, held_out: Path, target: Path) -> dict:
    """Train one vocabulary (in this process) and score it on the held-out lines."""
    from bertkit.modeling.scratch import train_wordpiece

    lines = train.read_text(encoding="utf-8").splitlines()
    started = time.perf_counter()
    tokenizer = train_wordpiece(lines, vocab_size=VOCAB) if side == "bertkit" else upstream_wordpiece(lines, VOCAB)
    seconds = time.perf_counter() - started
    tokenizer.save_pretrained(target)
    backend = tokenizer.backend_tokenizer
    words = pieces = unknown = 0
    for line in held_out.read_text(encoding="utf-8").splitlines():
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(line)):
            split = backend.model.tokenize(word)
            words += 1
            pieces += len(split)
            unknown += split[0].value == "[UNK]"
    digest = hashlib.sha256((target / "tokenizer.json").read_bytes()).hexdigest()[:16]
    return {
        "seconds": round(seconds, 2),
        "pieces_per_word": pieces / words,
        "unk_share": unknown / words,
        "held_out_words": words,
        "tokenizer_sha256": digest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", nargs=4, metavar=("SIDE", "TRAIN", "HELD_OUT", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        side, train, held_out, target = args.one
        print(json.dumps(one_run(side, Path(train), Path(held_out), Path(target))))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-tokenizer-"))
    text = require_data(CORPUS).read_bytes()[: int(args.megabytes * 1e6)].decode("utf-8", errors="ignore")
    lines = [line for line in text.splitlines() if line.strip()][:-1]  # the last line may be cut
    cut = int(len(lines) * 0.95)
    (work / "train.txt").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    (work / "held_out.txt").write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    results: dict = {"megabytes": args.megabytes, "vocab_size": VOCAB, "runs": args.runs}
    for side in ("upstream", "bertkit"):
        runs = []
        for number in range(args.runs):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    side,
                    str(work / "train.txt"),
                    str(work / "held_out.txt"),
                    str(work / f"{side}-{number}"),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                env={
                    "PATH": "",
                    "PYTHONPATH": str(ROOT),
                    "PYTHONHASHSEED": str(number),
                    "TOKENIZERS_PARALLELISM": "true",
                },
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(side, number, runs[-1], flush=True)
        results[side] = {
            "runs": runs,
            "distinct_vocabularies": len({r["tokenizer_sha256"] for r in runs}),
            "pieces_per_word": statistics.mean(r["pieces_per_word"] for r in runs),
            "unk_share": statistics.mean(r["unk_share"] for r in runs),
            "seconds": statistics.mean(r["seconds"] for r in runs),
        }
    results["pieces_per_word_ratio"] = results["bertkit"]["pieces_per_word"] / results["upstream"]["pieces_per_word"]
    results["time_ratio"] = results["bertkit"]["seconds"] / results["upstream"]["seconds"]
    print(json.dumps({k: v for k, v in results.items() if k not in ("upstream", "bertkit")}, indent=2))
    print(save_results("tokenizer", results))


if __name__ == "__main__":
    main()
