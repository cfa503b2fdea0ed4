"""Readers for tabular input files: csv, tsv, jsonl, json (a list of records) and txt.

Parquet and Arrow files, saved datasets and hf:NAME go through ``datasets`` (see
``bertkit/data/datasets_io.py``) and come back as the same `Table`.

Every record keeps where it came from (``train.tsv line 17``, ``data.json record 5``) so
that later checks can name it. Problems a user can fix (missing or empty file, bad
UTF-8, a malformed line) raise ``BertkitError`` with that location.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bertkit.errors import BertkitError

TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".txt": "txt"}


@dataclass
class Table:
    """Records of one file, each with its location, and the column names seen."""

    path: Path
    records: list[dict] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


def read_text(path: Path | str) -> str:
    """The whole file as text, with clear errors for a missing, empty or non-UTF-8 file. '-' is stdin."""
    if str(path) == "-":
        text = sys.stdin.read()
        if not text.strip():
            raise BertkitError("stdin: no input was given; pipe some text in or pass a file")
        return text
    path = Path(path)
    if not path.exists():
        raise BertkitError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise BertkitError(f"{path}: is a directory; pass a file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise BertkitError(
            f"{path} line {line}: not valid UTF-8 (byte {error.start}); re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise BertkitError(f"{path}: file is empty; give a file with data")
    return text


def file_format(path: Path | str, default: str = "txt") -> str:
    """The format named by the file's extension ('-' and unknown extensions give `default`)."""
    return TABLE_FORMATS.get(Path(str(path)).suffix.lower(), default)


def read_table(path: Path | str, fmt: str | None = None) -> Table:
    """Read a csv/tsv (with a header line), jsonl, json or txt file (or a dataset source) into a Table."""
    from bertkit.data.datasets_io import dataset_table, is_dataset_source

    if is_dataset_source(path):  # parquet, arrow, a saved dataset or hf:NAME, whatever `fmt` the caller expects
        return dataset_table(path)
    fmt = fmt or file_format(path)
    text = read_text(path)
    shown = Path(str(path)) if str(path) != "-" else Path("stdin")
    reader = {
        "csv": _read_delimited,
        "tsv": _read_delimited,
        "jsonl": _read_jsonl,
        "json": _read_json,
        "txt": _read_txt,
    }
    if fmt not in reader:
        raise BertkitError(f"{shown}: cannot read '{fmt}' files here; use csv, tsv, jsonl, json, txt, parquet or arrow")
    table = reader[fmt](shown, text, fmt)
    if not table.records:
        raise BertkitError(f"{shown}: holds no records; give a file with data")
    return table


def _read_delimited(path: Path, text: str, fmt: str) -> Table:
    header: list[str] = []
    table = _collect(path, iter_delimited(path, io.StringIO(text), fmt, header_out=header))
    table.columns = header
    return table


def iter_delimited(path: Path, stream, fmt: str, header_out: list | None = None) -> Iterator[tuple[dict, str]]:
    """(record, where) of a csv/tsv with a header line, read from a text stream a line at a time;
    `header_out` receives the header as soon as it is read."""
    # TSV files in this field (GLUE, SICK) are unquoted: a quote is just a character there.
    rows = csv.reader(
        stream, delimiter="\t" if fmt == "tsv" else ",", quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    )
    header: list[str] | None = None
    try:
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                if len(set(header)) != len(header):
                    raise BertkitError(
                        f"{path} line {line}: the header names a column twice ({', '.join(header)}); rename one"
                    )
                if header_out is not None:
                    header_out.extend(header)
                continue
            if len(row) != len(header):
                raise BertkitError(
                    f"{path} line {line}: {len(row)} fields where the header has {len(header)}; "
                    f"fix the line (a stray {'tab' if fmt == 'tsv' else 'comma or quote'}?)"
                )
            yield dict(zip(header, row)), f"{path} line {line}"
    except csv.Error as error:
        raise BertkitError(f"{path} line {rows.line_num}: {error}; fix the quoting") from None


def _read_jsonl(path: Path, text: str, fmt: str) -> Table:
    table = _collect(path, iter_jsonl(path, text.splitlines()))
    table.columns = _columns_of(table.records)
    return table


def iter_jsonl(path: Path, lines: Iterable[str]) -> Iterator[tuple[dict, str]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, parse_constant=reject_constant)
        except ValueError as error:
            raise BertkitError(f"{path} line {number}: not valid JSON ({json_problem(error)}); fix the line") from None
        if not isinstance(record, dict):
            raise BertkitError(f"{path} line {number}: expected a JSON object, found {type(record).__name__}")
        yield record, f"{path} line {number}"


def reject_constant(name: str):
    """Python's json reads NaN and Infinity; RFC 8259 has neither, so a file holding them is not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def json_problem(error: ValueError) -> str:
    return error.msg if isinstance(error, json.JSONDecodeError) else str(error)


def _read_json(path: Path, text: str, fmt: str) -> Table:
    try:
        data = json.loads(text, parse_constant=reject_constant)
    except ValueError as error:
        where = f"line {error.lineno}" if isinstance(error, json.JSONDecodeError) else "a value"
        raise BertkitError(f"{path} {where}: not valid JSON ({json_problem(error)}); fix the file") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list) and all(isinstance(r, dict) for r in data["data"]):
        data = data["data"]
    if not isinstance(data, list):
        raise BertkitError(f'{path}: expected a JSON list of records (or {{"data": [...]}})')
    table = Table(path)
    for number, record in enumerate(data, start=1):
        if not isinstance(record, dict):
            raise BertkitError(f"{path} record {number}: expected a JSON object, found {type(record).__name__}")
        table.records.append(record)
        table.where.append(f"{path} record {number}")
    table.columns = _columns_of(table.records)
    return table


def _read_txt(path: Path, text: str, fmt: str) -> Table:
    table = _collect(path, iter_txt(path, text.splitlines()))
    table.columns = ["text"] + (["text_pair"] if any("text_pair" in record for record in table.records) else [])
    return table


def iter_txt(path: Path, lines: Iterable[str]) -> Iterator[tuple[dict, str]]:
    # One input per line; a tab separates the two texts of a pair (for NLI).
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        first, tab, second = line.partition("\t")
        yield ({"text": first, "text_pair": second} if tab else {"text": first}), f"{path} line {number}"


def _collect(path: Path, records: Iterable[tuple[dict, str]]) -> Table:
    table = Table(path)
    for record, where in records:
        table.records.append(record)
        table.where.append(where)
    return table


def file_lines(path: Path | str, physical: bool = False) -> Iterator[str]:
    """The lines of a file as `str.splitlines` gives them (`physical`: as split at "\\n" only, ends kept, for
    csv), read a line at a time so a file larger than memory works, with `read_text`'s one-line errors."""
    path = Path(path)
    if not path.exists():
        raise BertkitError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise BertkitError(f"{path}: is a directory; pass a file")
    if path.stat().st_size == 0:
        raise BertkitError(f"{path}: file is empty; give a file with data")
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise BertkitError(
                    f"{path} line {number}: not valid UTF-8 (byte {error.start} of the line); re-save the file as UTF-8"
                ) from None
            if physical:
                yield line
            else:
                yield from line.splitlines() or [""]


def _columns_of(records: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records[:1000]:
        seen.update(dict.fromkeys(record))
    return list(seen)


def pick_column(
    table: Table, chosen: str | None, candidates: tuple[str, ...], role: str, option: str, required: bool = True
) -> str | None:
    """The column that plays `role`: the one the user chose, or the single usual name present."""
    if chosen:
        if chosen not in table.columns:
            raise BertkitError(
                f"{table.path}: no column '{chosen}' (columns: {', '.join(table.columns)}); fix {option}"
            )
        return chosen
    found = [name for name in candidates if name in table.columns]
    if len(found) > 1:
        raise BertkitError(
            f"{table.path}: several columns could be the {role} ({', '.join(found)}); choose one with {option}"
        )
    if found:
        return found[0]
    if required:
        raise BertkitError(
            f"{table.path}: no {role} column found (columns: {', '.join(table.columns)}); name it with {option}"
        )
    return None
