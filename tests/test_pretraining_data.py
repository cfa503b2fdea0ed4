"""Pretraining data: sentence splitting, the tokenizer, NSP and packed instances, masking statistics.

Statistics are taken over thousands of instances built from a corpus generated here (seeded).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from bertkit.errors import BertkitError
from bertkit.pretraining.cache import InstanceFeatures, build_cache
from bertkit.pretraining.corpus import resolve_corpus, split_sentences
from bertkit.pretraining.masking import MaskingCollator, MaskingRule, instance_rng, mask_instance
from bertkit.settings import PretrainSettings

SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "vash", "el", "dor", "qui", "zan", "pe", "rot"]
COMMON = ["the", "a", "boat", "garden", "teacher", "was", "in", "and", "of", "market", "snow", "rain"]


def generated_corpus(path: Path, documents: int = 500, seed: int = 5) -> Path:
    """Blank-line separated documents of sentences mixing common words and invented (multi-piece) words."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(documents):
        sentences = []
        for _ in range(rng.randint(4, 16)):
            words = [
                rng.choice(COMMON) if rng.random() < 0.6 else "".join(rng.choices(SYLLABLES, k=rng.randint(2, 4)))
                for _ in range(rng.randint(4, 14))
            ]
            sentences.append(" ".join(words).capitalize() + ".")
        # two sentences per line: the sentence splitter has to cut them
        blocks.append("\n".join(" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def make_split(tmp_path: Path, tokenizer, nsp: bool, max_seq_length: int = 64) -> InstanceFeatures:
    corpus = generated_corpus(tmp_path / "corpus.txt")
    settings = PretrainSettings(
        corpus=[corpus], output=tmp_path, nsp=nsp, max_seq_length=max_seq_length, validation_fraction=0.05
    )
    meta = build_cache([corpus], tokenizer, settings, tmp_path / "cache", notify=lambda _: None)
    return InstanceFeatures(tmp_path / "cache" / "train", meta["dtype"], tokenizer.cls_token_id, tokenizer.sep_token_id)


@pytest.fixture(scope="module")
def nsp_split(tmp_path_factory, tokenizer):
    return make_split(tmp_path_factory.mktemp("nsp"), tokenizer, nsp=True)


@pytest.fixture(scope="module")
def packed_split(tmp_path_factory, tokenizer):
    return make_split(tmp_path_factory.mktemp("packed"), tokenizer, nsp=False)


def document_of(split: InstanceFeatures, offsets: np.ndarray) -> np.ndarray:
    """The document number holding each token offset."""
    return np.searchsorted(split.sentences[split.documents], offsets, side="right") - 1


def test_sentence_splitting_rule():
    assert split_sentences(
        'Mr. Smith went to Washington. He arrived at 5 p.m. on Monday! Was it late? "Yes." 12 people came.'
    ) == [
        "Mr. Smith went to Washington.",
        "He arrived at 5 p.m. on Monday!",
        "Was it late?",
        '"Yes."',
        "12 people came.",
    ]
    assert split_sentences("J. R. R. Tolkien wrote e.g. The Hobbit. it stays one.") == [
        "J. R. R. Tolkien wrote e.g. The Hobbit. it stays one."
    ]


def test_corpus_paths(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("a.txt", "b.txt", ".hidden"):
        (tmp_path / "d" / name).write_text("Text.\n")
    assert [p.name for p in resolve_corpus([tmp_path / "d"])] == ["a.txt", "b.txt"]
    assert [p.name for p in resolve_corpus([str(tmp_path / "d" / "*.txt")])] == ["a.txt", "b.txt"]
    with pytest.raises(BertkitError, match="file not found"):
        resolve_corpus([tmp_path / "missing.txt"])


def test_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer

    from bertkit.modeling.scratch import SPECIAL_TOKENS, train_wordpiece

    texts = ["The harbour master counted every boat.", "Gulls followed the boats back to the quay."] * 50
    train_wordpiece(texts, vocab_size=200).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.is_fast and loaded.convert_ids_to_tokens(list(range(5))) == SPECIAL_TOKENS
    ids = loaded("Gulls followed the boats.")["input_ids"]
    assert ids[0] == loaded.cls_token_id and ids[-1] == loaded.sep_token_id
    assert loaded.decode(ids, skip_special_tokens=True) == "gulls followed the boats."
    pair = loaded("the boats", "the quay")
    assert pair["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]


def test_nsp_instances(nsp_split):
    instances = nsp_split.instances
    assert len(instances) > 2000
    assert abs(instances[:, 4].mean() - 0.5) <= 0.03
    a_doc, b_doc = document_of(nsp_split, instances[:, 0]), document_of(nsp_split, instances[:, 2])
    random_next = instances[:, 4] == 1
    assert (a_doc[random_next] != b_doc[random_next]).all()  # a random B is always from another document
    # the actual next: B follows A in the same document (truncation may drop tokens between them)
    assert (a_doc[~random_next] == b_doc[~random_next]).all() and (
        instances[~random_next, 2] >= instances[~random_next, 1]
    ).all()
    assert nsp_split.lengths.max() <= 64 and (nsp_split.lengths < 64).sum() > 0.05 * len(instances)
    for index in range(0, len(nsp_split), 37):
        item = nsp_split[index]
        ids, segments = item["input_ids"], item["token_type_ids"]
        seps = np.flatnonzero(ids == nsp_split.sep_id)
        assert ids[0] == nsp_split.cls_id and len(seps) == 2 and seps[1] == len(ids) - 1
        assert (segments[: seps[0] + 1] == 0).all() and (segments[seps[0] + 1 :] == 1).all()
        assert item["next_sentence_label"] == instances[index, 4]


def test_packed_instances_cover_the_text_and_mark_document_boundaries(packed_split):
    instances = packed_split.instances
    assert (instances[1:, 0] == instances[:-1, 1]).all() and instances[-1, 1] == packed_split.sentences[-1]
    assert packed_split.lengths.max() <= 64
    for index in range(0, len(packed_split), 11):
        item = packed_split[index]
        start, end = instances[index]
        inside = packed_split.boundaries[(packed_split.boundaries > start) & (packed_split.boundaries < end)]
        assert (item["input_ids"] == packed_split.sep_id).sum() == 1 + len(inside)
        assert len(item["input_ids"]) == packed_split.lengths[index] and (item["token_type_ids"] == 0).all()


def masked_statistics(split: InstanceFeatures, rule: MaskingRule, epochs: int = 2):
    """Counts over every instance of `epochs` epochs: candidates, chosen, [MASK], kept, random; and the rows."""
    counts = dict(candidates=0, chosen=0, mask=0, kept=0, random=0)
    rows = []
    for epoch in range(epochs):
        split.set_epoch(epoch)
        for index in range(len(split)):
            ids = split[index]["input_ids"]
            masked, positions, labels = mask_instance(ids, rule, instance_rng(0, epoch, index))
            counts["candidates"] += int((~np.isin(ids, rule.never)).sum())
            counts["chosen"] += len(positions)
            counts["mask"] += int((masked[positions] == rule.mask_id).sum())
            counts["kept"] += int((masked[positions] == labels).sum())
            counts["random"] += int(((masked[positions] != labels) & (masked[positions] != rule.mask_id)).sum())
            rows.append((ids, masked, positions))
    return counts, rows


@pytest.mark.parametrize("whole_words", [False, True])
def test_masking_statistics(nsp_split, tokenizer, whole_words):
    rule = MaskingRule.for_tokenizer(tokenizer, 0.15, 20, whole_words)
    counts, rows = masked_statistics(nsp_split, rule)
    assert len(rows) > 4000
    assert abs(counts["chosen"] / counts["candidates"] - 0.15) <= 0.01
    assert abs(counts["mask"] / counts["chosen"] - 0.8) <= 0.02
    assert abs(counts["kept"] / counts["chosen"] - 0.1) <= 0.02
    assert abs(counts["random"] / counts["chosen"] - 0.1) <= 0.02
    for ids, masked, positions in rows:
        assert len(positions) <= 20 and not np.isin(ids[positions], rule.never).any()
        assert (masked[np.isin(ids, rule.never)] == ids[np.isin(ids, rule.never)]).all()
    if whole_words:
        continuation = np.array(
            [token.startswith("##") for token in tokenizer.convert_ids_to_tokens(range(len(tokenizer)))]
        )
        for ids, _, positions in rows:
            chosen = np.zeros(len(ids), dtype=bool)
            chosen[positions] = True
            # piece i+1 continues the word of piece i (a "##" piece cut loose by truncation follows a [SEP])
            follows = continuation[ids[1:]] & ~np.isin(ids[:-1], rule.never)
            assert (chosen[1:][follows] == chosen[:-1][follows]).all()  # never half a word


def test_masking_cap_and_fresh_masks_each_epoch(nsp_split, tokenizer):
    rule = MaskingRule.for_tokenizer(tokenizer, 0.5, 5, whole_words=False)
    counts, rows = masked_statistics(nsp_split, rule, epochs=1)
    assert max(len(positions) for _, _, positions in rows) == 5
    collator = MaskingCollator(rule, tokenizer.pad_token_id, seed=3, static=False)
    item = nsp_split[7]
    first = collator.mask({**item, "_epoch": 0})[1]
    assert (collator.mask({**item, "_epoch": 0})[1] == first).all()  # a pure function of (seed, epoch, index)
    assert any(not np.array_equal(collator.mask({**item, "_epoch": e})[1], first) for e in (1, 2, 3))
    static = MaskingCollator(rule, tokenizer.pad_token_id, seed=3, static=True)
    assert np.array_equal(static.mask({**item, "_epoch": 0})[1], static.mask({**item, "_epoch": 5})[1])


def test_collated_batch_shapes(nsp_split, tokenizer):
    rule = MaskingRule.for_tokenizer(tokenizer, 0.15, 20, whole_words=False)
    batch = MaskingCollator(rule, tokenizer.pad_token_id, seed=0, static=False)([nsp_split[i] for i in range(8)])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape
    assert batch["masked_positions"].shape == batch["masked_labels"].shape
    assert batch["next_sentence_label"].shape == (8,)
    chosen = batch["masked_labels"] != -100
    assert (batch["attention_mask"].gather(1, batch["masked_positions"])[chosen] == 1).all()


def test_cache_is_reused(tmp_path, tokenizer):
    corpus = generated_corpus(tmp_path / "corpus.txt", documents=30)
    settings = PretrainSettings(corpus=[corpus], output=tmp_path)
    notes = []
    build_cache([corpus], tokenizer, settings, tmp_path / "cache", notify=notes.append)
    stamp = (tmp_path / "cache/train/tokens.bin").stat().st_mtime_ns
    build_cache([corpus], tokenizer, settings, tmp_path / "cache", notify=notes.append)
    assert "Reusing" in notes[-1] and (tmp_path / "cache/train/tokens.bin").stat().st_mtime_ns == stamp


def test_document_layouts(tmp_path):
    from bertkit.pretraining.corpus import count_documents, iter_documents

    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("One line. Two here.\nThird line.\n\n\nNext document.\n")
    second.write_text("Another file.\n")
    assert count_documents([first, second], "blocks") == 3
    assert count_documents([first, second], "lines") == 4
    assert count_documents([first, second], "files") == 2
    assert list(iter_documents([first], "blocks"))[0] == ["One line.", "Two here.", "Third line."]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(BertkitError, match="bad.txt line 2: not valid UTF-8"):
        count_documents([bad], "blocks")
