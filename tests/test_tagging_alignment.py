"""Word/piece alignment and windows: every word keeps its tag, however many pieces or windows it takes."""

from __future__ import annotations

import numpy as np
import pytest

from bertkit.data.conll import TaggedSentence
from bertkit.tasks.tagging import TAGGING, TaggingOptions, continuation_ids
from bertkit.tasks.wordpieces import plan_windows, word_pieces

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
LABEL2ID = {label: i for i, label in enumerate(LABELS)}


def Settings(stride: int = 4, label_all_tokens: bool = False) -> TaggingOptions:
    return TaggingOptions(stride=stride, label_all_tokens=label_all_tokens)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_words_split_into_many_pieces_and_words_with_no_piece(tokenizer):
    words = ["Paris", "Xqzwvkjhpt", "\ufe0f", "."]  # a made-up word, and a character the tokenizer drops
    (pieces,) = word_pieces(tokenizer, [words], max_pieces=100)
    assert len(pieces) == 4 and len(pieces[1]) >= 3
    assert pieces[2] == [tokenizer.unk_token_id]
    (capped,) = word_pieces(tokenizer, [words], max_pieces=2)
    assert len(capped[1]) == 2


def test_labels_on_first_pieces_only_or_on_all_pieces(tokenizer):
    sentence = TaggedSentence(["Xqzwvkjhpt", "lives", "in", "Oslo"], ["B-PER", "O", "O", "B-LOC"], "t line 1")
    (feature,), _ = TAGGING.encode([sentence], tokenizer, 64, LABEL2ID, Settings())
    count = len(word_pieces(tokenizer, [sentence.tokens], 100)[0][0])
    labels = feature["labels"]
    assert len(labels) == len(feature["input_ids"])
    assert labels[0] == -100 and labels[-1] == -100  # [CLS], [SEP]
    assert labels[1 : 1 + count] == [LABEL2ID["B-PER"]] + [-100] * (count - 1)
    assert [labels[p] for p in feature["_positions"]] == [LABEL2ID[t] for t in sentence.tags]
    (every,), _ = TAGGING.encode([sentence], tokenizer, 64, LABEL2ID, Settings(label_all_tokens=True))
    assert every["labels"][1 : 1 + count] == [LABEL2ID["B-PER"]] + [LABEL2ID["I-PER"]] * (count - 1)
    assert continuation_ids({"O": 0, "B-X": 1, "B-Y": 2, "I-X": 3}) == [0, 3, 2, 3]  # no I-Y: B-Y stays


@pytest.mark.parametrize("seed", range(20))
def test_windows_cover_every_word_once_and_respect_capacity_and_stride(seed):
    rng = np.random.default_rng(seed)
    counts = list(rng.integers(1, 6, size=int(rng.integers(1, 60))))
    capacity, stride = int(rng.integers(8, 20)), int(rng.integers(0, 4))
    windows = plan_windows(counts, capacity, stride)
    owners = sorted(word for window in windows for word in window.owned)
    assert owners == list(range(len(counts)))
    assert windows[0].start == 0 and windows[-1].end == len(counts)
    for window, following in zip(windows, windows[1:]):
        assert sum(counts[window.start : window.end]) <= capacity
        assert window.start < following.start <= window.end  # no gap, always moving on
        assert sum(counts[following.start : window.end]) <= stride


def test_a_word_is_owned_where_it_has_the_most_context():
    windows = plan_windows([1] * 10, capacity=6, stride=3)
    assert [(w.start, w.end) for w in windows] == [(0, 6), (3, 9), (6, 10)]
    # word 5 has no piece after it in window 0, but 2 before and 3 after it in window 1
    assert 5 in windows[1].owned and 5 not in windows[0].owned
    assert 4 in windows[0].owned  # min(4 before, 1 after) ties with min(1, 4): the earlier window wins
    assert [w.owned for w in windows] == [(0, 1, 2, 3, 4), (5, 6, 7), (8, 9)]


def test_long_sentence_predictions_come_back_for_every_word(tokenizer):
    """A sentence ten times the window: decoding maps each window's first pieces back to the right words."""
    words = ("the Xqzwvkjhpt harbour master counted every boat in Oslo before dawn".split()) * 10
    sentence = TaggedSentence(words, None, "t line 1")
    features, truncated = TAGGING.encode([sentence], tokenizer, 16, None, Settings(stride=4))
    assert truncated == 0 and len(features) > 10 and all(len(f["input_ids"]) <= 16 for f in features)

    def fake_model_outputs():  # a "model" whose tag is a function of the piece id it reads
        for number, feature in enumerate(features):
            ids = np.array(feature["input_ids"])
            yield number, {"logits": np.eye(len(LABELS))[ids % len(LABELS)] * 5.0}

    (prediction,) = TAGGING.decode([sentence], features, fake_model_outputs(), LABELS, Settings())
    first_pieces = [pieces[0] for pieces in word_pieces(tokenizer, [words], 14)[0]]
    assert prediction["tags"] == [LABELS[piece % len(LABELS)] for piece in first_pieces]
    assert all(0.9 < p <= 1.0 for p in prediction["probabilities"])


def test_label_all_tokens_cannot_inflate_word_level_scores(tokenizer):
    """Other tools score every labelled piece under --label-all-tokens, so the easy continuation pieces
    of long words raise their numbers; here a word counts once, read from its first piece."""
    sentence = TaggedSentence(["Xqzwvkjhpt", "went", "home"], ["B-PER", "O", "O"], "t line 1")
    (feature,), _ = TAGGING.encode([sentence], tokenizer, 64, LABEL2ID, Settings(label_all_tokens=True))
    labels = np.array(feature["labels"])
    predicted_ids = np.where(labels >= 0, labels, 0)
    predicted_ids[feature["_positions"][0]] = LABEL2ID["O"]  # the first piece of the name is wrong, the rest right
    logits = np.eye(len(LABELS))[predicted_ids] * 5.0
    (prediction,) = TAGGING.decode([sentence], [feature], [(0, {"logits": logits})], LABELS, Settings())
    metrics = TAGGING.metrics([sentence], [prediction], LABELS)
    assert prediction["tags"] == ["O", "O", "O"]
    assert metrics["token_accuracy"] == pytest.approx(2 / 3) and metrics["entity_f1"] == 0.0
    scored = labels >= 0
    piece_accuracy = float((predicted_ids[scored] == labels[scored]).mean())
    assert piece_accuracy > metrics["token_accuracy"]  # what piece-level scoring would have reported
