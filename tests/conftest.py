"""Shared fixtures: a tiny BERT and WordPiece tokenizer built from the project's own example text.

Nothing here reads the benchmark data beside the repository, nor the network; every model is made in the test session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The test models are tiny: a second thread costs more in hand-offs than it gains (0.36 s vs 0.02 s a step
# measured on a busy 2-core machine), and subprocess runs inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it), for multi-process rendezvous and servers."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_loads_completely(model_class, model_dir, allowed_unexpected: tuple[str, ...] = ()):
    """Load `model_dir` with a transformers class and fail if any weight was missing, unexpected or re-shaped.

    A plain `from_pretrained` initialises missing weights at random and says so only in a warning, so a
    test that merely loads a model cannot tell a complete save from a broken one.
    """
    model, info = model_class.from_pretrained(model_dir, output_loading_info=True)
    unexpected = [key for key in info["unexpected_keys"] if not key.startswith(allowed_unexpected)]
    assert not info["missing_keys"] and not info["mismatched_keys"] and not unexpected, info
    return model


# The texts the shared tiny vocabulary is trained on: a fixed list, so that example data added for a new
# task does not change the vocabulary (and with it every learning test's exact outcome).
VOCABULARY_FILES = ("corpus/stories.txt", "nli/dev.tsv", "nli/train.tsv", "qa/dev-v2.json", "qa/dev.json",
                    "qa/questions.jsonl", "qa/train-v2.json", "qa/train.jsonl", "sentiment/dev.tsv",
                    "sentiment/inputs.txt", "sentiment/test.tsv", "sentiment/train.tsv", "tagging/dev.conll",
                    "tagging/sentences.txt", "tagging/train.conll")


def example_texts() -> list[str]:
    texts = []
    for name in VOCABULARY_FILES:
        lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
        texts.extend(line for line in lines if line.strip())
    return texts


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer, 64-wide BERT with a WordPiece vocabulary trained on examples/."""
    from bertkit.modeling.scratch import init_model_dir

    target = tmp_path_factory.mktemp("tiny-model")
    return init_model_dir(example_texts(), target, size=None, layers=2, hidden=64, heads=2, intermediate=128,
                          vocab_size=1500, max_position=256)


@pytest.fixture
def cli():
    """Invoke the real Typer app; returns the click Result (exit_code, stdout, stderr)."""
    from bertkit.cli import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input)

    return invoke
