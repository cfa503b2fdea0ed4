"""Word-level tagging metrics: entity spans and scores as seqeval's default mode,
checked by hand and against seqeval."""

from __future__ import annotations

import random

import pytest

from bertkit.metrics.tagging import entity_scores, entity_spans, is_entity_tagset, main_metric_for, tagging_metrics


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        (["O", "I-PER", "I-PER"], [("PER", 1, 3)]),  # IOB1 style: I after O opens an entity
        (["B-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),  # a type change splits
        (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["S-LOC", "B-ORG", "E-ORG", "E-ORG"], [("LOC", 0, 1), ("ORG", 1, 3), ("ORG", 3, 4)]),
        (["B-creative-work", "I-creative-work"], [("creative-work", 0, 2)]),
        (["O", "O"], []),
    ],
)
def test_entity_spans(tags, spans):
    assert entity_spans(tags) == spans


def test_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    # gold: PER(0,0-2) LOC(0,3) ORG(1,0); predicted: PER(0,0-2) ORG(1,0) LOC(1,1): 2 of 3 right each way
    scores = entity_scores(gold, predicted)
    assert scores["entity_precision"] == pytest.approx(2 / 3)
    assert scores["entity_recall"] == pytest.approx(2 / 3)
    assert scores["entity_f1"] == pytest.approx(2 / 3)
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["PER"]["f1"] == 1.0
    metrics = tagging_metrics(gold, predicted, ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"])
    assert metrics["token_accuracy"] == pytest.approx(4 / 6)
    assert set(metrics) == {"token_accuracy", "entity_precision", "entity_recall", "entity_f1", "per_type"}


def test_a_partly_found_entity_scores_nothing():
    scores = entity_scores([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]])
    assert (scores["entity_precision"], scores["entity_recall"], scores["entity_f1"]) == (0.0, 0.0, 0.0)


def test_pos_tags_get_accuracy_and_per_tag_scores_not_entities():
    labels = ["ADJ", "NOUN", "VERB", "X", "-LRB-"]
    assert not is_entity_tagset(labels) and main_metric_for(labels) == "token_accuracy"
    assert is_entity_tagset(["O", "B-LOC", "I-LOC"]) and main_metric_for(["O", "B-LOC"]) == "entity_f1"
    metrics = tagging_metrics([["NOUN", "VERB"], ["ADJ"]], [["NOUN", "NOUN"], ["ADJ"]], labels)
    assert metrics["token_accuracy"] == pytest.approx(2 / 3)
    assert "entity_f1" not in metrics and metrics["per_tag"]["VERB"]["recall"] == 0.0


def test_agrees_with_seqeval_on_random_sequences():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(7)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-PER", "I-MISC"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(300)]
    predicted = [[t if rng.random() < 0.7 else rng.choice(tags) for t in sentence] for sentence in gold]
    ours = entity_scores(gold, predicted)
    assert ours["entity_precision"] == pytest.approx(seqeval.precision_score(gold, predicted))
    assert ours["entity_recall"] == pytest.approx(seqeval.recall_score(gold, predicted))
    assert ours["entity_f1"] == pytest.approx(seqeval.f1_score(gold, predicted))
    report = seqeval.classification_report(gold, predicted, output_dict=True)
    for kind, row in ours["per_type"].items():
        assert row["f1"] == pytest.approx(report[kind]["f1-score"]) and row["support"] == report[kind]["support"]
