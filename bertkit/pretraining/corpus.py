"""Reading a pretraining corpus: files, globs and directories -> documents -> sentences.

Layouts (``--document-per-line`` / ``--document-per-file``; default: blocks):
- blocks: documents are separated by blank lines (BERT's layout); each line holds text
- lines: every non-empty line is one document
- files: every file is one document

Every line is split into sentences by `split_sentences` (so a paragraph written on one line
is split too). Files are read line by line, so the corpus never has to fit in memory.

jsonl, json, parquet and arrow files and saved datasets hold one document per record instead
(``--text-column``); see ``bertkit/pretraining/records.py``.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from pathlib import Path

from bertkit.data.datasets_io import is_saved_dataset
from bertkit.errors import BertkitError
from bertkit.pretraining.records import is_record_corpus, record_blocks

# Words that end with a period yet rarely end a sentence.
ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "jr",
    "sr",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "cf",
    "no",
    "nos",
    "fig",
    "mt",
    "capt",
    "col",
    "gen",
    "lt",
    "rev",
    "sgt",
    "hon",
    "gov",
    "sen",
    "rep",
    "messrs",
    "mme",
    "mlle",
    "ave",
    "co",
    "corp",
    "inc",
    "ltd",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "vol",
    "ch",
    "p",
    "pp",
    "al",
    "approx",
    "dept",
    "est",
    "u.s",
    "u.k",
}
# End punctuation (with closing quotes/brackets), whitespace, then what a new sentence starts with.
BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]*[A-Z0-9])")


def split_sentences(line: str) -> list[str]:
    """Split one line of text into sentences.

    The rule: a sentence ends at `.`, `!` or `?` (with any closing quotes or brackets) that is
    followed by whitespace and then an upper-case letter or a digit (after any opening quote),
    unless the period ends a known abbreviation (Mr., Dr., e.g., ...) or a single-letter
    initial (J. Smith). Lower-case text after a period stays in the same sentence.
    """
    sentences, start = [], 0
    for match in BOUNDARY.finditer(line):
        before = line[start : match.start() + 1]
        word = before.rsplit(None, 1)[-1].rstrip(".").lower().lstrip("\"'(\u201c\u2018[")
        if line[match.start()] == "." and (word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
            continue
        sentences.append(line[start : match.end()].strip())
        start = match.end()
    rest = line[start:].strip()
    if rest:
        sentences.append(rest)
    return [s for s in sentences if s]


def resolve_corpus(items: list) -> list[Path]:
    """Files named directly, by a glob, or as a directory (every non-hidden file inside), in order."""
    files: list[Path] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if is_saved_dataset(path):  # a save_to_disk directory is one corpus, not a folder of files
            files.append(path)
        elif path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise BertkitError(f"{path}: directory holds no files; put the corpus text files in it")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif any(ch in text for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matched:
                raise BertkitError(f"{text}: no files match this pattern; check the corpus path")
            files.extend(matched)
        else:
            raise BertkitError(f"{path}: file not found; check the corpus path")
    unique = list(dict.fromkeys(files))
    return unique


def read_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file (without line ends), with a clear error naming a bad line."""
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BertkitError(f"{path} line {number}: not valid UTF-8; re-save the file as UTF-8") from None
            yield text.lstrip("\ufeff") if number == 1 else text


def iter_blocks(files: list[Path], layout: str) -> Iterator[list[str]]:
    """Documents as lists of their non-empty lines (`layout`: blocks, lines or files)."""
    for path in files:
        if is_record_corpus(path):
            yield from record_blocks(path, layout, getattr(layout, "text_column", "text"))
            continue
        block: list[str] = []
        for line in read_lines(path):
            line = line.strip()
            if layout == "lines":
                if line:
                    yield [line]
            elif line:
                block.append(line)
            elif layout == "blocks" and block:
                yield block
                block = []
        if block:
            yield block


def iter_documents(files: list[Path], layout: str) -> Iterator[list[str]]:
    """Documents as lists of sentences."""
    for block in iter_blocks(files, layout):
        yield [sentence for line in block for sentence in split_sentences(line)]


def count_documents(files: list[Path], layout: str) -> int:
    count = sum(1 for _ in iter_blocks(files, layout))
    if count == 0:
        raise BertkitError(f"{files[0] if len(files) == 1 else 'the corpus'}: holds no text; give files with text")
    return count


def layout_of(settings) -> str:
    if settings.document_per_line:
        layout = "lines"
    else:
        layout = "files" if settings.document_per_file else "blocks"
    return Layout(layout, getattr(settings, "text_column", "text"))


class Layout(str):
    """A layout name that also carries --text-column to the record readers (and into the cache fingerprint,
    through repr, when it is not the default)."""

    def __new__(cls, layout: str, text_column: str = "text"):
        made = super().__new__(cls, layout)
        made.text_column = text_column
        return made

    def __repr__(self) -> str:
        plain = str.__repr__(self)
        return plain if self.text_column == "text" else f"{plain}+text_column={self.text_column!r}"
