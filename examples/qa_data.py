"""The extractive-QA examples of examples/generate.py: short made-up biographies, questions whose answers are
spans of them, and (for SQuAD v2.0) questions they cannot answer."""

from __future__ import annotations

import json
import random
from pathlib import Path

NAMES = [
    ("anna", "she"),
    ("tom", "he"),
    ("maria", "she"),
    ("peter", "he"),
    ("lucy", "she"),
    ("omar", "he"),
    ("nina", "she"),
    ("jack", "he"),
    ("sofia", "she"),
    ("ivan", "he"),
    ("clara", "she"),
    ("david", "he"),
]
CITIES = ["paris", "rome", "new york", "oslo", "cairo", "lima", "san francisco", "berlin", "tokyo", "buenos aires"]
JOBS = ["baker", "nurse", "bus driver", "teacher", "lawyer", "fisherman", "software engineer", "painter", "pilot"]
ANIMALS = ["dog", "cat", "parrot", "horse", "rabbit"]
PET_NAMES = ["rex", "milo", "bella", "pepper", "shadow", "biscuit", "luna", "captain"]
COLOURS = ["red", "blue", "green", "yellow", "dark purple", "orange", "light grey"]
# Each fact: (sentence template, question templates, slot that answers it).
FACTS = {
    "city": ("{Name} lives in {city}.", ["Where does {Name} live?", "In which city does {Name} live?"]),
    "job": ("{Pronoun} works as a {job}.", ["What is {Name}'s job?", "What does {Name} do for a living?"]),
    "pet": (
        "{Name} has a {animal} called {pet}.",
        ["What is the name of {Name}'s {animal}?", "What is {Name}'s {animal} called?"],
    ),
    "year": ("{Pronoun} was born in {year}.", ["When was {Name} born?", "In which year was {Name} born?"]),
    "colour": ("{Possessive} favourite colour is {colour}.", ["What is {Name}'s favourite colour?"]),
}
FILLERS = [
    "The weather was mild that spring.",
    "Nobody remembers the old bridge anymore.",
    "The library closes early on sundays.",
    "A new road was built near the river.",
    "Many people visit the market on saturdays.",
]
MISSING = ["What is the name of {Name}'s car?", "Where does {Name}'s brother live?", "When did {Name} get married?"]


def biography(rng: random.Random) -> tuple[str, dict[str, tuple[str, int]], dict[str, str]]:
    """A short passage about one person; returns it, each fact's (answer, start) and the slot values."""
    name, pronoun = rng.choice(NAMES)
    values = {
        "name": name,
        "Name": name.title(),
        "Pronoun": pronoun.title(),
        "Possessive": {"she": "Her", "he": "His"}[pronoun],
        "city": rng.choice(CITIES).title(),
        "job": rng.choice(JOBS),
        "animal": rng.choice(ANIMALS),
        "pet": rng.choice(PET_NAMES).title(),
        "year": str(rng.randint(1940, 2005)),
        "colour": rng.choice(COLOURS),
    }
    facts = rng.sample(list(FACTS), rng.randint(3, 5))
    sentences = [FACTS[fact][0] for fact in facts] + rng.sample(FILLERS, rng.randint(0, 2))
    rng.shuffle(sentences)
    if sentences[0].startswith("{Pronoun}"):  # the name comes before the pronoun that refers to it
        sentences.insert(0, "This is about {Name}.")
    context, answers = "", {}
    for sentence in sentences:
        text = sentence.format(**values)
        fact = next((f for f in facts if FACTS[f][0] == sentence), None)
        if fact is not None:
            answer = values[fact]
            answers[fact] = (answer, len(context) + (1 if context else 0) + text.index(answer))
        context += (" " if context else "") + text
    return context, answers, values


def qa_records(rng: random.Random, passages: int, unanswerable: float = 0.0) -> list[dict]:
    """Questions on generated passages (two or three each); a share asks about something not there."""
    records = []
    for _ in range(passages):
        context, answers, values = biography(rng)
        for fact in rng.sample(list(answers), min(len(answers), rng.randint(2, 3))):
            answer, start = answers[fact]
            question = rng.choice(FACTS[fact][1]).format(**values)
            records.append(
                {
                    "id": f"q{len(records):04d}",
                    "question": question,
                    "context": context,
                    "answers": {"text": [answer], "answer_start": [start]},
                }
            )
        if rng.random() < unanswerable:
            records.append(
                {
                    "id": f"q{len(records):04d}",
                    "question": rng.choice(MISSING).format(**values),
                    "context": context,
                    "answers": {"text": [], "answer_start": []},
                }
            )
    return records


def squad_json(records: list[dict], version: str) -> dict:
    """The records as SQuAD json, one article per passage."""
    by_context: dict[str, list[dict]] = {}
    for record in records:
        qa = {
            "id": record["id"],
            "question": record["question"],
            "answers": [
                {"text": t, "answer_start": s}
                for t, s in zip(record["answers"]["text"], record["answers"]["answer_start"])
            ],
        }
        if version == "v2.0":
            qa["is_impossible"] = not qa["answers"]
        by_context.setdefault(record["context"], []).append(qa)
    data = [
        {"title": f"passage {i}", "paragraphs": [{"context": c, "qas": qas}]}
        for i, (c, qas) in enumerate(by_context.items())
    ]
    return {"version": version, "data": data}


def write_qa(folder: Path) -> None:
    rng = random.Random(2024)  # its own stream: adding QA leaves the other example files unchanged
    folder.mkdir(exist_ok=True)
    lines = [json.dumps(record) for record in qa_records(rng, 300)]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "dev.json").write_text(
        json.dumps(squad_json(qa_records(rng, 60), "1.1"), indent=1) + "\n", encoding="utf-8"
    )
    (folder / "train-v2.json").write_text(
        json.dumps(squad_json(qa_records(rng, 150, 0.5), "v2.0"), indent=1) + "\n", encoding="utf-8"
    )
    (folder / "dev-v2.json").write_text(
        json.dumps(squad_json(qa_records(rng, 40, 0.5), "v2.0"), indent=1) + "\n", encoding="utf-8"
    )
    questions = [{key: r[key] for key in ("id", "question", "context")} for r in qa_records(rng, 8)]
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
