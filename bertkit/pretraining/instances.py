"""Pretraining instances as token ranges over a tokenized split, built the way BERT's data generator does.

A split is a flat token stream with `sentences` (token offset of every sentence start, plus the
end) and `documents` (sentence offset of every document start, plus the end). Because every
piece of an instance is a contiguous run of tokens, an instance is a few integers:

- next-sentence prediction: (a_start, a_end, b_start, b_end, is_random_next) ->
  ``[CLS] A [SEP] B [SEP]`` with segment ids 0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]``
- packed (``--no-nsp``): (start, end) -> ``[CLS] tokens [SEP]``, with a ``[SEP]`` put before every
  document that starts inside the range, so no document boundary is crossed unmarked

The builders are pure functions of their inputs and a seeded `random.Random`.
"""

from __future__ import annotations

import bisect
import random

import numpy as np

from bertkit.errors import BertkitError


def build_nsp_instances(
    sentences: np.ndarray, documents: np.ndarray, max_seq_length: int, short_seq_prob: float, rng: random.Random
) -> np.ndarray:
    """Sentence-pair instances, one document at a time (BERT's create_instances_from_document)."""
    if len(documents) < 3:
        raise BertkitError(
            "next-sentence prediction needs at least 2 documents; separate documents with blank "
            "lines, or pass --document-per-line or --no-nsp"
        )
    max_tokens = max_seq_length - 3
    rows: list[tuple] = []
    for doc in range(len(documents) - 1):
        _document_instances(sentences, documents, doc, max_tokens, short_seq_prob, rng, rows)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 5)


def _random_share_so_far(rows: list[tuple]) -> float:
    return sum(row[4] for row in rows[-1000:]) / min(len(rows), 1000) if rows else 0.5


def _document_instances(
    sentences, documents, doc: int, max_tokens: int, short_seq_prob: float, rng: random.Random, rows: list[tuple]
) -> None:
    first, last = int(documents[doc]), int(documents[doc + 1])
    # Mostly fill to the maximum; sometimes to a random shorter length, so short inputs are seen too.
    target = rng.randint(2, max_tokens) if rng.random() < short_seq_prob else max_tokens
    chunk_start, i, length = first, first, 0
    while i < last:
        length += int(sentences[i + 1] - sentences[i])
        if i < last - 1 and length < target:
            i += 1
            continue
        count = i + 1 - chunk_start
        a_end = chunk_start + (rng.randint(1, count - 1) if count >= 2 else 1)
        a = (int(sentences[chunk_start]), int(sentences[a_end]))
        # BERT forces a random B when the chunk is one sentence, which pushes the random share above one half
        # (to ~59% on short documents); so the coin leans against whichever side is ahead (recent 1000 rows).
        if count == 1 or rng.random() < 0.5 + 4 * (0.5 - _random_share_so_far(rows)):
            b = _random_b(sentences, documents, doc, target - (a[1] - a[0]), rng)
            is_random, next_start = 1, a_end  # the chunk's unused sentences go back for the next instance
        else:
            b = (int(sentences[a_end]), int(sentences[i + 1]))
            is_random, next_start = 0, i + 1
        a, b = truncate_pair(a, b, max_tokens, rng)
        rows.append((*a, *b, is_random))
        chunk_start = i = next_start
        length = 0


def _random_b(sentences, documents, doc: int, target: int, rng: random.Random) -> tuple[int, int]:
    """Consecutive sentences from a random start in a random *other* document, up to `target` tokens."""
    other = rng.randrange(len(documents) - 2)
    other += other >= doc  # skip the document itself
    first, last = int(documents[other]), int(documents[other + 1])
    start = rng.randrange(first, last)
    end = start + 1
    while end < last and sentences[end] - sentences[start] < target:
        end += 1
    return int(sentences[start]), int(sentences[end])


def truncate_pair(a: tuple[int, int], b: tuple[int, int], max_tokens: int, rng: random.Random):
    """Shorten the longer range, one token at a time from its front or back at random, until both fit."""
    (a0, a1), (b0, b1) = a, b
    excess = (a1 - a0) + (b1 - b0) - max_tokens
    if excess <= 0:
        return (a0, a1), (b0, b1)
    # Cut the longer one down to the shorter first, then both in turn (B first on ties, as BERT does).
    gap = min(excess, abs((a1 - a0) - (b1 - b0)))
    cut_a, cut_b = (gap, 0) if (a1 - a0) > (b1 - b0) else (0, gap)
    rest = excess - gap
    cut_a, cut_b = cut_a + rest // 2, cut_b + rest - rest // 2
    front_a, front_b = _coin_flips(cut_a, rng), _coin_flips(cut_b, rng)
    return (a0 + front_a, a1 - (cut_a - front_a)), (b0 + front_b, b1 - (cut_b - front_b))


def _coin_flips(count: int, rng: random.Random) -> int:
    """How many of `count` fair coin flips come up heads."""
    return rng.getrandbits(count).bit_count() if count else 0


def build_packed_instances(sentences: np.ndarray, documents: np.ndarray, max_seq_length: int) -> np.ndarray:
    """Single-segment instances filled to the maximum length, continuing across documents with a [SEP]."""
    starts = [int(x) for x in sentences[documents[1:-1]]]  # token offsets where documents 2.. start
    total, room_per_sequence = int(sentences[-1]), max_seq_length - 2
    rows, start = [], 0
    while start < total:
        end, room = start, room_per_sequence
        while True:
            index = bisect.bisect_right(starts, end)
            boundary = starts[index] if index < len(starts) else total
            take = min(room, boundary - end)
            end, room = end + take, room - take
            if end == total or end < boundary or room < 2:
                break
            room -= 1  # the [SEP] before the next document
        rows.append((start, end))
        start = end
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


def instance_lengths(instances: np.ndarray, sentences: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Each instance's length in tokens, [CLS] and [SEP]s included."""
    if instances.shape[1] == 5:
        return (instances[:, 1] - instances[:, 0] + instances[:, 3] - instances[:, 2] + 3).astype(np.int64)
    boundaries = sentences[documents[1:-1]]
    inside = np.searchsorted(boundaries, instances[:, 1], side="left") - np.searchsorted(
        boundaries, instances[:, 0], side="right"
    )
    return (instances[:, 1] - instances[:, 0] + 2 + inside).astype(np.int64)


def materialize(
    tokens: np.ndarray, instance: np.ndarray, boundaries: np.ndarray, cls_id: int, sep_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """The input ids and segment ids of one instance."""
    if len(instance) == 5:
        a0, a1, b0, b1 = (int(x) for x in instance[:4])
        ids = np.concatenate(([cls_id], tokens[a0:a1], [sep_id], tokens[b0:b1], [sep_id])).astype(np.int64)
        segments = np.zeros(len(ids), dtype=np.int64)
        segments[a1 - a0 + 2 :] = 1
        return ids, segments
    start, end = int(instance[0]), int(instance[1])
    pieces = np.asarray(tokens[start:end], dtype=np.int64)
    inside = boundaries[(boundaries > start) & (boundaries < end)] - start
    if len(inside):
        pieces = np.insert(pieces, inside, sep_id)
    ids = np.concatenate(([cls_id], pieces, [sep_id])).astype(np.int64)
    return ids, np.zeros(len(ids), dtype=np.int64)
