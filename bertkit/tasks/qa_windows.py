"""QA features: ``[CLS] question [SEP] passage window [SEP]``, long passages as overlapping windows.

The question is cut to ``max_query_length`` WordPieces; the passage gets the rest of
``max_length``; consecutive windows share ``doc_stride`` passage tokens (the meaning
transformers' ``run_qa.py`` gives it). Each window is a feature dict:

- ``input_ids``, ``token_type_ids``, ``index`` (the example), and for training
  ``start_positions``/``end_positions`` (0, the ``[CLS]`` token, when the window does not hold
  the whole answer or the question has none);
- metadata the collate ignores: ``_passage_start`` (position of the first passage token),
  ``_offsets`` (an int array (tokens, 2): each passage token's character span in the passage)
  and ``_max_context`` (a bool array: is this the window where the token has the most context).

The pure helpers (`window_spans`, `max_context_flags`, `answer_token_span`) need no tokenizer.
"""

from __future__ import annotations

import numpy as np

from bertkit.errors import BertkitError


def window_spans(n_tokens: int, room: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges [start, end) of the windows over a passage of `n_tokens`; neighbours overlap by `stride`."""
    if room <= stride:
        raise ValueError(f"room {room} must exceed stride {stride}")
    spans, start = [], 0
    while True:
        end = min(start + room, n_tokens)
        spans.append((start, end))
        if end >= n_tokens:
            return spans
        start = end - stride


def max_context_flags(spans: list[tuple[int, int]]) -> list[list[bool]]:
    """For each window, whether each of its tokens has its most context there (BERT's rule).

    A token's context in a window is min(tokens left of it, tokens right of it) plus a hundredth
    of the window length; ties go to the earlier window. Each token is "max context" in exactly
    one window, so a span found in the overlap of two windows is counted once.
    """
    best: dict[int, tuple[float, int]] = {}
    for number, (start, end) in enumerate(spans):
        for token in range(start, end):
            score = min(token - start, end - 1 - token) + 0.01 * (end - start)
            if token not in best or score > best[token][0]:
                best[token] = (score, number)
    return [[best[token][1] == number for token in range(start, end)] for number, (start, end) in enumerate(spans)]


def answer_token_span(offsets, start_char: int, end_char: int) -> tuple[int, int] | None:
    """First and last passage tokens that overlap the characters [start_char, end_char), or None."""
    first = next((i for i, (_, end) in enumerate(offsets) if end > start_char), None)
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < end_char), None)
    if first is None or last is None or last < first:
        return None
    return first, last


def build_windows(
    examples, tokenizer, max_length: int, doc_stride: int, max_query_length: int, with_positions: bool
) -> list[dict]:
    """Windows of every example, in example order (an example's windows are consecutive)."""
    questions = tokenizer([e.question.strip() for e in examples], add_special_tokens=False)["input_ids"]
    contexts = list(dict.fromkeys(e.context for e in examples))  # SQuAD shares passages between questions
    encoded = tokenizer(contexts, add_special_tokens=False, return_offsets_mapping=True)
    # Offsets as one int32 array per passage; every window keeps a view of it, not a copy (memory on full SQuAD).
    passages = {
        text: (ids, np.asarray(offsets, dtype=np.int32).reshape(-1, 2))
        for text, ids, offsets in zip(contexts, encoded["input_ids"], encoded["offset_mapping"])
    }
    features = []
    for index, example in enumerate(examples):
        question = questions[index][:max_query_length]
        room = max_length - len(question) - 3  # [CLS], [SEP], [SEP]
        if room <= doc_stride:
            raise BertkitError(
                f"{example.where}: with --max-length {max_length}, a question of {len(question)} "
                f"WordPieces leaves {max(room, 0)} for the passage, not more than --doc-stride "
                f"{doc_stride}; lower --doc-stride or --max-query-length, or raise --max-length"
            )
        ids, offsets = passages[example.context]
        spans = window_spans(len(ids), room, doc_stride)
        answer = _answer_tokens(example, offsets) if with_positions else None
        for (start, end), flags in zip(spans, max_context_flags(spans)):
            feature = _window(tokenizer, question, ids[start:end], index)
            feature.update(
                _passage_start=len(question) + 2, _offsets=offsets[start:end], _max_context=np.array(flags, dtype=bool)
            )
            if with_positions:
                inside = answer is not None and start <= answer[0] and answer[1] < end
                first, last = (
                    (answer[0] - start + len(question) + 2, answer[1] - start + len(question) + 2) if inside else (0, 0)
                )
                feature.update(start_positions=first, end_positions=last)
            features.append(feature)
    return features


def _answer_tokens(example, offsets) -> tuple[int, int] | None:
    """The answer's passage tokens (the first gold answer trains), or None for an unanswerable question."""
    if example.impossible or not example.answers:
        return None
    answer = example.answers[0]
    return answer_token_span(offsets, answer.start, answer.end)


def _window(tokenizer, question: list[int], passage: list[int], index: int) -> dict:
    return {
        "input_ids": [tokenizer.cls_token_id, *question, tokenizer.sep_token_id, *passage, tokenizer.sep_token_id],
        "token_type_ids": [0] * (len(question) + 2) + [1] * (len(passage) + 1),
        "index": index,
    }
