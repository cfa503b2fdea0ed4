"""`bertkit embed`: sentence vectors to .npy/.jsonl, contextual word vectors and their similarity table."""

from __future__ import annotations

import json

import numpy as np
from conftest import EXAMPLES

SENTENCES = [
    "the garden was green after the rain",
    "the roses needed water every evening",
    "fishing boats left the harbour before dawn",
    "the harbour master counted every boat",
]


def test_sentence_vectors_to_npy_from_a_plain_model(tiny_model, cli, tmp_path):
    texts = (EXAMPLES / "sentiment/inputs.txt").read_text().splitlines()
    output = tmp_path / "vectors.npy"
    result = cli("embed", "--model", tiny_model, EXAMPLES / "sentiment/inputs.txt", "--output", output, "--normalize")
    assert result.exit_code == 0, result.output
    vectors = np.load(output)
    assert vectors.shape == (len([t for t in texts if t.strip()]), 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_pooling_and_layer_choose_different_vectors(tiny_model, cli, tmp_path):
    found = {}
    for name, options in {"mean": (), "cls": ("--pooling", "cls"), "layer0": ("--layer", "0")}.items():
        output = tmp_path / f"{name}.jsonl"
        result = cli("embed", "--model", tiny_model, *SENTENCES, "--output", output, *options)
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in output.read_text().splitlines()]
        assert [r["text"] for r in records] == SENTENCES
        found[name] = np.array([r["vector"] for r in records])
    assert not np.allclose(found["mean"], found["cls"]) and not np.allclose(found["mean"], found["layer0"])


def test_word_similarity_table_and_heat_map(tiny_model, cli, tmp_path):
    plot = tmp_path / "harbour.png"
    sentences = [s for s in SENTENCES if "harbour" in s] + ["gulls followed the boats back to the harbour"]
    result = cli("embed", "--model", tiny_model, "--similarity", "--word", "harbour", *sentences, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "cosine similarity of 'harbour' in context" in result.stdout
    assert result.stdout.count("1.000") == len(sentences)  # the diagonal
    assert plot.is_file() and plot.stat().st_size > 1000


def test_word_missing_from_a_sentence_is_a_clear_error(tiny_model, cli):
    result = cli("embed", "--model", tiny_model, "--similarity", "--word", "harbour", *SENTENCES)
    assert result.exit_code == 2
    assert "input 1" in result.stderr and "'harbour' does not occur" in result.stderr


def test_nothing_to_do_is_a_clear_error(tiny_model, cli):
    result = cli("embed", "--model", tiny_model, *SENTENCES)
    assert result.exit_code == 2 and "--output" in result.stderr
