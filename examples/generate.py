"""Write the small data sets in examples/ (seeded, so the files are reproducible).

    python examples/generate.py

Everything here is made up from the word lists below: short product and film reviews for
sentiment classification, sentence pairs for NLI, a small corpus of short "documents"
(blank-line separated, one sentence per line) for pretraining and tokenizer training,
sentences with person/place/organisation names tagged in BIO style (word<TAB>tag) for tagging,
and short biographies with questions whose answers are spans of them, for extractive QA (jsonl,
SQuAD v1.1 json, and SQuAD v2.0 json with unanswerable questions).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from qa_data import write_qa

HERE = Path(__file__).parent

SUBJECTS = [
    "the film",
    "the movie",
    "this book",
    "the soundtrack",
    "the acting",
    "the plot",
    "the ending",
    "the camera",
    "this phone",
    "the hotel",
    "the service",
    "the meal",
    "the coffee",
    "the game",
    "the story",
    "the dialogue",
    "the sequel",
    "the battery",
    "the screen",
    "the staff",
]
POSITIVE = [
    "wonderful",
    "brilliant",
    "delightful",
    "excellent",
    "superb",
    "charming",
    "moving",
    "great",
    "fantastic",
    "lovely",
    "gripping",
    "stunning",
    "enjoyable",
    "memorable",
    "clever",
]
NEGATIVE = [
    "terrible",
    "boring",
    "awful",
    "dreadful",
    "dull",
    "clumsy",
    "tedious",
    "poor",
    "bland",
    "disappointing",
    "messy",
    "annoying",
    "weak",
    "forgettable",
    "lifeless",
]
INTENSIFIERS = ["", "", "really ", "truly ", "quite ", "absolutely ", "rather ", "very "]
TAILS = [
    "",
    "",
    ".",
    " from start to finish.",
    " in every way.",
    ", as everyone said.",
    " for the price.",
    " this time.",
    " and i would say so again.",
    " overall.",
]
OPENERS = ["", "", "honestly, ", "in short, ", "i think ", "we felt ", "my friends said ", "to be fair, "]

PEOPLE = [
    "a man",
    "a woman",
    "a boy",
    "a girl",
    "the chef",
    "the teacher",
    "an old man",
    "a young woman",
    "the doctor",
    "a child",
    "the pilot",
    "a farmer",
]
ACTIONS = [
    ("is playing", "a guitar"),
    ("is cooking", "pasta"),
    ("is reading", "a newspaper"),
    ("is riding", "a bicycle"),
    ("is painting", "a fence"),
    ("is cutting", "an onion"),
    ("is washing", "a car"),
    ("is eating", "an apple"),
    ("is writing", "a letter"),
    ("is throwing", "a ball"),
    ("is carrying", "a box"),
    ("is feeding", "a dog"),
]
PLACES = ["", "", " in the park", " at home", " on the street", " in the kitchen", " near the river"]

TOPICS = {
    "garden": [
        "the garden was green after the rain",
        "tomatoes grew along the south wall",
        "a robin watched the gardener dig",
        "the roses needed water every evening",
        "weeds came back faster than anyone expected",
        "the old gate creaked in the wind",
    ],
    "harbour": [
        "fishing boats left the harbour before dawn",
        "the nets were heavy with silver fish",
        "gulls followed the boats back to the quay",
        "the harbour master counted every boat",
        "a storm kept the fleet at home for three days",
        "the lighthouse turned all night",
    ],
    "school": [
        "the children ran into the classroom",
        "the teacher wrote a question on the board",
        "nobody knew the answer at first",
        "a girl at the back raised her hand",
        "the bell rang before the lesson ended",
        "homework was due on friday",
    ],
    "kitchen": [
        "the soup simmered on the stove",
        "the cook chopped onions and carrots",
        "bread was rising in a warm bowl",
        "the smell of garlic filled the house",
        "everyone waited for dinner at the long table",
        "the pie cooled on the window sill",
    ],
    "mountain": [
        "the climbers set out before sunrise",
        "snow covered the upper slopes",
        "the path grew steep and narrow",
        "they rested beside a frozen lake",
        "clouds hid the summit for an hour",
        "the descent took longer than the climb",
    ],
    "market": [
        "the market opened at seven",
        "farmers sold apples and cheese",
        "a baker shouted his prices",
        "children bought sweets with their coins",
        "the square was crowded by noon",
        "the stalls closed when the rain began",
    ],
}


def review(rng: random.Random, positive: bool) -> str:
    words = POSITIVE if positive else NEGATIVE
    text = f"{rng.choice(OPENERS)}{rng.choice(SUBJECTS)} was {rng.choice(INTENSIFIERS)}{rng.choice(words)}"
    if rng.random() < 0.4:
        text += f" and {rng.choice(words)}"
    return (text + rng.choice(TAILS)).strip()


def nli_pair(rng: random.Random) -> tuple[str, str, str]:
    person, (verb, thing), place = rng.choice(PEOPLE), rng.choice(ACTIONS), rng.choice(PLACES)
    premise = f"{person} {verb} {thing}{place}"
    label = rng.choice(["entailment", "neutral", "contradiction"])
    if label == "entailment":
        hypothesis = f"{person} {verb} {thing}"
    elif label == "contradiction":
        hypothesis = f"{person} {verb.replace('is ', 'is not ')} {thing}"
    else:
        other_verb, other_thing = rng.choice([a for a in ACTIONS if a[0] != verb])
        hypothesis = f"{person} {other_verb} {other_thing}"
    return premise, hypothesis, label


def write_tsv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(header)
        writer.writerows(rows)


def corpus(rng: random.Random, documents: int) -> str:
    blocks = []
    for _ in range(documents):
        topic = rng.choice(list(TOPICS))
        sentences = TOPICS[topic][:]
        rng.shuffle(sentences)
        lines = [s[0].upper() + s[1:] + "." for s in sentences[: rng.randint(3, 6)]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


PERSONS = [
    "Anna Berg",
    "Tom",
    "Maria Lopez",
    "Ken Sato",
    "Olga",
    "Peter van Dam",
    "Lucy Moss",
    "Ivan Petrov",
    "Sara",
    "Jonas Holm",
    "Amir Khan",
    "Nora Wells",
]
PLACES_NAMED = [
    "Paris",
    "Oslo",
    "New Harbor",
    "Lima",
    "Kyoto",
    "Cape Town",
    "Berlin",
    "Port Elias",
    "Quebec",
    "Dublin",
    "San Miro",
    "Tallinn",
]
ORGANISATIONS = [
    "Acme Corp",
    "Northwind",
    "Blue Fox Bank",
    "Globex",
    "Initech Labs",
    "Umbra Studios",
    "Helios Energy",
    "Red Cross Society",
    "Vantor",
    "Pinewood Press",
]
TAG_TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "yesterday {PER} flew to {LOC} .",
    "{ORG} opened a new office in {LOC} .",
    "{PER} met {PER} at a party near {LOC} .",
    "the weather in {LOC} was cold and wet .",
    "{PER} said that {ORG} will hire more people .",
    "after the match , {PER} went home to {LOC} .",
    "{ORG} and {ORG} signed a deal on friday .",
    "nobody in {LOC} had heard of {ORG} before .",
    "we visited {LOC} with {PER} last summer .",
]
TAG_NAMES = {"PER": PERSONS, "LOC": PLACES_NAMED, "ORG": ORGANISATIONS}


def tagged_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """One sentence as (word, BIO tag) pairs: names from the lists above, tagged B-TYPE then I-TYPE."""
    pairs = []
    for word in rng.choice(TAG_TEMPLATES).split():
        if word.startswith("{"):
            kind = word[1:-1]
            name = rng.choice(TAG_NAMES[kind]).split()
            pairs.extend((part, ("B-" if i == 0 else "I-") + kind) for i, part in enumerate(name))
        else:
            pairs.append((word, "O"))
    return pairs


def write_tagging(rng: random.Random, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for name, count in (("train", 400), ("dev", 100)):
        blocks = ("".join(f"{word}\t{tag}\n" for word, tag in tagged_sentence(rng)) for _ in range(count))
        (folder / f"{name}.conll").write_text("\n".join(blocks), encoding="utf-8")
    lines = (
        " ".join(word for word, _ in tagged_sentence(rng)).replace(" .", ".").replace(" ,", ",") for _ in range(20)
    )
    (folder / "sentences.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def scored_review(rng: random.Random) -> tuple[str, float]:
    """Three judgements, each positive or negative; the score (0-3) counts the positive ones."""
    positives = [rng.random() < 0.5 for _ in range(3)]
    subjects = rng.sample(SUBJECTS, 3)
    parts = [
        f"{subject} was {rng.choice(POSITIVE if good else NEGATIVE)}" for subject, good in zip(subjects, positives)
    ]
    return f"{parts[0]}, {parts[1]} and {parts[2]}", float(sum(positives))


def topic_text(rng: random.Random) -> tuple[str, list[str]]:
    """One sentence from each of one to three topics; the labels are those topics."""
    topics = sorted(rng.sample(list(TOPICS), rng.choice([1, 1, 2, 2, 3])))
    sentences = [rng.choice(TOPICS[topic]) for topic in topics]
    rng.shuffle(sentences)
    return " and ".join(sentences), topics


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_regression_and_multilabel(rng: random.Random) -> None:
    """Regression (a review's score 0-3) and multi-label topics (labels joined by ','), as csv."""
    for task, make, header in (
        ("regression", scored_review, ["text", "score"]),
        ("multilabel", topic_text, ["text", "labels"]),
    ):
        folder = HERE / task
        folder.mkdir(exist_ok=True)
        for name, count in (("train", 400), ("dev", 100)):
            rows = [make(rng) for _ in range(count)]
            write_csv(
                folder / f"{name}.csv",
                header,
                [(text, ",".join(label) if isinstance(label, list) else label) for text, label in rows],
            )


def main() -> None:
    rng = random.Random(1234)
    sentiment = HERE / "sentiment"
    sentiment.mkdir(exist_ok=True)
    for name, count in (("train", 400), ("dev", 100), ("test", 100)):
        rows = []
        for _ in range(count):
            positive = rng.random() < 0.5
            rows.append((review(rng, positive), "pos" if positive else "neg"))
        write_tsv(sentiment / f"{name}.tsv", ["text", "label"], rows)
    (sentiment / "inputs.txt").write_text(
        "\n".join(review(rng, rng.random() < 0.5) for _ in range(20)) + "\n", encoding="utf-8"
    )
    nli = HERE / "nli"
    nli.mkdir(exist_ok=True)
    for name, count in (("train", 600), ("dev", 150)):
        write_tsv(nli / f"{name}.tsv", ["premise", "hypothesis", "label"], [nli_pair(rng) for _ in range(count)])
    (HERE / "corpus").mkdir(exist_ok=True)
    (HERE / "corpus" / "stories.txt").write_text(corpus(rng, 300), encoding="utf-8")
    # A generator of its own, so adding data sets never changes the files above.
    write_tagging(random.Random(2024), HERE / "tagging")
    write_qa(HERE / "qa")
    write_regression_and_multilabel(random.Random(77))


if __name__ == "__main__":
    main()
