"""Readers: formats, column detection, and the one-line errors that name file and line."""

from __future__ import annotations

import pytest

from bertkit.data.readers import pick_column, read_table
from bertkit.errors import BertkitError
from bertkit.settings import FinetuneSettings
from bertkit.tasks import get_task


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name,content",
    [
        ("a.tsv", "text\tlabel\ngood film\tpos\nbad film\tneg\n"),
        ("a.csv", 'text,label\n"good, really",pos\nbad film,neg\n'),
        ("a.jsonl", '{"text": "good, really", "label": "pos"}\n\n{"text": "bad film", "label": "neg"}\n'),
        ("a.json", '[{"text": "good, really", "label": "pos"}, {"text": "bad film", "label": "neg"}]'),
    ],
)
def test_every_table_format_reads_the_same_records(tmp_path, name, content):
    table = read_table(write(tmp_path, name, content))
    assert [r["label"] for r in table.records] == ["pos", "neg"]
    assert table.columns[:2] == ["text", "label"]
    assert table.where[1].endswith(("line 3", "record 2"))


def test_tsv_is_read_unquoted(tmp_path):
    table = read_table(write(tmp_path, "q.tsv", 'text\tlabel\n"quoted" start\tpos\n'))
    assert table.records[0]["text"] == '"quoted" start'


def test_txt_lines_and_tab_pairs(tmp_path):
    table = read_table(write(tmp_path, "in.txt", "one\n\ntwo\tpair\n"))
    assert table.records == [{"text": "one"}, {"text": "two", "text_pair": "pair"}]
    assert table.where == [f"{tmp_path / 'in.txt'} line 1", f"{tmp_path / 'in.txt'} line 3"]


@pytest.mark.parametrize(
    "name,content,words",
    [
        ("missing.tsv", None, ["file not found"]),
        ("empty.tsv", "\n  \n", ["file is empty"]),
        ("latin1.tsv", "text\tlabel\ngood\tpos\ncaf\xe9\tpos\n".encode("latin-1"), ["line 3", "not valid UTF-8"]),
        ("fields.tsv", "text\tlabel\ngood\tpos\nbad\tneg\textra\n", ["line 3", "3 fields", "header has 2"]),
        ("bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", label}\n', ["line 2", "not valid JSON"]),
        ("list.jsonl", '["a", "b"]\n', ["line 1", "JSON object"]),
        ("obj.json", '{"text": "a"}', ["JSON list"]),
        ("header.csv", "text,text\na,b\n", ["names a column twice"]),
        ("only-header.tsv", "text\tlabel\n", ["no records"]),
    ],
)
def test_unreadable_files_give_one_line_naming_file_and_line(tmp_path, name, content, words):
    path = tmp_path / name if content is None else write(tmp_path, name, content)
    with pytest.raises(BertkitError) as error:
        read_table(path)
    message = str(error.value)
    assert name in message and "\n" not in message
    for word in words:
        assert word in message


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(BertkitError, match="is a directory"):
        read_table(tmp_path)


def test_column_detection_and_its_errors(tmp_path):
    table = read_table(write(tmp_path, "t.tsv", "sentence\tgold_label\nhello\tx\n"))
    assert pick_column(table, None, ("text", "sentence"), "text", "--text-column") == "sentence"
    with pytest.raises(BertkitError, match="no column 'body'.*--text-column"):
        pick_column(table, "body", ("text",), "text", "--text-column")
    ambiguous = read_table(write(tmp_path, "u.tsv", "text\tsentence\tlabel\na\tb\tc\n"))
    with pytest.raises(BertkitError, match="several columns could be the text.*--text-column"):
        pick_column(ambiguous, None, ("text", "sentence"), "text", "--text-column")
    with pytest.raises(BertkitError, match="no label column found"):
        pick_column(table, None, ("label",), "label", "--label-column")


def settings(**values):
    return FinetuneSettings(model="m", train=values.pop("train", None), output=None, **values)


def test_classification_examples_with_integer_labels_sorted_numerically(tmp_path):
    path = write(tmp_path, "n.jsonl", "".join(f'{{"text": "t{i}", "label": {i % 11}}}\n' for i in range(22)))
    task = get_task("classification")
    examples = task.read(path, settings(), labelled=True)
    assert task.label_names(examples) == [str(i) for i in range(11)]


def test_label_unseen_in_training_names_the_record(tmp_path):
    task = get_task("classification")
    train = task.read(write(tmp_path, "train.tsv", "text\tlabel\na\tpos\nb\tneg\n"), settings(), labelled=True)
    dev = task.read(write(tmp_path, "dev.tsv", "text\tlabel\na\tpos\nb\tneutral\n"), settings(), labelled=True)
    with pytest.raises(BertkitError, match=r"dev.tsv line 3: label 'neutral' was not in the training data"):
        task.check_labels(dev, task.label_names(train))


def test_empty_label_and_single_label_are_errors(tmp_path):
    task = get_task("classification")
    with pytest.raises(BertkitError, match=r"line 3: the label \('label'\) is empty"):
        task.read(write(tmp_path, "e.tsv", "text\tlabel\na\tpos\nb\t\n"), settings(), labelled=True)
    one = task.read(write(tmp_path, "one.tsv", "text\tlabel\na\tpos\nb\tpos\n"), settings(), labelled=True)
    with pytest.raises(BertkitError, match="only one label"):
        task.label_names(one)


def test_nli_needs_the_second_text(tmp_path):
    task = get_task("nli")
    with pytest.raises(BertkitError, match="no second text column found.*--text-pair-column"):
        task.read(write(tmp_path, "p.tsv", "premise\tlabel\na\tx\n"), settings(), labelled=True)
    examples = task.read(write(tmp_path, "s.tsv", "sentence1\tsentence2\tlabel\na\tb\tx\n"), settings(), labelled=True)
    assert (examples[0].text, examples[0].text_pair, examples[0].label) == ("a", "b", "x")
