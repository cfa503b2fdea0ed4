"""Readers for extractive QA: SQuAD json (v1.1 and v2.0) and jsonl.

SQuAD json is ``{"data": [{"paragraphs": [{"context": ..., "qas": [{"id", "question", "answers":
[{"text", "answer_start"}], "is_impossible"?}]}]}]}``. A jsonl file holds one question per line:
``{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}`` (the
Hugging Face ``datasets`` layout; a list of ``{"text", "answer_start"}`` objects works too).
An answer must be found at its ``answer_start`` in its passage, or the record is an error
naming the question id (``skip_bad=True`` drops such questions and counts them instead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bertkit.data.readers import file_format, read_table, read_text
from bertkit.errors import BertkitError


@dataclass
class Answer:
    text: str
    start: int  # character offset into the passage

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[Answer] = field(default_factory=list)
    impossible: bool = False  # SQuAD v2.0: no answer in the passage
    where: str = ""


@dataclass
class QAFile:
    examples: list[QAExample]
    skipped: int = 0  # questions dropped for a bad answer (with skip_bad)
    version_2: bool = False  # the file marks unanswerable questions (is_impossible / empty answers)


def read_qa(path: Path | str, labelled: bool, skip_bad: bool = False) -> QAFile:
    """Read a SQuAD json or jsonl file; `labelled` requires (and checks) the answers."""
    if file_format(path) == "json" and _is_squad(path):
        raw = _squad_records(path)
    else:
        table = read_table(path, "jsonl" if file_format(path) != "json" else "json")
        raw = list(zip(table.records, table.where))
    result = QAFile(examples=[])
    seen: set[str] = set()
    for record, where in raw:
        try:
            example = _example(record, where, labelled)
        except BadAnswer as bad:
            if not skip_bad:
                raise BertkitError(f"{bad}; fix it or pass --skip-bad-examples to skip such questions") from None
            result.skipped += 1
            continue
        if example.id in seen:
            raise BertkitError(f"{where}: question id '{example.id}' appears twice; ids must be unique")
        seen.add(example.id)
        result.version_2 |= example.impossible or "is_impossible" in record
        result.examples.append(example)
    if not result.examples:
        raise BertkitError(f"{path}: no usable questions ({result.skipped} skipped for bad answers)")
    return result


class BadAnswer(Exception):
    """An answer that is not where it says it is (turned into BertkitError or counted)."""


def _is_squad(path: Path | str) -> bool:
    text = read_text(path)
    return text.lstrip().startswith("{") and '"paragraphs"' in text


def _squad_records(path: Path | str) -> list[tuple[dict, str]]:
    """Flatten SQuAD json into one record per question, each with its passage."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise BertkitError(f"{path} line {error.lineno}: not valid JSON ({error.msg}); fix the file") from None
    records = []
    for a, article in enumerate(_list(data, "data", f"{path}"), start=1):
        for p, paragraph in enumerate(_list(article, "paragraphs", f"{path} article {a}"), start=1):
            where = f"{path} article {a} paragraph {p}"
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str):
                raise BertkitError(f"{where}: no 'context' text; every paragraph needs its passage")
            for q, qa in enumerate(_list(paragraph, "qas", where), start=1):
                if not isinstance(qa, dict):
                    raise BertkitError(f"{where} question {q}: expected a JSON object")
                records.append(({**qa, "context": context}, f"{where} question {q}"))
    return records


def _list(container, key: str, where: str) -> list:
    value = container.get(key) if isinstance(container, dict) else None
    if not isinstance(value, list):
        raise BertkitError(f"{where}: expected a list under '{key}' (SQuAD json layout)")
    return value


def _example(record: dict, where: str, labelled: bool) -> QAExample:
    for key in ("question", "context"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise BertkitError(f"{where}: no '{key}' text; every record needs 'id', 'question' and 'context'")
    qid = str(record.get("id", "")).strip()
    if not qid:
        raise BertkitError(f"{where}: no 'id'; every question needs a unique id")
    where = f"{where} (id {qid})"
    example = QAExample(qid, record["question"], record["context"], where=where)
    if not labelled:
        return example
    if "answers" not in record:
        raise BertkitError(f"{where}: no 'answers'; training and evaluation files need them")
    example.answers = _answers(record["answers"], where)
    for answer in example.answers:
        if example.context[answer.start : answer.end] != answer.text:
            raise BadAnswer(f"{where}: answer '{answer.text}' is not at character {answer.start} of its passage")
    example.impossible = bool(record.get("is_impossible", False)) or not example.answers
    if example.impossible:
        example.answers = []
    return example


def _answers(value, where: str) -> list[Answer]:
    """Answers from SQuAD's list of objects or the datasets layout of two parallel lists."""
    if isinstance(value, dict):
        texts, starts = value.get("text"), value.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise BertkitError(f"{where}: 'answers' needs 'text' and 'answer_start' lists of equal length")
        pairs = list(zip(texts, starts))
    elif isinstance(value, list):
        if not all(isinstance(item, dict) and "text" in item and "answer_start" in item for item in value):
            raise BertkitError(f"{where}: each answer needs 'text' and 'answer_start'")
        pairs = [(item["text"], item["answer_start"]) for item in value]
    else:
        raise BertkitError(
            f"{where}: 'answers' must be a list of {{text, answer_start}} or {{text: [...], answer_start: [...]}}"
        )
    answers = []
    for text, start in pairs:
        if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise BertkitError(
                f"{where}: answer {text!r} at {start!r}: give text and a non-negative integer answer_start"
            )
        answers.append(Answer(text, start))
    return answers
