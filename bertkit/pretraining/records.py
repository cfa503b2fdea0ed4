"""Pretraining corpora as they ship today: one document per record, its text in one field (``--text-column``).

    bertkit pretrain wiki.jsonl              {"text": "..."} per line
    bertkit pretrain docs.json               a JSON list of records (or {"data": [...]})
    bertkit pretrain shard-0000.parquet      a Parquet file (read in batches, never whole)
    bertkit pretrain data/wiki               a directory written by save_to_disk (a DatasetDict: its train split)

Inside a record the text rules of plain-text corpora hold: blank lines are skipped and every line is
split into sentences; ``--document-per-line`` makes each line a document, ``--document-per-file``
the whole file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from bertkit.data.datasets_io import Source, is_saved_dataset, open_dataset
from bertkit.errors import BertkitError

RECORD_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")
BATCH = 1000


def is_record_corpus(path: Path) -> bool:
    return Path(path).suffix.lower() in RECORD_SUFFIXES or is_saved_dataset(Path(path))


def record_blocks(path: Path, layout: str, column: str) -> Iterator[list[str]]:
    """Documents (lists of non-empty lines) of a record corpus under `layout` (blocks, lines or files)."""
    whole: list[str] = []
    for text in record_texts(path, column):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if layout == "lines":
            yield from ([line] for line in lines)
        elif layout == "files":
            whole.extend(lines)
        elif lines:
            yield lines
    if whole:
        yield whole


def record_texts(path: Path, column: str) -> Iterator[str]:
    """The `column` text of every record, checked: a missing column or a non-text value names the record."""
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        yield from _jsonl_texts(path, column)
    elif suffix == ".json":
        from bertkit.data.readers import read_table

        table = read_table(path, "json")
        _check_column(path, column, table.columns)
        for record, where in zip(table.records, table.where):
            yield _text(record.get(column), where, column)
    else:
        yield from _dataset_texts(path, column)


def _jsonl_texts(path: Path, column: str) -> Iterator[str]:
    from bertkit.pretraining.corpus import read_lines

    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise BertkitError(f"{where}: not valid JSON ({error.msg}); fix the line") from None
        if not isinstance(record, dict) or column not in record:
            fields = ", ".join(record) if isinstance(record, dict) else type(record).__name__
            raise BertkitError(f"{where}: no '{column}' field ({fields}); name the text field with --text-column")
        yield _text(record[column], where, column)


def _dataset_texts(path: Path, column: str) -> Iterator[str]:
    """Parquet streams from the file in batches; Arrow and saved datasets are memory-mapped by `datasets`."""
    if Path(path).suffix.lower() == ".parquet":
        import datasets

        dataset = datasets.load_dataset("parquet", data_files=str(path), split="train", streaming=True)
        shown = str(path)
    else:
        split = "train" if (Path(path) / "dataset_dict.json").is_file() else None
        dataset, shown = open_dataset(Source(path, split, "a train split (pretraining reads it)"))
    _check_column(shown, column, list(dataset.column_names or []))
    number = 0
    for batch in dataset.select_columns([column]).iter(batch_size=BATCH):
        for value in batch[column]:
            number += 1
            yield _text(value, f"{shown} record {number}", column)


def _check_column(shown, column: str, columns: list[str]) -> None:
    if column not in columns:
        raise BertkitError(
            f"{shown}: no '{column}' column (columns: {', '.join(columns)}); name the text column with --text-column"
        )


def _text(value, where: str, column: str) -> str:
    if value is None:
        return ""  # an empty document, skipped like a blank line
    if not isinstance(value, str):
        raise BertkitError(f"{where}: '{column}' is {type(value).__name__}, not text; give the text of the document")
    return value
