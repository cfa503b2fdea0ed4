"""--cache-encoded / --num-workers: the task's encode through datasets.map into Arrow, same features, reused."""

from __future__ import annotations

import pytest
from conftest import EXAMPLES, free_port

from bertkit.data import encoding
from bertkit.data.encoding import encode_training, encoded_dir, feature_lengths
from bertkit.modeling.loading import load_tokenizer
from bertkit.settings import FinetuneSettings, options_from
from bertkit.tasks import get_task

INPUTS = {"classification": "sentiment/train.tsv", "tagging": "tagging/train.conll", "qa": "qa/train.jsonl"}


def prepared(task_name: str, tmp_path, **values):
    settings = FinetuneSettings(
        task=task_name,
        model="m",
        train=EXAMPLES / INPUTS[task_name],
        output=tmp_path / "run",
        max_length=48 if task_name != "qa" else 96,
        doc_stride=32,
        stride=16,
        **values,
    )
    task = get_task(task_name)
    options = options_from(task.options_type, settings)
    examples = task.read(settings.train, options, labelled=True)
    labels = task.label_names(examples)
    options = task.configure(options, settings.max_length, examples)
    return task, examples, {name: i for i, name in enumerate(labels)}, options, settings


def plain(features: list[dict]) -> list[dict]:
    return [
        {
            key: list(value) if isinstance(value, (list, tuple)) else value
            for key, value in feature.items()
            if not key.startswith("_")
        }
        for feature in features
    ]


@pytest.mark.parametrize("task_name", list(INPUTS))
@pytest.mark.parametrize("workers", [1, 2])
def test_arrow_features_equal_the_tasks_own(task_name, workers, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "ENCODE_BATCH", 7)  # several batches (and processes) on the small examples
    tokenizer = load_tokenizer(str(tiny_model))
    task, examples, label2id, options, settings = prepared(task_name, tmp_path, cache_encoded=True, num_workers=workers)
    expected, expected_truncated = task.encode(examples, tokenizer, settings.max_length, label2id, options)
    features, truncated = encode_training(task, examples, tokenizer, settings.max_length, label2id, options, settings)
    assert truncated == expected_truncated
    assert [{k: v for k, v in features[i].items() if k != "_length"} for i in range(len(features))] == plain(expected)
    assert feature_lengths(features) == [len(f["input_ids"]) for f in expected]
    assert feature_lengths(expected) is None


def test_a_repeated_run_reads_the_arrow_files_without_encoding(tiny_model, tmp_path, monkeypatch):
    tokenizer = load_tokenizer(str(tiny_model))
    task, examples, label2id, options, settings = prepared("classification", tmp_path, cache_encoded=True)
    first, _ = encode_training(task, examples, tokenizer, 48, label2id, options, settings)
    task.encode(examples, tokenizer, 8, label2id, options)  # a truncating call changes the tokenizer's state
    monkeypatch.setattr(type(task), "encode", lambda *a, **k: pytest.fail("encoded again"))
    again, _ = encode_training(task, examples, tokenizer, 48, label2id, options, settings)
    assert again[:] == first[:]
    assert sorted(p.suffix for p in encoded_dir(settings.output).iterdir()) == [".arrow", ".json"]
    with pytest.raises(pytest.fail.Exception, match="encoded again"):  # a length that shapes the features: anew
        encode_training(task, examples, tokenizer, 40, label2id, options, settings)


def test_finetune_with_cache_encoded_and_overwrite_reuses_it(tiny_model, cli, tmp_path):
    args = [
        "finetune",
        "--model",
        tiny_model,
        "--train",
        EXAMPLES / "sentiment/train.tsv",
        "--output",
        tmp_path / "run",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--cache-encoded",
    ]
    assert cli(*args).exit_code == 0
    made = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run.encoded").iterdir()}
    result = cli(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run.encoded").iterdir()} == made


def test_num_workers_below_one_is_refused(tmp_path, tiny_model):
    task, examples, label2id, options, settings = prepared(
        "classification", tmp_path, cache_encoded=True, num_workers=0
    )
    from bertkit.errors import BertkitError

    with pytest.raises(BertkitError, match="--num-workers is 0; it must be at least 1"):
        encode_training(task, examples, load_tokenizer(str(tiny_model)), 48, label2id, options, settings)


@pytest.mark.slow
def test_two_processes_share_the_arrow_features(tiny_model, tmp_path):
    """The main process encodes; the other loads the prepared data, whose features are the memory-mapped files."""
    from helpers import run

    done = run(
        [
            "finetune",
            "--model",
            str(tiny_model),
            "--train",
            str(EXAMPLES / "sentiment/train.tsv"),
            "--output",
            str(tmp_path / "two"),
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--num-processes",
            "2",
            "--main-process-port",
            str(free_port()),
            "--cache-encoded",
        ]
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "two.encoded").glob("*.json"))) == 1
