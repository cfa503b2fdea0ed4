"""--cache-encoded streams the training examples from Arrow a batch at a time (issue #13): the same examples,
label sets, features and fine-tuned results as the in-memory readers, the same one-line errors for bad records,
nothing left behind by a mistake, and a repeated run that does not encode again.

Every input file here is written by the test from the project's examples (`datasets`/`pyarrow` for Parquet).
"""

from __future__ import annotations

import csv
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES

from bertkit.data import encoding, streaming
from bertkit.data.conll import read_tagged
from bertkit.data.encoding import encode_training, encoded_dir
from bertkit.data.streaming import StreamedExamples
from bertkit.modeling.loading import load_tokenizer
from bertkit.settings import FinetuneSettings, options_from
from bertkit.tasks import get_task

SENTIMENT = EXAMPLES / "sentiment/train.tsv"
TAGGED = EXAMPLES / "tagging/train.conll"


@pytest.fixture(autouse=True)
def small_batches(monkeypatch, tmp_path):
    """Batches of 7 records (features written 20 or more at a time), so examples are numbered across many
    batches; datasets' cache in the test's folder."""
    monkeypatch.setattr(streaming, "ROWS_BATCH", 7)
    monkeypatch.setattr(encoding, "WRITE_ROWS", 20)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))


def sentiment_rows() -> list[dict]:
    lines = SENTIMENT.read_text(encoding="utf-8").splitlines()[1:]
    return [dict(zip(("text", "label"), line.split("\t"))) for line in lines if line.strip()]


def tagged_rows() -> list[dict]:
    return [{"tokens": s.tokens, "tags": s.tags} for s in read_tagged(TAGGED, labelled=True)]


def write_input(kind: str, tmp_path):
    """(task name, path) of the training examples written as `kind`."""
    if kind == "tsv":
        return "classification", SENTIMENT
    if kind == "conll":
        return "tagging", TAGGED
    if kind == "nli-tsv":
        return "nli", EXAMPLES / "nli/train.tsv"
    task, rows = ("tagging", tagged_rows()) if kind.startswith("tagging-") else ("classification", sentiment_rows())
    fmt = kind.removeprefix("tagging-")
    path = tmp_path / f"train.{fmt}"
    if fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif fmt == "parquet" and task == "classification":  # ClassLabel numbers, which the reader turns into names
        names = sorted({row["label"] for row in rows})
        features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
        datasets.Dataset.from_dict(
            {"text": [r["text"] for r in rows], "label": [names.index(r["label"]) for r in rows]}, features=features
        ).to_parquet(str(path))
    elif fmt == "parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    elif fmt == "saved":
        path = tmp_path / "saved"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return task, path


def prepared(task_name: str, path, tmp_path, **values):
    settings = FinetuneSettings(
        task=task_name,
        model="m",
        train=path,
        output=tmp_path / "run",
        max_length=48,
        stride=16,
        cache_encoded=True,
        **values,
    )
    task = get_task(task_name)
    return task, options_from(task.options_type, settings), settings


def plain(features) -> list[dict]:
    return [{key: value for key, value in features[i].items() if not key.startswith("_")} for i in range(len(features))]


KINDS = ["tsv", "csv", "jsonl", "json", "parquet", "saved", "nli-tsv", "conll", "tagging-jsonl", "tagging-parquet"]


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_examples_labels_and_features_equal_the_in_memory_ones(kind, tiny_model, tmp_path):
    task_name, path = write_input(kind, tmp_path)
    task, options, settings = prepared(task_name, path, tmp_path)
    in_memory = task.read(path, options, labelled=True)
    streamed = task.stream(path, options, True, encoded_dir(settings.output))
    assert isinstance(streamed, StreamedExamples)
    assert len(streamed) == len(in_memory) > 2 * streaming.ROWS_BATCH
    assert list(streamed) == in_memory  # text, labels and where each came from ("train.tsv line 17")
    assert streamed[0] == in_memory[0] and streamed[-1] == in_memory[-1]
    labels = task.label_names(streamed)
    assert labels == task.label_names(in_memory)
    label2id = {name: i for i, name in enumerate(labels)}
    options = task.configure(options, 48, streamed)
    tokenizer = load_tokenizer(str(tiny_model))
    expected, expected_truncated = task.encode(in_memory, tokenizer, 48, label2id, options)
    features, truncated = encode_training(task, streamed, tokenizer, 48, label2id, options, settings)
    assert truncated == expected_truncated
    assert plain(features) == plain(expected)  # "index" numbers the examples across batches


def test_several_workers_encode_streamed_examples_alike(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "ENCODE_BATCH", 7)
    task, options, settings = prepared("classification", SENTIMENT, tmp_path, num_workers=2)
    streamed = task.stream(SENTIMENT, options, True, encoded_dir(settings.output))
    in_memory = task.read(SENTIMENT, options, labelled=True)
    label2id = {name: i for i, name in enumerate(task.label_names(in_memory))}
    tokenizer = load_tokenizer(str(tiny_model))
    features, _ = encode_training(task, streamed, tokenizer, 48, label2id, options, settings)
    assert plain(features) == plain(task.encode(in_memory, tokenizer, 48, label2id, options)[0])


def test_a_repeated_run_reuses_the_cache_and_a_changed_file_encodes_again(tiny_model, tmp_path, monkeypatch):
    path = tmp_path / "train.tsv"
    path.write_text(SENTIMENT.read_text(encoding="utf-8"), encoding="utf-8")
    task, options, settings = prepared("classification", path, tmp_path)
    tokenizer = load_tokenizer(str(tiny_model))
    folder = encoded_dir(settings.output)

    def encode():
        streamed = task.stream(path, options, True, folder)
        label2id = {name: i for i, name in enumerate(task.label_names(streamed))}
        return encode_training(task, streamed, tokenizer, 48, label2id, options, settings)[0]

    first = encode()
    own_encode = type(task).encode
    monkeypatch.setattr(type(task), "encode", lambda *a, **k: pytest.fail("encoded again"))
    assert plain(encode()) == plain(first)
    assert len(list(folder.glob("train-*.arrow"))) == 1
    path.write_text(path.read_text(encoding="utf-8").replace("\tpos\n", "\tneg\n", 1), encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="encoded again"):  # one label changed: a new cache
        encode()
    monkeypatch.setattr(type(task), "encode", own_encode)
    changed = encode()
    assert len(list(folder.glob("train-*.arrow"))) == 2
    assert [f["labels"] for f in plain(changed)] != [f["labels"] for f in plain(first)]


def finetuned(cli, tmp_path, name: str, *args) -> tuple[dict, list]:
    output = tmp_path / name
    result = cli(
        "finetune",
        *args,
        "--output",
        output,
        "--max-steps",
        "6",
        "--batch-size",
        "8",
        "--max-length",
        "48",
        "--eval-every",
        "3",
        "--lr",
        "1e-3",
        "--seed",
        "3",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((output / "metrics.json").read_text())
    losses = [json.loads(line).get("loss") for line in (output / "log.jsonl").read_text().splitlines()]
    return {key: value for key, value in metrics.items() if not key.endswith("_seconds")}, losses


@pytest.mark.parametrize(
    "task_name, train, dev, extra",
    [
        ("classification", SENTIMENT, EXAMPLES / "sentiment/dev.tsv", ()),
        ("tagging", TAGGED, EXAMPLES / "tagging/dev.conll", ("--stride", "16")),
    ],
)
def test_streamed_and_in_memory_runs_fine_tune_alike(
    task_name, train, dev, extra, tiny_model, cli, tmp_path, monkeypatch
):
    args = ("--task", task_name, "--model", tiny_model, "--train", train, "--eval", dev, *extra)
    in_memory = finetuned(cli, tmp_path, "memory", *args)
    task_type, made = type(get_task(task_name)), []
    own_stream = task_type.stream
    monkeypatch.setattr(task_type, "stream", lambda *a, **k: made.append(own_stream(*a, **k)) or made[-1])
    streamed = finetuned(cli, tmp_path, "streamed", *args, "--cache-encoded")
    assert len(made) == 1 and isinstance(made[0], StreamedExamples)  # the training examples were streamed
    assert sorted(p.suffix for p in (tmp_path / "streamed.encoded").iterdir()) == [".arrow", ".json"]  # features
    assert streamed == in_memory
    assert any(loss is not None for loss in in_memory[1])


def parquet_with_empty_text(path) -> None:
    pq.write_table(pa.table({"text": ["a fine film", " ", "dull"], "label": ["pos", "neg", "neg"]}), path)


BAD = [  # (file name, content or writer, task, words the one error line must hold)
    ("t.tsv", "text\tlabel\na\tpos\nb\tneg\textra\n", "classification", ("t.tsv line 3", "3 fields", "header has 2")),
    ("t.tsv", "text\tlabel\na\tpos\n \tneg\n", "classification", ("t.tsv line 3", "text", "empty")),
    ("t.tsv", b"text\tlabel\ngood\tpos\nbad \xff\xfe\tneg\n", "classification", ("t.tsv line 3", "UTF-8")),
    ("t.tsv", "text\tlabel\na\tpos\nb\tpos\n", "classification", ("t.tsv", "only one label")),
    ("t.tsv", "", "classification", ("t.tsv", "empty")),
    (
        "t.jsonl",
        '{"text": "a", "label": "pos"}\n{"text": "b", "label": \n',
        "classification",
        ("t.jsonl line 2", "not valid JSON"),
    ),
    ("t.parquet", parquet_with_empty_text, "classification", ("t.parquet record 2", "text", "empty")),
    ("t.parquet", b"PAR1 not really parquet", "classification", ("t.parquet", "not a readable parquet file")),
    ("t.conll", "EU\tB-ORG\nrejects\tO\tX\n", "tagging", ("t.conll line 2", "3 fields")),
    (
        "t.jsonl",
        '{"tokens": ["EU", "rejects"], "tags": ["B-ORG"]}\n',
        "tagging",
        ("t.jsonl line 1", "2 tokens", "1 tags"),
    ),
]


@pytest.mark.parametrize("name, content, task_name, words", BAD, ids=[f"{b[2]}-{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_a_bad_record_in_a_streamed_file_is_one_line_and_leaves_nothing(
    name, content, task_name, words, tiny_model, tmp_path, capsys
):
    from bertkit.cli import main

    path = tmp_path / name
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "finetune",
                "--task",
                task_name,
                "--model",
                str(tiny_model),
                "--train",
                str(path),
                "--output",
                str(tmp_path / "out"),
                "--max-steps",
                "1",
                "--cache-encoded",
            ]
        )
    stderr = capsys.readouterr().err
    assert exit_info.value.code not in (0, None)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.encoded").exists()


def test_hub_cache_and_saved_splits_stream_where_they_lie_and_stay(tiny_model, tmp_path):
    from helpers import write_hub_cache

    from bertkit.data.datasets_io import source

    rows = sentiment_rows()
    names = sorted({row["label"] for row in rows})
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    data = datasets.Dataset.from_dict(
        {"sentence": [r["text"] for r in rows], "label": [names.index(r["label"]) for r in rows]}, features=features
    )
    write_hub_cache("tiny_streamed", "plain", {"train": data})
    datasets.DatasetDict(train=data, validation=data.select(range(5))).save_to_disk(str(tmp_path / "dd"))
    tokenizer = load_tokenizer(str(tiny_model))
    for name in ("hf:tiny_streamed:plain", str(tmp_path / "dd")):
        path = source(name, "train", "--train-split")
        task, options, settings = prepared("classification", path, tmp_path)
        in_memory = task.read(path, options, labelled=True)
        streamed = task.stream(path, options, True, encoded_dir(settings.output))
        assert not streamed.rows.written and list(streamed) == in_memory  # read from the dataset's own files
        assert streamed[3].where == f"{name}[train] record 4" and streamed[3].label in names
        label2id = {label: i for i, label in enumerate(task.label_names(streamed))}
        features, _ = encode_training(task, streamed, tokenizer, 48, label2id, options, settings)
        assert plain(features) == plain(task.encode(in_memory, tokenizer, 48, label2id, options)[0])
        assert list(streamed) == in_memory  # encoding removed only its own copies, never the dataset's files
