"""QA pieces on hand-made inputs: readers and their errors, windows, n-best decoding, SQuAD EM/F1."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from bertkit.data.squad import read_qa
from bertkit.errors import BertkitError
from bertkit.metrics.squad import best_null_threshold, normalize_answer, question_scores, squad_metrics
from bertkit.tasks.qa_decode import WindowResult, combine, window_candidates
from bertkit.tasks.qa_windows import answer_token_span, max_context_flags, window_spans

CONTEXT = "Anna lives in Paris. She works as a bus driver."


def squad_file(tmp_path, qas, context=CONTEXT, name="data.json"):
    path = tmp_path / name
    path.write_text(
        json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]})
    )
    return path


# ---------------------------------------------------------------- readers
def test_squad_json_and_jsonl_read_the_same(tmp_path):
    qa = {"id": "a1", "question": "Where does Anna live?", "answers": [{"text": "Paris", "answer_start": 14}]}
    from_json = read_qa(squad_file(tmp_path, [qa]), labelled=True).examples
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(
        json.dumps(
            {
                "id": "a1",
                "question": qa["question"],
                "context": CONTEXT,
                "answers": {"text": ["Paris"], "answer_start": [14]},
            }
        )
        + "\n"
    )
    from_jsonl = read_qa(jsonl, labelled=True).examples
    fields = [(e.id, e.question, e.context, e.answers, e.impossible) for e in from_json]
    assert fields == [(e.id, e.question, e.context, e.answers, e.impossible) for e in from_jsonl]
    assert from_json[0].answers[0].text == "Paris" and from_json[0].answers[0].end == 19
    assert not read_qa(jsonl, labelled=False).examples[0].answers  # predict ignores answers


def test_v2_impossible_questions_have_no_answers(tmp_path):
    qas = [
        {
            "id": "n1",
            "question": "What car?",
            "answers": [],
            "is_impossible": True,
            "plausible_answers": [{"text": "Paris", "answer_start": 14}],
        }
    ]
    qa_file = read_qa(squad_file(tmp_path, qas), labelled=True)
    assert qa_file.version_2 and qa_file.examples[0].impossible and qa_file.examples[0].answers == []


def test_answer_not_at_its_start_names_the_question(tmp_path):
    qas = [{"id": "bad-7", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 3}]}]
    with pytest.raises(BertkitError, match=r"id bad-7.*'Paris' is not at character 3.*--skip-bad-examples"):
        read_qa(squad_file(tmp_path, qas), labelled=True)


def test_skip_bad_examples_counts_them(tmp_path):
    qas = [
        {"id": "ok", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 14}]},
        {"id": "bad", "question": "Where?", "answers": [{"text": "Rome", "answer_start": 14}]},
    ]
    qa_file = read_qa(squad_file(tmp_path, qas), labelled=True, skip_bad=True)
    assert [e.id for e in qa_file.examples] == ["ok"] and qa_file.skipped == 1


@pytest.mark.parametrize(
    "record, message",
    [
        ({"id": "x", "question": "Q?", "context": "C"}, "no 'answers'"),
        ({"id": "x", "question": "", "context": "C", "answers": []}, "no 'question' text"),
        ({"question": "Q?", "context": "C", "answers": []}, "no 'id'"),
        ({"id": "x", "question": "Q?", "context": "C", "answers": {"text": ["C"]}}, "equal length"),
    ],
)
def test_jsonl_record_errors_name_the_line(tmp_path, record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(BertkitError, match=rf"bad.jsonl line 1.*{message}"):
        read_qa(path, labelled=True)


def test_duplicate_ids_are_refused(tmp_path):
    qas = [{"id": "same", "question": "Where?", "answers": []}] * 2
    with pytest.raises(BertkitError, match="appears twice"):
        read_qa(squad_file(tmp_path, qas), labelled=True)


# ---------------------------------------------------------------- windows
def test_windows_overlap_by_the_stride_and_cover_the_passage():
    assert window_spans(10, room=4, stride=2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert window_spans(3, room=4, stride=2) == [(0, 3)]
    assert window_spans(0, room=4, stride=2) == [(0, 0)]


def test_each_token_has_max_context_in_exactly_one_window():
    spans = window_spans(10, room=4, stride=2)
    flags = max_context_flags(spans)
    owners = {}
    for (start, _), window_flags in zip(spans, flags):
        for offset, flag in enumerate(window_flags):
            if flag:
                assert start + offset not in owners
                owners[start + offset] = start
    assert sorted(owners) == list(range(10))
    assert owners[3] == 2  # token 3 sits in the middle of window (2, 6), at the edge of (0, 4)


def test_answer_token_span_from_character_offsets():
    offsets = [(0, 4), (5, 10), (11, 13), (14, 19), (19, 20)]  # Anna lives in Paris .
    assert answer_token_span(offsets, 14, 19) == (3, 3)
    assert answer_token_span(offsets, 5, 13) == (1, 2)
    assert answer_token_span(offsets, 15, 17) == (3, 3)  # inside a token
    assert answer_token_span(offsets, 30, 35) is None


class Tokenizer:
    """Whitespace 'WordPieces' with offsets: enough to check window building without a vocabulary."""

    cls_token_id, sep_token_id = 1, 2

    def __call__(self, texts, add_special_tokens=False, return_offsets_mapping=False):
        ids, offsets = [], []
        for text in texts:
            spans, start = [], 0
            for word in text.split(" "):
                spans.append((start, start + len(word)))
                start += len(word) + 1
            ids.append([10 + i for i in range(len(spans))])
            offsets.append(spans)
        return {"input_ids": ids, "offset_mapping": offsets}


def windows_for(answer_word: int, max_length: int = 10, stride: int = 2):
    from bertkit.data.squad import Answer, QAExample
    from bertkit.tasks.qa_windows import build_windows

    words = [f"w{i}" for i in range(12)]
    context = " ".join(words)
    start = context.index(words[answer_word]) if answer_word >= 0 else 0
    answers = [Answer(words[answer_word], start)] if answer_word >= 0 else []
    example = QAExample("q", "which one", context, answers, impossible=answer_word < 0, where="test")
    return build_windows([example], Tokenizer(), max_length, stride, 64, with_positions=True)


def test_training_windows_point_at_the_answer_or_at_cls():
    features = windows_for(answer_word=5)  # room 10-2-3 = 5 passage tokens, step 3: windows 0-5, 3-8, 6-11, 9-12
    assert [f["_offsets"][0][0] for f in features] == [0, 9, 18, 27]
    positions = [(f["start_positions"], f["end_positions"]) for f in features]
    passage_start = features[0]["_passage_start"]
    assert passage_start == 4  # [CLS] which one [SEP]
    # only window 1 (words 3-7) holds word 5, as its third passage token
    assert positions == [(0, 0), (passage_start + 2, passage_start + 2), (0, 0), (0, 0)]
    assert features[1]["input_ids"][:4] == [1, 10, 11, 2] and features[1]["input_ids"][-1] == 2
    assert features[1]["token_type_ids"] == [0] * 4 + [1] * 6


def test_answer_at_a_window_edge_and_in_the_overlap():
    features = windows_for(answer_word=4)  # last token of window 0, inside window 1 as well
    assert [(f["start_positions"], f["end_positions"]) for f in features][:2] == [(8, 8), (5, 5)]


def test_unanswerable_points_at_cls_everywhere():
    assert {(f["start_positions"], f["end_positions"]) for f in windows_for(answer_word=-1)} == {(0, 0)}


def test_stride_leaving_no_room_is_an_error():
    with pytest.raises(BertkitError, match="--doc-stride 5.*lower --doc-stride"):
        windows_for(answer_word=2, max_length=10, stride=5)


# ---------------------------------------------------------------- decoding
def logits(length: int, peaks: dict[int, float]) -> np.ndarray:
    values = np.zeros(length)
    for position, value in peaks.items():
        values[position] = value
    return values


# Anna lives in Paris . She works as a bus driver . -> 12 passage tokens, "Paris" is 3, "bus driver" 9-10
OFFSETS = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", CONTEXT)]
PASSAGE_START = 3  # [CLS] q q [SEP]


def decode_one(start_peaks, end_peaks, max_answer_length=30, n_best=20):
    length = PASSAGE_START + len(OFFSETS) + 1
    return window_candidates(
        logits(length, start_peaks),
        logits(length, end_peaks),
        PASSAGE_START,
        OFFSETS,
        [True] * len(OFFSETS),
        n_best,
        max_answer_length,
    )


def test_best_span_is_cut_from_the_passage_by_character_offsets():
    result = decode_one({PASSAGE_START + 9: 5.0}, {PASSAGE_START + 10: 5.0})
    prediction = combine(CONTEXT, [result], n_best=20, allow_null=False, null_threshold=0.0)
    assert prediction["answer"] == "bus driver" and (prediction["start"], prediction["end"]) == (36, 46)
    assert prediction["score"] == pytest.approx(10.0)
    assert abs(sum(entry["probability"] for entry in prediction["nbest"]) - 1) < 1e-6


def test_spans_in_the_question_are_never_chosen():
    result = decode_one({1: 50.0, PASSAGE_START + 3: 2.0}, {2: 50.0, PASSAGE_START + 3: 2.0})
    assert combine(CONTEXT, [result], 20, False, 0.0)["answer"] == "Paris"


def token_range(span) -> tuple[int, int]:
    starts, ends = {o[0]: i for i, o in enumerate(OFFSETS)}, {o[1]: i for i, o in enumerate(OFFSETS)}
    return starts[span.start], ends[span.end]


def test_reversed_spans_are_skipped():
    result = decode_one({PASSAGE_START + 5: 9.0}, {PASSAGE_START + 2: 9.0})  # best start after best end
    ranges = [token_range(span) for span in result.spans]
    assert (5, 2) not in ranges and all(first <= last for first, last in ranges)


def test_too_long_spans_are_skipped():
    result = decode_one({PASSAGE_START: 9.0}, {PASSAGE_START + 9: 9.0}, max_answer_length=3)
    ranges = [token_range(span) for span in result.spans]
    assert (0, 9) not in ranges and all(last - first < 3 for first, last in ranges)


def test_a_span_counts_only_from_the_window_where_its_start_has_most_context():
    length = PASSAGE_START + len(OFFSETS) + 1
    start, end = logits(length, {PASSAGE_START + 3: 8.0}), logits(length, {PASSAGE_START + 3: 8.0})
    owner = window_candidates(start, end, PASSAGE_START, OFFSETS, [True] * len(OFFSETS), 20, 30)
    other = window_candidates(start * 2, end * 2, PASSAGE_START, OFFSETS, [i != 3 for i in range(len(OFFSETS))], 20, 30)
    prediction = combine(CONTEXT, [owner, other], 20, False, 0.0)
    assert prediction["answer"] == "Paris" and prediction["score"] == pytest.approx(16.0)
    assert [entry["text"] for entry in prediction["nbest"]].count("Paris") == 1


def test_best_answer_across_two_windows():
    low = decode_one({PASSAGE_START + 3: 2.0}, {PASSAGE_START + 3: 2.0})
    high = decode_one({PASSAGE_START + 9: 6.0}, {PASSAGE_START + 10: 6.0})
    assert combine(CONTEXT, [low, high], 20, False, 0.0)["answer"] == "bus driver"
    assert combine(CONTEXT, [high, low], 20, False, 0.0)["answer"] == "bus driver"


def test_null_answer_wins_by_more_than_the_threshold():
    span = decode_one({0: 9.0, PASSAGE_START + 3: 3.0}, {0: 9.0, PASSAGE_START + 3: 3.0})
    assert span.null_score == pytest.approx(18.0)
    no_answer = combine(CONTEXT, [span], 20, allow_null=True, null_threshold=0.0)
    assert no_answer["answer"] == "" and no_answer["null_odds"] == pytest.approx(12.0)
    assert "" in [entry["text"] for entry in no_answer["nbest"]]
    answered = combine(CONTEXT, [span], 20, allow_null=True, null_threshold=15.0)
    assert answered["answer"] == "Paris"


def test_every_question_gets_a_prediction_even_without_a_valid_span():
    empty = WindowResult(spans=[], null_score=0.0)
    assert combine(CONTEXT, [empty], 20, allow_null=False, null_threshold=0.0)["answer"] == ""
    assert combine(CONTEXT, [empty], 20, allow_null=True, null_threshold=0.0)["answer"] == ""


# ---------------------------------------------------------------- metrics (official definitions)
def test_normalisation_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # 'the' only as a word


def test_exact_match_and_f1_take_the_best_gold_answer():
    assert question_scores("the Paris", ["Rome", "Paris"], version_2=False) == (1, 1.0)
    exact, f1 = question_scores("in central Paris", ["Paris", "central Paris France"], version_2=False)
    assert exact == 0 and f1 == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))


def test_squad_v1_totals_are_percentages():
    metrics = squad_metrics([["Paris"], ["bus driver"], ["1973"]], ["Paris.", "a bus", "1974"], version_2=False)
    assert metrics["exact_match"] == pytest.approx(100 / 3)
    assert metrics["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert "has_ans_f1" not in metrics


def test_squad_v2_empty_answers_and_breakdown():
    golds = [["Paris"], [], ["a"]]  # "a" normalises to nothing: it counts as no answer in v2.0
    metrics = squad_metrics(golds, ["Paris", "", "something"], version_2=True)
    assert metrics["exact_match"] == pytest.approx(200 / 3)
    assert (metrics["has_ans_total"], metrics["no_ans_total"]) == (1, 2)
    assert metrics["has_ans_f1"] == 100.0 and metrics["no_ans_exact_match"] == 50.0
    assert question_scores("", [], version_2=True) == (1, 1.0)
    assert question_scores("Paris", [], version_2=True) == (0, 0.0)


def test_best_null_threshold_maximises_f1():
    golds = [["Paris"], [], ["Rome"]]
    spans, odds = ["Paris", "Lima", "Oslo"], [-2.0, 1.0, 3.0]
    threshold, f1 = best_null_threshold(golds, spans, odds)
    assert f1 == pytest.approx(100 * 2 / 3)  # answer only the first; null for the others
    assert -2.0 <= threshold < 1.0
