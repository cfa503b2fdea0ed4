"""Training examples streamed from Arrow instead of read whole (``--cache-encoded``), so memory stays flat.

The input goes into an Arrow stream file a batch of records at a time: a Parquet file batch by
batch (``ParquetFile.iter_batches``), a csv/tsv/jsonl/txt/CoNLL file line by line (each record as
JSON text with its location), while Arrow files, saved datasets and hub datasets are read where they
lie. A task turns each batch of records into its examples (`StreamedExamples`); every pass reads the
files through a plain stream, not a memory map, so pages read once do not stay in the process.
Bad records raise the same one-line errors as the in-memory readers ("train.tsv line 7",
"train.parquet record 12").
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError

ROWS_BATCH = 1000  # records converted to Python (and to examples) at a time
JSON_COLUMN, WHERE_COLUMN = "_json", "_where"  # the two columns of a text file's records


@dataclass
class Rows:
    """An input's records in Arrow stream files: `path` and `columns` as a `Table` has them (for column lookup)."""

    path: Path
    columns: list[str]
    files: list[str]
    count: int
    features: Any = None  # datasets.Features of a dataset source (ClassLabel names); None for text files
    written: bool = False  # the files are this run's copy of the records (removed by `discard`), not the input's own

    def discard(self) -> None:
        """Removes the records' copy once their features are encoded (a later run reads the input again)."""
        for name in self.files if self.written else ():
            Path(name).unlink(missing_ok=True)

    def batches(self) -> Iterator[tuple[int, list[tuple[dict, str]]]]:
        """(number of the first record, [(record, where), ...]) for every batch of at most ROWS_BATCH records."""
        import pyarrow as pa

        start = 0
        for name in self.files:
            with pa.OSFile(name) as stream:  # read, not memory-mapped
                for whole in pa.ipc.open_stream(stream):
                    for offset in range(0, whole.num_rows, ROWS_BATCH):
                        columns = whole.slice(offset, ROWS_BATCH).to_pydict()
                        yield start, self.records(columns, start)
                        start += min(ROWS_BATCH, whole.num_rows - offset)

    def records(self, columns: dict, start: int) -> list[tuple[dict, str]]:
        """(record, where) of a batch of columns whose first record is number `start` (counting from 0)."""
        from bertkit.data.datasets_io import label_decoders

        decoders = label_decoders(self.features) if self.features is not None else {}
        if JSON_COLUMN in columns:
            return [(json.loads(text), where) for text, where in zip(columns[JSON_COLUMN], columns[WHERE_COLUMN])]
        names = list(columns)
        records = []
        for number, values in enumerate(zip(*(columns[name] for name in names)), start=start + 1):
            record = dict(zip(names, values))
            for column, decode in decoders.items():
                record[column] = decode(record[column])
            records.append((record, f"{self.path} record {number}"))
        return records

    def digest(self) -> str:
        """Changes with the records' content (the files' bytes, read in chunks)."""
        digest = hashlib.sha256()
        for name in self.files:
            with open(name, "rb") as stream:
                while chunk := stream.read(1 << 22):
                    digest.update(chunk)
        return digest.hexdigest()


class StreamedExamples(Sequence):
    """A task's examples made a batch at a time from `rows` by `make` ((record, where) pairs -> examples)."""

    def __init__(self, rows: Rows, make: Callable[[Iterable[tuple[dict, str]]], list]):
        self.rows, self.make = rows, make

    def __len__(self) -> int:
        return self.rows.count

    def batches(self) -> Iterator[tuple[int, list]]:
        """(number of the first example, examples) for every batch."""
        for start, records in self.rows.batches():
            yield start, self.make(records)

    def __iter__(self) -> Iterator:
        for _, examples in self.batches():
            yield from examples

    def __getitem__(self, index):  # a few single examples (error messages name the first): a scan is enough
        if isinstance(index, slice) or not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        for start, examples in self.batches():
            if index < start + len(examples):
                return examples[index - start]
        raise IndexError(index)

    def __repr__(self) -> str:
        return f"StreamedExamples({self.rows.path}, {len(self)} examples)"


@contextmanager
def tidy_on_error(folder: Path):
    """A mistake in the input leaves nothing behind: the records' Arrow files go (and `folder`, when this made it)."""
    existed = folder.exists()
    try:
        yield
    except BertkitError:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for made in folder.glob("rows-*.arrow"):
                made.unlink(missing_ok=True)
        raise


def open_rows(
    path: Any, folder: Path, records: Iterable[tuple[dict, str]] | None = None, noun: str = "records"
) -> Rows:
    """The records of `path` in Arrow files; a text file's (or the given `records`) are written to `folder`."""
    from bertkit.data.datasets_io import is_dataset_source

    if records is None and is_dataset_source(path):
        return _dataset_rows(path, folder)
    shown = Path("stdin") if str(path) == "-" else Path(str(path))
    if records is None:
        records, columns = text_records(path)
    else:
        columns = []
    target = folder / "rows-train.arrow"
    count = _write_json_rows(records, target)
    if count == 0:
        raise BertkitError(f"{shown}: holds no {noun}; give a file with data")
    return Rows(shown, columns, [str(target)], count, written=True)


def text_records(path: Any) -> tuple[Iterator[tuple[dict, str]], list[str]]:
    """(record, where) of a csv/tsv/jsonl/json/txt file, read a line at a time (json: whole), and the list that
    holds its columns once the records are read (as `read_table` finds them)."""
    from bertkit.data.readers import file_format, file_lines, iter_delimited, iter_jsonl, iter_txt, read_table

    fmt, shown = file_format(path), Path(str(path))
    columns: list[str] = []
    if str(path) == "-" or fmt == "json":  # stdin, or one JSON document: read whole, as read_table does
        table = read_table(path)
        columns.extend(table.columns)
        return zip(table.records, table.where), columns
    if fmt in ("csv", "tsv"):
        return iter_delimited(shown, file_lines(path, physical=True), fmt, header_out=columns), columns
    if fmt == "jsonl":
        return _noting_columns(iter_jsonl(shown, file_lines(path)), columns), columns
    if fmt == "txt":
        return _noting_columns(iter_txt(shown, file_lines(path)), columns, ["text"], None), columns
    raise BertkitError(f"{shown}: cannot read '{fmt}' files here; use csv, tsv, jsonl, json, txt, parquet or arrow")


def _noting_columns(
    records: Iterator[tuple[dict, str]], columns: list[str], first: Sequence[str] = (), seen_in: int | None = 1000
) -> Iterator[tuple[dict, str]]:
    """Passes records on; once they are read, `columns` holds the keys of the first `seen_in` (None: all)."""
    seen = dict.fromkeys(first)
    for number, (record, where) in enumerate(records):
        if seen_in is None or number < seen_in:
            seen.update(dict.fromkeys(record))
        yield record, where
    columns[:] = list(seen)


def _write_json_rows(records: Iterable[tuple[dict, str]], target: Path) -> int:
    import pyarrow as pa

    schema = pa.schema([(JSON_COLUMN, pa.large_string()), (WHERE_COLUMN, pa.string())])
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        texts, places = [], []
        for record, where in records:
            texts.append(json.dumps(record, ensure_ascii=False))
            places.append(where)
            if len(texts) == ROWS_BATCH:
                writer.write_batch(pa.record_batch([texts, places], schema=schema))
                count, texts, places = count + len(texts), [], []
        if texts:
            writer.write_batch(pa.record_batch([texts, places], schema=schema))
            count += len(texts)
    return count


def _dataset_rows(path: Any, folder: Path) -> Rows:
    """Parquet batch by batch into an Arrow file; Arrow files and saved or hub datasets read where they lie."""
    if Path(str(path)).suffix.lower() == ".parquet" and Path(str(path)).is_file():
        return _parquet_rows(Path(str(path)), folder / "rows-train.arrow")
    from bertkit.data.datasets_io import open_dataset

    dataset, shown = open_dataset(path)
    if len(dataset) == 0:
        raise BertkitError(f"{shown}: holds no records; give a dataset with data")
    files = [entry["filename"] for entry in dataset.cache_files]
    if dataset._indices is not None or not files or sum(_file_rows(f) for f in files) != len(dataset):
        target = folder / "rows-train.arrow"  # a selection or an in-memory table: written out once
        target.parent.mkdir(parents=True, exist_ok=True)
        dataset.flatten_indices(cache_file_name=str(target), keep_in_memory=False)
        return Rows(Path(shown), list(dataset.column_names), [str(target)], len(dataset), dataset.features, True)
    return Rows(Path(shown), list(dataset.column_names), files, len(dataset), dataset.features)


def _file_rows(name: str) -> int:
    import pyarrow as pa

    with pa.OSFile(name) as stream:
        return sum(batch.num_rows for batch in pa.ipc.open_stream(stream))


def _parquet_rows(path: Path, target: Path) -> Rows:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # pages read as needed: the default pre-buffering holds a whole row group (1M rows) in memory
        source = pq.ParquetFile(str(path), buffer_size=1 << 20, pre_buffer=False)
        schema = source.schema_arrow
        with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in source.iter_batches(batch_size=ROWS_BATCH, use_threads=False):
                writer.write_batch(batch)
    except (OSError, pa.ArrowException) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BertkitError(
            f"{path}: not a readable parquet file ({message}); re-write it (e.g. Dataset.to_parquet)"
        ) from None
    count = source.metadata.num_rows
    if count == 0:
        raise BertkitError(f"{path}: holds no records; give a dataset with data")
    return Rows(path, list(schema.names), [str(target)], count, datasets.Features.from_arrow_schema(schema), True)
