"""Readers of tagged sentences: CoNLL columns, CoNLL-U, jsonl, raw text, and their one-line errors."""

from __future__ import annotations

import json
import re

import pytest

from bertkit.data.conll import read_tagged, split_words
from bertkit.errors import BertkitError

CONLLU = """# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\tCase=Nom\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
3.1\tknow\tknow\tVERB\tVB\t_\t_\t_\t_\t_
4\tknow\tknow\tVERB\tVB\tVerbForm=Inf\t0\troot\t_\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_tab_separated_with_docstart_and_whitespace_only_separators(tmp_path):
    path = write(tmp_path, "ner.conll", "-DOCSTART-\tO\n\nEmpire\tB-loc\nState\tI-loc\n\t\n@paul\tO\nhi\tO\n\n\n")
    sentences = read_tagged(path, labelled=True)
    assert [s.tokens for s in sentences] == [["Empire", "State"], ["@paul", "hi"]]
    assert [s.tags for s in sentences] == [["B-loc", "I-loc"], ["O", "O"]]
    assert sentences[1].where == f"{path} line 6" and sentences[1].word_where(1) == f"{path} line 7"


def test_conll_space_separated_tag_in_last_column_or_chosen_column(tmp_path):
    path = write(tmp_path, "chunks.txt", "He PRP B-NP\nran VBD B-VP\n\nOK UH O\n")
    assert read_tagged(path, labelled=True)[0].tags == ["B-NP", "B-VP"]
    assert read_tagged(path, labelled=True, tag_column=2)[0].tags == ["PRP", "VBD"]
    assert read_tagged(path, labelled=False)[0].tags is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("a\tO\nb\tO\tX\n", "line 2: 3 fields where the file's first word line has 2"),
        ("a\tO\nb\t\n", "line 2: the tag (column 2) is missing"),
        ("a\nb\n", "line 1: one field only, but a tag is needed"),
    ],
)
def test_conll_errors_name_file_and_line(tmp_path, text, message):
    path = write(tmp_path, "bad.conll", text)
    with pytest.raises(BertkitError, match=re.escape(f"{path} {message}")):
        read_tagged(path, labelled=True)


def test_conll_tag_column_out_of_range(tmp_path):
    path = write(tmp_path, "two.conll", "a\tO\n")
    with pytest.raises(BertkitError, match="--tag-column is 3 but the lines have 2 fields"):
        read_tagged(path, labelled=True, tag_column=3)


def test_conllu_skips_multiword_tokens_and_empty_nodes(tmp_path):
    path = write(tmp_path, "ud.conllu", CONLLU)
    sentences = read_tagged(path, labelled=True)
    assert sentences[0].tokens == ["I", "do", "n't", "know", "."]
    assert sentences[0].tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert sentences[0].word_where(3) == f"{path} line 8"
    assert sentences[1].tags == ["INTJ"]
    assert read_tagged(path, labelled=True, tag_field="xpos")[0].tags == ["PRP", "VBP", "RB", "VB", "."]
    assert read_tagged(path, labelled=True, tag_field="deprel")[0].tags[0] == "nsubj"
    assert read_tagged(path, labelled=True, tag_field="feats")[0].tags[:2] == ["Case=Nom", "_"]


def test_conllu_errors(tmp_path):
    short = write(tmp_path, "short.conllu", "1\tI\tI\tPRON\tPRP\n")
    with pytest.raises(BertkitError, match=f"{short} line 1: 5 tab-separated fields where CoNLL-U has 10"):
        read_tagged(short, labelled=True)
    untagged = write(tmp_path, "untagged.conllu", "1\tI\tI\t_\tPRP\t_\t0\troot\t_\t_\n")
    with pytest.raises(BertkitError, match=f"{untagged} line 1: the UPOS tag is missing"):
        read_tagged(untagged, labelled=True)


def test_jsonl_tokens_and_tags(tmp_path):
    records = [{"tokens": ["Paris", "is", "big"], "tags": ["B-LOC", "O", "O"]}, {"tokens": ["Hi"], "tags": ["O"]}]
    path = write(tmp_path, "data.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    sentences = read_tagged(path, labelled=True)
    assert sentences[0].tags == ["B-LOC", "O", "O"] and sentences[1].tokens == ["Hi"]
    assert sentences[0].word_where(2) == f"{path} line 1 (word 3)"


@pytest.mark.parametrize(
    "record, message",
    [
        ({"tokens": ["a", "b"], "tags": ["O"]}, "line 1: 2 tokens but 1 tags"),
        ({"tokens": ["a"]}, "line 1: 'tags' must be a non-empty list"),
        ({"tokens": [], "tags": []}, "line 1: 'tokens' must be a non-empty list"),
    ],
)
def test_jsonl_errors(tmp_path, record, message):
    path = write(tmp_path, "bad.jsonl", json.dumps(record) + "\n")
    with pytest.raises(BertkitError, match=re.escape(f"{path} {message}")):
        read_tagged(path, labelled=True)


def test_raw_text_words_keep_character_offsets(tmp_path):
    line = "Dr. O'Neil moved to São Paulo, state-of-the-art!"
    words, offsets = split_words(line)
    assert words == ["Dr", ".", "O'Neil", "moved", "to", "São", "Paulo", ",", "state-of-the-art", "!"]
    assert all(line[start:end] == word for word, (start, end) in zip(words, offsets))
    path = write(tmp_path, "input.txt", f"{line}\n\n  \nsecond line\n")
    sentences = read_tagged(path, labelled=False)
    assert len(sentences) == 2 and sentences[1].where == f"{path} line 4" and sentences[0].text == line


def test_labelled_txt_is_read_as_columns_and_empty_file_is_refused(tmp_path):
    assert read_tagged(write(tmp_path, "train.txt", "a O\nb B-X\n"), labelled=True)[0].tags == ["O", "B-X"]
    with pytest.raises(BertkitError, match="file is empty"):
        read_tagged(write(tmp_path, "empty.conll", "\n\n"), labelled=True)
