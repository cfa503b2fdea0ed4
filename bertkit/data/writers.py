"""Writers for predictions and metrics. Files appear whole or not at all (temp file, then rename)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from bertkit.errors import BertkitError

OUTPUT_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".json": "json", ".conll": "conll"}


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[TextIO]:
    """Open `path` for writing text; it only takes its name once everything was written ('-' is stdout)."""
    if str(path) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(path)
    if path.is_dir():
        raise BertkitError(f"{path}: is a directory; give a file name for the output")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.filename is None:  # e.g. a full disk: name the file it hit
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def write_json(path: Path | str, data: Any) -> None:
    with atomic_output(path) as stream:
        json.dump(data, stream, indent=2, ensure_ascii=False)
        stream.write("\n")


def records_format(path: Path | str) -> str:
    """The format predictions go to at `path`; call it before the work, so a bad name fails at once."""
    suffix = Path(str(path)).suffix.lower()
    # No extension (or stdout) means jsonl; an extension we do not write is a mistake, not a silent jsonl.
    fmt = OUTPUT_FORMATS.get(suffix, suffix) if suffix else "jsonl"
    if fmt not in ("jsonl", "csv", "tsv", "conll"):
        raise BertkitError(f"{path}: cannot write '{fmt}' files; use .jsonl, .csv, .tsv or .conll")
    return fmt


def write_records(path: Path | str, records: Iterable[dict], fmt: str | None = None) -> int:
    """Write prediction records as jsonl (default), csv, tsv or conll; nested values become JSON strings in csv/tsv."""
    fmt = fmt or records_format(path)
    count = 0
    with atomic_output(path) as stream:
        if fmt == "conll":
            return write_conll(stream, records, path)
        if fmt == "jsonl":
            for record in records:
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
            return count
        writer = None
        for record in records:
            flat = {
                key: json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
                for key, value in record.items()
            }
            if writer is None:
                writer = csv.DictWriter(
                    stream,
                    fieldnames=list(flat),
                    delimiter="\t" if fmt == "tsv" else ",",
                    lineterminator="\n",
                    extrasaction="ignore",
                )
                writer.writeheader()
            writer.writerow(flat)
            count += 1
    return count


def write_conll(stream: TextIO, records: Iterable[dict], path: Path | str) -> int:
    """word<TAB>tag per line and a blank line after each record; records need `tokens` and `tags` lists."""
    count = 0
    for record in records:
        if not isinstance(record.get("tokens"), list) or not isinstance(record.get("tags"), list):
            raise BertkitError(f"{path}: .conll output needs per-word tags (a tagging model); use .jsonl, .csv or .tsv")
        stream.writelines(f"{token}\t{tag}\n" for token, tag in zip(record["tokens"], record["tags"]))
        stream.write("\n")
        count += 1
    return count
