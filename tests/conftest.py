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
VOCABULARY_FILES = (
    "corpus/stories.txt",
    "nli/dev.tsv",
    "nli/train.tsv",
    "qa/dev-v2.json",
    "qa/dev.json",
    "qa/questions.jsonl",
    "qa/train-v2.json",
    "qa/train.jsonl",
    "sentiment/dev.tsv",
    "sentiment/inputs.txt",
    "sentiment/test.tsv",
    "sentiment/train.tsv",
    "tagging/dev.conll",
    "tagging/sentences.txt",
    "tagging/train.conll",
)


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
    return init_model_dir(
        example_texts(),
        target,
        size=None,
        layers=2,
        hidden=64,
        heads=2,
        intermediate=128,
        vocab_size=1500,
        max_position=256,
    )


@pytest.fixture
def cli():
    """Invoke the real Typer app; returns the click Result (exit_code, stdout, stderr)."""
    from bertkit.cli import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input)

    return invoke


@pytest.fixture(scope="session")
def word_model(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer, 64-wide BERT whose vocabulary is every word of examples/regression and
    examples/multilabel (one token per word, sorted): the same in every process, unlike a trained WordPiece."""
    import re

    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForPreTraining, BertTokenizerFast

    words = set()
    for folder in ("regression", "multilabel"):
        for path in sorted((EXAMPLES / folder).glob("*.csv")):
            words.update(re.findall(r"\w+|[^\w\s]", path.read_text(encoding="utf-8").lower()))
    target = tmp_path_factory.mktemp("word-model")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    core = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        do_lower_case=True,
    )
    tokenizer.save_pretrained(target)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
    )
    BertForPreTraining(config).save_pretrained(target, safe_serialization=True)
    return target


def finetune_through_cli(output: Path, *args) -> Path:
    """Run `bertkit finetune ARGS --output OUTPUT` through the real app; returns the run directory."""
    from bertkit.cli import app

    result = CliRunner().invoke(app, ["finetune", *(str(a) for a in args), "--output", str(output)])
    assert result.exit_code == 0, result.output
    return output
