"""Pretraining corpora with one document per record: jsonl, json, parquet, arrow and saved datasets read
into the same documents as the blank-line text corpus they were made from."""

from __future__ import annotations

import json

import datasets
import pytest
from conftest import EXAMPLES

from bertkit.errors import BertkitError
from bertkit.pretraining.corpus import iter_blocks, iter_documents, layout_of, resolve_corpus
from bertkit.settings import PretrainSettings

CORPUS = EXAMPLES / "corpus" / "stories.txt"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def text_documents() -> list[str]:
    """Each blank-line block of the example corpus as one record's text."""
    return ["\n".join(block) for block in iter_blocks([CORPUS], "blocks")]


def write_corpus(tmp_path, kind: str, column: str = "text"):
    texts = text_documents()
    if kind == "jsonl":
        path = tmp_path / "c.jsonl"
        path.write_text("\n".join(json.dumps({"id": i, column: t}) for i, t in enumerate(texts)) + "\n")
    elif kind == "json":
        path = tmp_path / "c.json"
        path.write_text(json.dumps([{column: t} for t in texts]))
    elif kind == "parquet":
        path = tmp_path / "c.parquet"
        datasets.Dataset.from_dict({column: texts}).to_parquet(str(path))
    else:
        path = tmp_path / "saved"
        datasets.DatasetDict(
            train=datasets.Dataset.from_dict({column: texts}), test=datasets.Dataset.from_dict({column: ["other"]})
        ).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("kind", ["jsonl", "json", "parquet", "saved"])
def test_records_give_the_documents_of_the_text_corpus(tmp_path, kind):
    files = resolve_corpus([write_corpus(tmp_path, kind)])
    assert len(files) == 1
    expected = list(iter_documents([CORPUS], "blocks"))
    assert list(iter_documents(files, "blocks")) == expected
    lines = [line for block in iter_blocks([CORPUS], "blocks") for line in block]
    assert list(iter_blocks(files, "lines")) == [[line] for line in lines]


def test_text_column_is_chosen_and_changes_the_cache_fingerprint(tmp_path):
    path = write_corpus(tmp_path, "parquet", column="body")
    settings = PretrainSettings(corpus=[path], output=tmp_path / "run", text_column="body")
    assert len(list(iter_blocks([path], layout_of(settings)))) == len(text_documents())
    assert repr(layout_of(settings)) != repr(layout_of(PretrainSettings(corpus=[path], output=tmp_path / "run")))
    with pytest.raises(
        BertkitError,
        match=r"c.parquet: no 'text' column \(columns: body\); name the text column "
        r"with --text-column",
    ):
        list(iter_blocks([path], layout_of(PretrainSettings(corpus=[path], output=tmp_path / "r"))))


@pytest.mark.parametrize(
    "content,message",
    [
        (
            '{"text": "fine"}\n{"body": "x"}\n',
            r"c.jsonl line 2: no 'text' field \(body\); name the text field with "
            r"--text-column",
        ),
        ('{"text": "fine"}\n{"text": 3}\n', r"c.jsonl line 2: 'text' is int, not text"),
        ('{"text": "fine"}\n{"text": \n', r"c.jsonl line 2: not valid JSON"),
    ],
)
def test_bad_records_name_the_line(tmp_path, content, message):
    path = tmp_path / "c.jsonl"
    path.write_text(content)
    with pytest.raises(BertkitError, match=message):
        list(iter_blocks([path], "blocks"))


def test_pretrain_runs_on_a_parquet_corpus(tmp_path, cli):
    run = tmp_path / "run"
    result = cli(
        "pretrain",
        write_corpus(tmp_path, "parquet"),
        "--output",
        run,
        "--layers",
        "1",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--intermediate",
        "64",
        "--vocab-size",
        "300",
        "--max-seq-length",
        "32",
        "--batch-size",
        "8",
        "--max-steps",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run / "metrics.json").read_text())["steps"] == 2
