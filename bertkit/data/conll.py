"""Readers for word-tagged sentences: CoNLL column files, CoNLL-U, jsonl and raw text lines.

    from bertkit.data.conll import read_tagged
    sentences = read_tagged("train.conll", labelled=True)            # word ... tag, blank line between sentences
    sentences = read_tagged("en_ewt-ud-dev.conllu", labelled=True, tag_field="xpos")
    sentences = read_tagged("sentences.txt", labelled=False)         # raw text: words found by WORD_PATTERN

Every sentence remembers the file line of each word, so an error names the exact line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bertkit.data.readers import pick_column, read_table, read_text
from bertkit.errors import BertkitError

# Raw text is split into words this way: a run of letters/digits (with inner hyphens or apostrophes,
# so "state-of-the-art" and "don't" stay whole), or any other single non-space character.
WORD_PATTERN = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]")
CONLLU_FIELDS = {"upos": 3, "xpos": 4, "feats": 5, "deprel": 7}
DOCSTART = "-DOCSTART-"


@dataclass
class TaggedSentence:
    """One sentence: its words, their tags (None when unlabelled) and where each came from."""

    tokens: list[str]
    tags: list[str] | None
    where: str  # "train.conll line 12": the sentence's first line (or its jsonl record)
    lines: list[int] | None = None  # the file line of each word (CoNLL, CoNLL-U)
    text: str | None = None  # raw-text input only: the line the words were found in
    offsets: list[tuple[int, int]] | None = None  # raw-text input only: each word's [start, end) in `text`

    def word_where(self, index: int) -> str:
        """Where word `index` came from, for error messages."""
        if self.lines is not None:
            return f"{self.where.rsplit(' line ', 1)[0]} line {self.lines[index]}"
        return f"{self.where} (word {index + 1})"


def tagged_format(path: Path | str, labelled: bool) -> str:
    """conllu, jsonl (also any dataset source: records of tokens and tags), text (raw lines: .txt and stdin
    when predicting) or conll (everything else)."""
    from bertkit.data.datasets_io import is_dataset_source

    if is_dataset_source(path):
        return "jsonl"
    suffix = Path(str(path)).suffix.lower()
    if suffix == ".conllu":
        return "conllu"
    if suffix == ".jsonl":
        return "jsonl"
    if not labelled and (suffix == ".txt" or str(path) == "-"):
        return "text"
    return "conll"


def read_tagged(
    path: Path | str,
    labelled: bool,
    tag_column: int | None = None,
    tag_field: str = "upos",
    tags_column: str | None = None,
) -> list[TaggedSentence]:
    """Read sentences from a CoNLL, CoNLL-U, jsonl or raw text file (or a dataset source); tags are required
    when `labelled`. `tags_column` names the tags of jsonl/dataset records (default: tags, or ner_tags, ...)."""
    fmt = tagged_format(path, labelled)
    shown = Path("stdin") if str(path) == "-" else Path(str(path))
    if fmt == "jsonl":
        sentences = _read_jsonl(path, labelled, tags_column)
    else:
        text = read_text(path)
        if fmt == "text":
            sentences = _read_raw_text(shown, text)
        else:
            sentences = list(iter_sentences(shown, text.splitlines(), fmt, labelled, tag_column, tag_field))
    if not sentences:
        raise BertkitError(f"{shown}: holds no sentences; give a file with data")
    return sentences


def iter_sentences(
    path: Path, lines: Iterable[str], fmt: str, labelled: bool, tag_column: int | None, tag_field: str
) -> Iterator[TaggedSentence]:
    """The sentences of a CoNLL (`fmt` conll) or CoNLL-U file's lines, one at a time."""
    if fmt == "conllu":
        return _read_conllu(path, lines, labelled, tag_field)
    return _read_conll(path, lines, labelled, tag_column)


def stream_tagged(
    path: Path | str, labelled: bool, tag_column: int | None, tag_field: str, tags_column: str | None, folder: Path
):
    """`read_tagged` as a `StreamedExamples`: the sentences go to an Arrow file in `folder` as they are read."""
    from bertkit.data.readers import file_lines
    from bertkit.data.streaming import StreamedExamples, open_rows

    fmt = tagged_format(path, labelled)
    if fmt == "text" or str(path) == "-":
        return None
    if fmt == "jsonl":
        rows = open_rows(path, folder)
        tags_key = tags_key_of(rows, labelled, tags_column)
        return StreamedExamples(rows, lambda records: [record_sentence(r, where, tags_key) for r, where in records])
    sentences = iter_sentences(Path(str(path)), file_lines(path), fmt, labelled, tag_column, tag_field)
    records = (({"tokens": s.tokens, "tags": s.tags, "lines": s.lines}, s.where) for s in sentences)
    rows = open_rows(path, folder, records, noun="sentences")
    return StreamedExamples(
        rows, lambda records: [TaggedSentence(r["tokens"], r["tags"], where, r["lines"]) for r, where in records]
    )


class _SentenceBuilder:
    """Collects the words of the sentence being read; `flush` at a blank line closes it (and returns it)."""

    def __init__(self, path: Path, labelled: bool):
        self.path, self.labelled = path, labelled
        self.tokens: list[str] = []
        self.tags: list[str] = []
        self.lines: list[int] = []

    def add(self, token: str, tag: str | None, line: int) -> None:
        self.tokens.append(token)
        self.tags.append(tag)
        self.lines.append(line)

    def flush(self) -> list[TaggedSentence]:
        done = (
            [
                TaggedSentence(
                    self.tokens, self.tags if self.labelled else None, f"{self.path} line {self.lines[0]}", self.lines
                )
            ]
            if self.tokens
            else []
        )
        self.tokens, self.tags, self.lines = [], [], []
        return done


def _read_conll(path: Path, lines: Iterable[str], labelled: bool, tag_column: int | None) -> Iterator[TaggedSentence]:
    # Fields are tab-separated when the line holds a tab, else separated by spaces; every word line
    # of a file must have as many fields as its first one.
    builder = _SentenceBuilder(path, labelled)
    width = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            yield from builder.flush()
            continue
        fields = [f.strip(" \r") for f in line.split("\t")] if "\t" in line else line.split()
        if fields[0] == DOCSTART:
            yield from builder.flush()
            continue
        if width is None:
            width = len(fields)
            column = _tag_index(path, number, width, tag_column, labelled)
        elif len(fields) != width:
            raise BertkitError(
                f"{path} line {number}: {len(fields)} fields where the file's first word line has "
                f"{width}; every word line needs the same columns (word first, tag last)"
            )
        if not fields[0]:
            raise BertkitError(f"{path} line {number}: the word (first column) is empty; fill it in or drop the line")
        tag = fields[column] if labelled else None
        if labelled and not tag:
            raise BertkitError(f"{path} line {number}: the tag (column {column + 1}) is missing; fill it in")
        builder.add(fields[0], tag, number)
    yield from builder.flush()


def _tag_index(path: Path, line: int, width: int, tag_column: int | None, labelled: bool) -> int:
    """The 0-based tag field from --tag-column (1-based; default the last column)."""
    if not labelled:
        return 0
    if width < 2:
        raise BertkitError(
            f"{path} line {line}: one field only, but a tag is needed; put the tag after the word (word<TAB>tag)"
        )
    if tag_column is None:
        return width - 1
    if not 2 <= tag_column <= width:
        raise BertkitError(
            f"{path} line {line}: --tag-column is {tag_column} but the lines have {width} fields "
            f"(the word is column 1); give a column from 2 to {width}"
        )
    return tag_column - 1


def _read_conllu(path: Path, lines: Iterable[str], labelled: bool, tag_field: str) -> Iterator[TaggedSentence]:
    # Multi-word token lines ("3-4") and empty nodes ("5.1") carry no tagged word of their own.
    builder = _SentenceBuilder(path, labelled)
    column = CONLLU_FIELDS[tag_field]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            yield from builder.flush()
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise BertkitError(
                f"{path} line {number}: {len(fields)} tab-separated fields where CoNLL-U has 10; "
                "fix the line (spaces instead of tabs?)"
            )
        if "-" in fields[0] or "." in fields[0]:
            continue
        tag = fields[column] if labelled else None
        # "_" is a real value for FEATS (no features) but means "not annotated" elsewhere.
        if labelled and (not tag or (tag == "_" and tag_field != "feats")):
            raise BertkitError(
                f"{path} line {number}: the {tag_field.upper()} tag is missing ('{tag}'); "
                "annotate it or choose another --tag-field"
            )
        builder.add(fields[1], tag, number)
    yield from builder.flush()


# Tag columns of records as they ship on the hub (conll2003: ner_tags, pos_tags, chunk_tags; UD: upos, xpos).
TAGS_COLUMNS = ("ner_tags", "pos_tags", "chunk_tags", "upos", "xpos")


def _read_jsonl(path: Path | str, labelled: bool, tags_column: str | None = None) -> list[TaggedSentence]:
    table = read_table(path, "jsonl")
    tags_key = tags_key_of(table, labelled, tags_column)
    return [record_sentence(record, where, tags_key) for record, where in zip(table.records, table.where)]


def tags_key_of(table, labelled: bool, tags_column: str | None) -> str | None:
    """The tags column of a table's records (None when unlabelled): --label-column, else "tags", else the one
    usual hub name present (several: the user picks). `table` needs only `path` and `columns`."""
    if not labelled:
        return None
    if tags_column:
        return pick_column(table, tags_column, (), "tags", "--label-column")
    if "tags" in table.columns:
        return "tags"
    return pick_column(table, None, TAGS_COLUMNS, "tags", "--label-column", required=False) or "tags"


def record_sentence(record: dict, where: str, tags_key: str | None) -> TaggedSentence:
    """A sentence from a {"tokens": [...], "tags": [...]} record; tags are read when `tags_key` is given."""
    tokens = _string_list(record, "tokens", where)
    tags = None
    if tags_key is not None:
        tags = _string_list(record, tags_key, where)
        if len(tags) != len(tokens):
            raise BertkitError(f"{where}: {len(tokens)} tokens but {len(tags)} tags; give one tag per token")
    return TaggedSentence(tokens, tags, where)


def _string_list(record: dict, key: str, where: str) -> list[str]:
    value = record.get(key)
    if not isinstance(value, list) or not value:
        raise BertkitError(
            f"{where}: '{key}' must be a non-empty list (a record is "
            '{"tokens": ["Paris", "is", "big"], "tags": ["B-LOC", "O", "O"]})'
        )
    if not all(isinstance(item, (str, int)) and str(item).strip() for item in value):
        raise BertkitError(f"{where}: '{key}' holds an empty or non-text item; give one string per word")
    return [str(item) for item in value]


def _read_raw_text(path: Path, text: str) -> list[TaggedSentence]:
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        words, offsets = split_words(line)
        if words:
            sentences.append(TaggedSentence(words, None, f"{path} line {number}", text=line, offsets=offsets))
    return sentences


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Raw text -> words and their [start, end) character offsets, by WORD_PATTERN."""
    matches = list(WORD_PATTERN.finditer(text))
    return [m.group() for m in matches], [m.span() for m in matches]
