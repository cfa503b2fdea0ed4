"""Masked-LM masking, as BERT does it, and the collator that applies it to each batch.

Of the WordPiece positions that are not `[CLS]`, `[SEP]` or `[PAD]`, a share `probability`
(rounded, at least 1) is chosen, at most `cap` per sequence; each chosen position becomes
`[MASK]` 80% of the time, a random token 10%, and stays unchanged 10%. With whole-word
masking, whole words (a piece and the `##` pieces after it) are chosen in random order as
long as they fit under the count, and the 80/10/10 rule then applies to each piece.

The masks of an instance are a pure function of (seed, epoch, instance number) -- or of
(seed, instance number) with static masks -- so the collator holds no random state, and a
resumed run draws exactly the masks it would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

IGNORE = -100  # label of positions that are not predicted


@dataclass
class MaskingRule:
    mask_id: int
    never: np.ndarray  # token ids never chosen: [CLS], [SEP], [PAD]
    random_pool: np.ndarray  # token ids a position may be replaced by (the vocabulary minus special tokens)
    probability: float = 0.15
    cap: int = 20
    continuation: np.ndarray | None = None  # vocab-sized bool table: "##" pieces (whole-word masking), else None

    @classmethod
    def for_tokenizer(cls, tokenizer, probability: float, cap: int, whole_words: bool) -> MaskingRule:
        never = np.array(sorted({tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}))
        specials = set(tokenizer.all_special_ids)
        pool = np.array([i for i in range(len(tokenizer)) if i not in specials])
        continuation = None
        if whole_words:
            continuation = np.zeros(len(tokenizer), dtype=bool)
            for token, index in tokenizer.get_vocab().items():
                continuation[index] = token.startswith("##")
        return cls(tokenizer.mask_token_id, never, pool, probability, cap, continuation)


def choose_positions(ids: np.ndarray, rule: MaskingRule, rng: np.random.Generator) -> np.ndarray:
    """The positions to predict, sorted."""
    candidates = np.flatnonzero(~np.isin(ids, rule.never))
    if len(candidates) == 0:
        return candidates
    count = min(rule.cap, max(1, int(len(candidates) * rule.probability + 0.5)))
    if rule.continuation is None:
        return np.sort(rng.permutation(candidates)[:count])
    # Whole words: a word starts at a piece that is not "##..." (or right after a special token).
    starts = ~rule.continuation[ids[candidates]]
    starts[0] = True
    starts[1:] |= np.diff(candidates) > 1
    word_of = np.cumsum(starts) - 1
    word_starts = np.flatnonzero(starts)
    word_sizes = np.diff(np.append(word_starts, len(candidates)))
    chosen_words, total = [], 0
    for word in rng.permutation(len(word_starts)):
        if total + word_sizes[word] <= count:
            chosen_words.append(word)
            total += word_sizes[word]
            if total == count:
                break
    return candidates[np.isin(word_of, chosen_words)]


def mask_instance(ids: np.ndarray, rule: MaskingRule, rng: np.random.Generator):
    """(masked ids, positions, original ids at those positions) for one sequence."""
    positions = choose_positions(ids, rule, rng)
    labels = ids[positions].copy()
    masked = ids.copy()
    draw = rng.random(len(positions))
    masked[positions[draw < 0.8]] = rule.mask_id
    replaced = positions[draw >= 0.9]
    masked[replaced] = rng.choice(rule.random_pool, size=len(replaced))
    return masked, positions, labels


def instance_rng(seed: int, epoch: int | None, index: int) -> np.random.Generator:
    """The random stream of one instance's masks: (seed, epoch, index), or (seed, index) for static masks."""
    key = [seed, index] if epoch is None else [seed, epoch + 1, index]
    return np.random.default_rng(key)


class MaskingCollator:
    """Pads a batch of instances and masks each one; returns the tensors `PretrainingModel` takes."""

    def __init__(self, rule: MaskingRule, pad_id: int, seed: int, static: bool):
        self.rule, self.pad_id, self.seed, self.static = rule, pad_id, seed, static

    def mask(self, item: dict):
        epoch = None if self.static else item["_epoch"]
        return mask_instance(item["input_ids"], self.rule, instance_rng(self.seed, epoch, item["_index"]))

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        masked = [self.mask(item) for item in items]
        slots = max(1, max(len(positions) for _, positions, _ in masked))
        input_ids = np.full((len(items), width), self.pad_id, dtype=np.int64)
        segments = np.zeros((len(items), width), dtype=np.int64)
        attention = np.zeros((len(items), width), dtype=np.int64)
        positions = np.zeros((len(items), slots), dtype=np.int64)
        labels = np.full((len(items), slots), IGNORE, dtype=np.int64)
        for row, (item, (ids, chosen, originals)) in enumerate(zip(items, masked)):
            input_ids[row, : len(ids)] = ids
            segments[row, : len(ids)] = item["token_type_ids"]
            attention[row, : len(ids)] = 1
            positions[row, : len(chosen)] = chosen
            labels[row, : len(chosen)] = originals
        batch = {
            "input_ids": input_ids,
            "token_type_ids": segments,
            "attention_mask": attention,
            "masked_positions": positions,
            "masked_labels": labels,
        }
        if "next_sentence_label" in items[0]:
            batch["next_sentence_label"] = np.array([item["next_sentence_label"] for item in items], dtype=np.int64)
        return {key: torch.from_numpy(value) for key, value in batch.items()}
