"""Token tagging (POS, NER, chunking): one tag per word.

    bertkit finetune --task tagging --model MODEL_DIR --train train.conll --eval dev.conll --output runs/ner

Each word is split into WordPieces; its tag goes on the first piece and the other pieces stay
out of the loss (``--label-all-tokens`` tags them too, B-X becoming I-X after the first piece).
Predictions and metrics are per word, read from each word's first piece. Sentences longer than
``--max-length`` are cut into overlapping windows (``--stride``); see ``bertkit/tasks/wordpieces.py``.
The head is ``BertForTokenClassification``, so the saved model loads in
``transformers.pipeline("token-classification")``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from bertkit.data.conll import TaggedSentence, read_tagged, stream_tagged
from bertkit.errors import BertkitError
from bertkit.metrics.classification import per_class_table
from bertkit.metrics.tagging import entity_spans, is_entity_tagset, main_metric_for, tagging_metrics
from bertkit.settings.options import opt
from bertkit.tasks.base import Task, share_agreeing
from bertkit.tasks.wordpieces import Window, plan_windows, special_tokens, word_pieces

IGNORED = -100  # the label id cross-entropy skips
TAG_FIELDS = ("upos", "xpos", "deprel", "feats")  # the CoNLL-U fields that tagging can learn


@dataclass
class TaggingOptions:
    """Tagging's own flags; predict and evaluate take the saved ones unless given."""

    tag_column: Optional[int] = opt(
        None, "Tagging, CoNLL files: the column holding the tag, counting the word as 1 (default: the last column)."
    )
    tag_field: str = opt("upos", "Tagging, CoNLL-U files: the field that is the tag.", choices=TAG_FIELDS, saved=True)
    label_all_tokens: bool = opt(
        False,
        "Tagging: train on every WordPiece of a word, not only the first "
        "(B-X becomes I-X after the first piece); metrics stay per word.",
        commands=("finetune",),
    )
    stride: int = opt(
        32,
        "Tagging: a sentence longer than --max-length is cut into windows that share this many "
        "WordPieces; each word is read where it has the most context.",
        saved=True,
    )
    label_column: Optional[str] = opt(
        None, "Column holding the label (tagging records: the tags, e.g. ner_tags).", commands=("finetune", "evaluate")
    )  # one flag with the text tasks' own

    def __post_init__(self) -> None:
        if self.tag_column is not None and self.tag_column < 2:
            raise BertkitError(f"--tag-column is {self.tag_column}; the word is column 1, so give 2 or more")
        if self.tag_field not in TAG_FIELDS:
            raise BertkitError(f"--tag-field is '{self.tag_field}'; choose one of: {', '.join(TAG_FIELDS)}")
        if self.stride < 0:
            raise BertkitError(f"--stride is {self.stride}; it cannot be negative")


@dataclass
class TaggingTask(Task):
    name: str = "tagging"
    options_type: type = TaggingOptions
    auto_model: str = "AutoModelForTokenClassification"
    pipeline_tag: str = "token-classification"
    sequence_level: bool = False
    loss_over_tokens: bool = True
    outputs = {"logits": True}
    # Each step is a random draw (the tag statistics of random batches) laid end to end in rows, no padding
    # between sentences; a model that cannot read packed rows gets it sorted into 4 micro-batches instead.
    default_batch_sampler: str = "packed"
    packs: bool = True
    default_micro_batches: int = 4

    def read(self, path: Path, options: TaggingOptions, labelled: bool) -> list[TaggedSentence]:
        return read_tagged(path, labelled, options.tag_column, options.tag_field, tags_column=options.label_column)

    def stream(self, path: Path, options: TaggingOptions, labelled: bool, folder: Path):
        return stream_tagged(path, labelled, options.tag_column, options.tag_field, options.label_column, folder)

    def label_names(self, examples: list[TaggedSentence]) -> list[str]:
        """O first, then the other tags sorted; entity tag sets also get I-X for every B-X."""
        names = {tag for example in examples for tag in example.tags}
        if len(names) < 2:
            raise BertkitError(
                f"{examples[0].where.rsplit(' line ', 1)[0]}: only one tag ({next(iter(names))}) in "
                "the training data; tagging needs at least two (wrong --tag-column or --tag-field?)"
            )
        if is_entity_tagset(sorted(names)):
            names |= {"I-" + name[2:] for name in names if name.startswith("B-")}
        return (["O"] if "O" in names else []) + sorted(names - {"O"})

    def check_labels(self, examples: list[TaggedSentence], labels: list[str]) -> None:
        known = set(labels)
        for example in examples:
            for number, tag in enumerate(example.tags):
                if tag not in known:
                    shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
                    raise BertkitError(
                        f"{example.word_where(number)}: tag '{tag}' was not in the training data "
                        f"(tags: {shown}); fix the tag or retrain with it"
                    )

    def configure(
        self, options: TaggingOptions, max_length: int, train_examples: list[TaggedSentence]
    ) -> TaggingOptions:
        """Windows must move on by half their length; at predict time the encoder caps the stride instead."""
        if options.stride > max_length // 2 - 2:
            raise BertkitError(
                f"--stride is {options.stride}; with --max-length {max_length} it can be at "
                f"most {max_length // 2 - 2} (windows must move on by half their length)"
            )
        return replace(options)

    def main_metric(self, labels: list[str]) -> str:
        """Entity F1 for BIO/BIOES tag sets, else token accuracy."""
        return main_metric_for(labels)

    def encode(
        self,
        examples: list[TaggedSentence],
        tokenizer,
        max_length: int,
        label2id: dict[str, int] | None,
        options: TaggingOptions,
    ) -> tuple[list[dict], int]:
        """One feature per window; nothing is truncated, so the second value is always 0."""
        prefix, suffix = special_tokens(tokenizer)
        capacity = max_length - len(prefix) - len(suffix)
        stride = options.stride
        pieces = word_pieces(tokenizer, [example.tokens for example in examples], capacity)
        continuation = None
        if label2id is not None and options.label_all_tokens:
            continuation = continuation_ids(label2id)
        features = []
        for index, (example, words) in enumerate(zip(examples, pieces)):
            tag_ids = [label2id[tag] for tag in example.tags] if label2id and example.tags else None
            for window in plan_windows([len(word) for word in words], capacity, min(stride, capacity // 2)):
                feature = window_feature(words, window, prefix, suffix, tag_ids, continuation)
                feature["index"] = index
                features.append(feature)
        return features, 0

    def decode(
        self,
        examples: list[TaggedSentence],
        features: list[dict],
        outputs: Iterable[tuple[int, dict]],
        labels: list[str],
        options: TaggingOptions,
    ) -> list[dict]:
        """Each word's tag and its probability, from the first piece in the window that owns the word."""
        tags = [[""] * len(example.tokens) for example in examples]
        scores = [[0.0] * len(example.tokens) for example in examples]
        for feature_index, output in outputs:
            feature = features[feature_index]
            logits = output["logits"][feature["_positions"]].astype(np.float64)
            probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probabilities /= probabilities.sum(axis=-1, keepdims=True)
            example_tags, example_scores = tags[feature["index"]], scores[feature["index"]]
            for word, row in zip(feature["_words"], probabilities):
                best = int(row.argmax())
                example_tags[word], example_scores[word] = labels[best], float(row[best])
        with_entities = is_entity_tagset(labels)
        predictions = []
        for example, example_tags, example_scores in zip(examples, tags, scores):
            prediction = {"tags": example_tags, "probabilities": example_scores}
            if with_entities:
                prediction["entities"] = entities(example, example_tags, example_scores)
            predictions.append(prediction)
        return predictions

    def metrics(self, examples: list[TaggedSentence], predictions: list[dict], labels: list[str]) -> dict:
        return tagging_metrics([e.tags for e in examples], [p["tags"] for p in predictions], labels)

    def input_record(self, number: int, text: str, other: str) -> dict:
        return {"tokens": text.split()}

    def prediction_record(self, example: TaggedSentence, prediction: dict) -> dict:
        record = {"text": example.text} if example.text is not None else {}
        record.update(
            tokens=example.tokens,
            tags=prediction["tags"],
            probabilities=[round(p, 6) for p in prediction["probabilities"]],
        )
        if "entities" in prediction:
            record["entities"] = prediction["entities"]
        return record

    def metrics_table(self, metrics: dict):
        if "per_type" in metrics:
            return per_class_table({"per_class": metrics["per_type"]}, title="Per entity type", first_column="type")
        return per_class_table({"per_class": metrics.get("per_tag", {})}, title="Per tag", first_column="tag")

    def agreement(self, reference: list[dict], other: list[dict]) -> dict:
        same = (x == y for a, b in zip(reference, other) for x, y in zip(a["tags"], b["tags"], strict=True))
        return share_agreeing(same, "words with the same tag")


def window_feature(
    words: list[list[int]],
    window: Window,
    prefix: list[int],
    suffix: list[int],
    tag_ids: list[int] | None,
    continuation: list[int] | None,
) -> dict:
    """input_ids of one window, the first-piece position of each word it owns, and (when tagged) labels.

    Only owned words are labelled, so every word counts once in the loss however windows overlap.
    """
    owned = set(window.owned)
    input_ids = list(prefix)
    labels = [IGNORED] * len(prefix)
    positions, owned_words = [], []
    for word in range(window.start, window.end):
        pieces = words[word]
        if word in owned:
            positions.append(len(input_ids))
            owned_words.append(word)
        input_ids.extend(pieces)
        if tag_ids is not None:
            tag = tag_ids[word] if word in owned else IGNORED
            rest = continuation[tag] if continuation is not None and word in owned else IGNORED
            labels.extend([tag] + [rest] * (len(pieces) - 1))
    input_ids.extend(suffix)
    feature = {"input_ids": input_ids, "_positions": positions, "_words": owned_words}
    if tag_ids is not None:
        feature["labels"] = labels + [IGNORED] * len(suffix)
    return feature


def continuation_ids(label2id: dict[str, int]) -> list[int]:
    """The label of a word's later pieces under --label-all-tokens: I-X for B-X (when known), else the same."""
    id2label = {i: label for label, i in label2id.items()}
    result = []
    for i in range(len(id2label)):
        label = id2label[i]
        inside = "I-" + label[2:] if label.startswith("B-") else None
        result.append(label2id.get(inside, i) if inside else i)
    return result


def entities(example: TaggedSentence, tags: list[str], scores: list[float]) -> list[dict]:
    """Entities with character offsets for raw text, word indices ([start, end)) for pre-tokenized input."""
    found = []
    for kind, start, end in entity_spans(tags):
        score = round(sum(scores[start:end]) / (end - start), 6)
        if example.offsets is not None:
            first, last = example.offsets[start][0], example.offsets[end - 1][1]
            found.append({"type": kind, "text": example.text[first:last], "start": first, "end": last, "score": score})
        else:
            found.append(
                {"type": kind, "text": " ".join(example.tokens[start:end]), "start": start, "end": end, "score": score}
            )
    return found


TAGGING = TaggingTask()
