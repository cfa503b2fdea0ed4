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

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from bertkit.data.conll import TaggedSentence, read_tagged
from bertkit.errors import BertkitError
from bertkit.metrics.classification import per_class_table
from bertkit.metrics.tagging import entity_spans, is_entity_tagset, main_metric_for, tagging_metrics
from bertkit.tasks.wordpieces import Window, plan_windows, special_tokens, word_pieces

DEFAULT_STRIDE = 32
IGNORED = -100  # the label id cross-entropy skips


@dataclass
class TaggingTask:
    name: str = "tagging"
    main_metric: str = "token_accuracy"  # entity_f1 for entity tag sets: see main_metric_for
    auto_model: str = "AutoModelForTokenClassification"
    pipeline_name: str = "token-classification"
    # predict/evaluate take these from the training run unless they are given

    def read(self, path, settings, labelled: bool) -> list[TaggedSentence]:
        return read_tagged(path, labelled, getattr(settings, "tag_column", None),
                           getattr(settings, "tag_field", None) or "upos",
                           tags_column=getattr(settings, "label_column", None))  # jsonl/dataset records

    def label_names(self, examples: list[TaggedSentence]) -> list[str]:
        """O first, then the other tags sorted; entity tag sets also get I-X for every B-X."""
        names = {tag for example in examples for tag in example.tags}
        if len(names) < 2:
            raise BertkitError(f"{examples[0].where.rsplit(' line ', 1)[0]}: only one tag ({next(iter(names))}) in "
                               "the training data; tagging needs at least two (wrong --tag-column or --tag-field?)")
        if is_entity_tagset(sorted(names)):
            names |= {"I-" + name[2:] for name in names if name.startswith("B-")}
        return (["O"] if "O" in names else []) + sorted(names - {"O"})

    def check_labels(self, examples: list[TaggedSentence], labels: list[str]) -> None:
        known = set(labels)
        for example in examples:
            for number, tag in enumerate(example.tags):
                if tag not in known:
                    shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
                    raise BertkitError(f"{example.word_where(number)}: tag '{tag}' was not in the training data "
                                       f"(tags: {shown}); fix the tag or retrain with it")

    def main_metric_for(self, labels: list[str]) -> str:
        return main_metric_for(labels)

    def encode(self, examples: list[TaggedSentence], tokenizer, max_length: int, label2id: dict[str, int] | None,
               settings=None) -> tuple[list[dict], int]:
        """One feature per window; nothing is truncated, so the second value is always 0."""
        prefix, suffix = special_tokens(tokenizer)
        capacity = max_length - len(prefix) - len(suffix)
        stride = getattr(settings, "stride", None)
        stride = DEFAULT_STRIDE if stride is None else stride
        pieces = word_pieces(tokenizer, [example.tokens for example in examples], capacity)
        continuation = None
        if label2id is not None and getattr(settings, "label_all_tokens", False):
            continuation = continuation_ids(label2id)
        features = []
        for index, (example, words) in enumerate(zip(examples, pieces)):
            tag_ids = [label2id[tag] for tag in example.tags] if label2id and example.tags else None
            for window in plan_windows([len(word) for word in words], capacity, min(stride, capacity // 2)):
                feature = window_feature(words, window, prefix, suffix, tag_ids, continuation)
                feature["index"] = index
                features.append(feature)
        return features, 0

    def decode(self, examples: list[TaggedSentence], features: list[dict], outputs: Iterable[tuple[int, dict]],
               labels: list[str], settings=None) -> list[dict]:
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

    def prediction_record(self, example: TaggedSentence, prediction: dict) -> dict:
        record = {"text": example.text} if example.text is not None else {}
        record.update(tokens=example.tokens, tags=prediction["tags"],
                      probabilities=[round(p, 6) for p in prediction["probabilities"]])
        if "entities" in prediction:
            record["entities"] = prediction["entities"]
        return record

    def metrics_table(self, metrics: dict):
        if "per_type" in metrics:
            return per_class_table({"per_class": metrics["per_type"]}, title="Per entity type", first_column="type")
        return per_class_table({"per_class": metrics.get("per_tag", {})}, title="Per tag", first_column="tag")


def window_feature(words: list[list[int]], window: Window, prefix: list[int], suffix: list[int],
                   tag_ids: list[int] | None, continuation: list[int] | None) -> dict:
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
            found.append({"type": kind, "text": " ".join(example.tokens[start:end]), "start": start, "end": end,
                          "score": score})
    return found


TAGGING = TaggingTask()
