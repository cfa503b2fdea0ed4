"""Words -> WordPieces -> model windows, and back: the alignment behind token tagging.

Each word becomes one or more pieces (a word the tokenizer drops entirely, such as a lone
emoji variation selector, becomes the unknown token, so no word ever goes missing). A
sentence whose pieces do not fit in one model input is cut into overlapping windows of
whole words; every word is *owned* by the window where it has the most context on both
sides (the rule BERT used for SQuAD's doc stride), and only there is it scored and trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate


@dataclass(frozen=True)
class Window:
    """Words [start, end) of a sentence, and the words this window owns (scores and trains)."""

    start: int
    end: int
    owned: tuple[int, ...]


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one sequence ([CLS] and [SEP] for BERT)."""
    encoded = tokenizer([["a"]], is_split_into_words=True, add_special_tokens=True)
    ids, word_ids = encoded["input_ids"][0], encoded.word_ids(0)
    first = word_ids.index(0)
    last = len(word_ids) - 1 - word_ids[::-1].index(0)
    return ids[:first], ids[last + 1 :]


def word_pieces(tokenizer, sentences: list[list[str]], max_pieces: int) -> list[list[list[int]]]:
    """Piece ids per word per sentence, in one batched call; at most `max_pieces` per word."""
    if not sentences:
        return []
    encoded = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    unknown = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    result = []
    for number, words in enumerate(sentences):
        pieces: list[list[int]] = [[] for _ in words]
        for piece, word in zip(encoded["input_ids"][number], encoded.word_ids(number)):
            if word is not None:
                pieces[word].append(piece)
        result.append([word[:max_pieces] if word else [unknown] for word in pieces])
    return result


def plan_windows(counts: list[int], capacity: int, stride: int) -> list[Window]:
    """Cut words with `counts` pieces each into windows of at most `capacity` pieces.

    Consecutive windows share as many whole words as fit in `stride` pieces (at least one word
    moves on each time). Each word is owned by the window where min(pieces before it, pieces
    after it) is largest; ties go to the earlier window.
    """
    spans = []
    start = 0
    while True:
        end, used = start, 0
        while end < len(counts) and used + counts[end] <= capacity:
            used += counts[end]
            end += 1
        end = max(end, start + 1)  # a single over-long word still gets a window (its pieces are capped)
        spans.append((start, end))
        if end >= len(counts):
            break
        next_start, overlap = end, 0
        while next_start - 1 > start and overlap + counts[next_start - 1] <= stride:
            next_start -= 1
            overlap += counts[next_start]
        start = next_start
    return _assign_owners(counts, spans)


def _assign_owners(counts: list[int], spans: list[tuple[int, int]]) -> list[Window]:
    if len(spans) == 1:
        return [Window(0, spans[0][1], tuple(range(spans[0][1])))]
    before = [0, *accumulate(counts)]  # pieces before word i: before[i]
    owner = [0] * len(counts)
    best = [-1] * len(counts)
    for number, (start, end) in enumerate(spans):
        for word in range(start, end):
            context = min(before[word] - before[start], before[end] - before[word + 1])
            if context > best[word]:
                best[word], owner[word] = context, number
    return [
        Window(start, end, tuple(word for word in range(start, end) if owner[word] == number))
        for number, (start, end) in enumerate(spans)
    ]
