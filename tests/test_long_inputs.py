"""Texts longer than --max-length (head-tail, windows pooled per text) and weighted losses (class weights).

Units: how texts are cut and pooled, whole texts per inference batch, the weighted loss. End to end: a label
visible only at the end of a long text is learned by windows and head-tail and not by truncation, balanced
class weights raise the minority's recall, and the one-line errors.
"""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import finetune_through_cli

from bertkit.engine.inference import my_batches
from bertkit.errors import BertkitError
from bertkit.modeling.losses import WeightedLoss, training_loss
from bertkit.tasks import CLASSIFICATION, MULTILABEL, REGRESSION
from bertkit.tasks.long_inputs import ClassifierOptions, head_and_tail
from bertkit.tasks.text import TextExample

FILLER = "the staff was very camera soundtrack story fair overall this time and to be".split()
ONE_PROCESS = SimpleNamespace(process_index=0, num_processes=1)


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def example(text: str, label=None, pair=None) -> TextExample:
    return TextExample(text, pair, label, "test line 1")


def test_windows_cut_a_long_text_into_overlapping_features_pooled_into_one_prediction(tokenizer):
    words = " ".join(FILLER * 5)
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    options = ClassifierOptions(long_inputs="windows", window_stride=4, max_windows=50)
    examples = [example(words, "pos"), example("a short one", "neg")]
    features, cut = CLASSIFICATION.encode(examples, tokenizer, 16, {"neg": 0, "pos": 1}, options)
    long_windows = [f for f in features if f["index"] == 0]
    assert len(long_windows) == -(-(len(pieces) - 4) // 10) and cut == 0  # 14 pieces a window, 4 shared
    assert all(len(f["input_ids"]) <= 16 for f in features)
    assert long_windows[0]["input_ids"][1:5] == pieces[:4] and long_windows[1]["input_ids"][1:5] == pieces[10:14]
    assert sum(f["loss_weight"] for f in long_windows) == pytest.approx(1.0)  # the text counts once
    # Every window's logits pool into one answer per text: mean, or max.
    outputs = [(i, {"logits": np.array([0.0, 1.0]) if i == 0 else np.array([1.0, 0.0])}) for i in range(len(features))]
    predictions = CLASSIFICATION.decode(examples, features, iter(outputs), ["neg", "pos"], options)
    assert len(predictions) == 2 and predictions[0]["label"] == "neg"  # mean: one window of many says pos
    options.window_pool = "max"
    assert CLASSIFICATION.decode(examples, features, iter(outputs), ["neg", "pos"], options)[0]["probabilities"][
        "pos"
    ] == pytest.approx(0.5)
    capped = ClassifierOptions(long_inputs="windows", window_stride=4, max_windows=2)
    features, cut = REGRESSION.encode([example(words, 1.0)], tokenizer, 16, {"score": 0}, capped)
    assert len(features) == 2 and cut == 1
    scores = REGRESSION.decode(
        [example(words)], features, iter([(0, {"logits": [1.0]}), (1, {"logits": [3.0]})]), [], capped
    )
    assert scores == [{"score": 2.0}]


def test_head_tail_keeps_the_first_and_last_pieces(tokenizer):
    assert head_and_tail(list(range(100)), 8, 0.25) == [0, 1, 94, 95, 96, 97, 98, 99]
    assert head_and_tail([1, 2, 3], 8, 0.25) == [1, 2, 3]
    words = " ".join(FILLER * 3) + " delightful"
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"]
    options = ClassifierOptions(long_inputs="head-tail", head_share=0.5)
    (feature,), cut = MULTILABEL.encode([example(words, ["a"])], tokenizer, 12, {"a": 0, "b": 1}, options)
    assert cut == 1 and feature["input_ids"] == [
        tokenizer.cls_token_id,
        *pieces[:5],
        *pieces[-5:],
        tokenizer.sep_token_id,
    ]
    # A pair keeps its second text whole (up to half the room) in every window; the first text is cut.
    (feature,), _ = CLASSIFICATION.encode([example(words, "x", pair="fair")], tokenizer, 12, None, options)
    pair = tokenizer("fair", add_special_tokens=False)["input_ids"]
    assert len(feature["input_ids"]) == 12 and feature["input_ids"][-len(pair) - 1 : -1] == pair
    assert feature["token_type_ids"].count(1) == len(pair) + 1


def test_a_text_s_windows_share_one_inference_batch():
    lengths = [16, 16, 9, 12, 16, 16, 16, 5]
    examples = [0, 0, 0, 1, 2, 2, 2, 3]
    batches = my_batches(lengths, 4, ONE_PROCESS, examples)
    for number in set(examples):
        assert sum(any(examples[i] == number for i in batch) for batch in batches) == 1
    assert sorted(i for batch in batches for i in batch) == list(range(8)) and all(len(b) <= 4 for b in batches)
    # One feature per example: the length-sorted batches of before.
    assert my_batches(lengths, 3, ONE_PROCESS, list(range(8))) == my_batches(lengths, 3, ONE_PROCESS)


def test_the_weighted_loss_weighs_each_example_by_its_class_and_window():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    plain = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    output = {"logits": logits}
    assert WeightedLoss("single_label_classification")(output, {"labels": labels}) == pytest.approx(float(plain.mean()))
    weighted = WeightedLoss("single_label_classification", class_weights=[1.0, 3.0])
    assert weighted(output, {"labels": labels}) == pytest.approx(float((plain * torch.tensor([1, 3, 3])).mean()))
    windows = {"labels": labels, "loss_weight": torch.tensor([1.0, 0.5, 0.5])}
    assert WeightedLoss("single_label_classification", window_scale=1.5)(output, windows) == pytest.approx(
        float((plain * torch.tensor([1.0, 0.5, 0.5]) * 1.5).mean())
    )
    # balanced: total / (labels x count), from the features (9 of label 1, 1 of label 0)
    features = [{"input_ids": [1], "labels": 1}] * 9 + [{"input_ids": [1], "labels": 0}]
    loss = training_loss("single_label_classification", "balanced", ["a", "b"], features)
    assert loss.class_weights.tolist() == pytest.approx([5.0, 10 / 18])
    assert training_loss("single_label_classification", "none", ["a", "b"], features) is None  # the head's own
    # multi-label: each label's negatives over its positives weigh its positive examples
    rows = [{"input_ids": [1], "labels": np.array(row, dtype=np.float32)} for row in ([1, 0], [1, 1], [1, 0], [0, 0])]
    loss = training_loss("multi_label_classification", "balanced", ["a", "b"], rows)
    assert loss.positive_weights.tolist() == pytest.approx([1 / 3, 3.0])
    targets = torch.tensor([[1.0, 0.0]])
    more = loss({"logits": torch.zeros(1, 2)}, {"labels": targets})
    assert more == pytest.approx(float(torch.log(torch.tensor(2.0)) * (1 / 3 + 1) / 2))


def long_texts(count: int, seed: int, filler: int = 28) -> list[tuple[str, str]]:
    """Texts of filler words whose label shows only in the last three words (past the 16-piece inputs)."""
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        label = "pos" if number % 2 else "neg"
        words = [rng.choice(FILLER) for _ in range(filler)] + ["delightful" if label == "pos" else "boring"] * 3
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path, rows):
    path.write_text("text\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def long_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    return write_tsv(folder / "train.tsv", long_texts(96, 1)), write_tsv(folder / "dev.tsv", long_texts(40, 2))


def train_long(tiny_model, long_data, output, *extra):
    train, dev = long_data
    run = finetune_through_cli(
        output,
        "--model",
        tiny_model,
        "--train",
        train,
        "--eval",
        dev,
        "--max-length",
        "16",
        "--epochs",
        "10",
        "--lr",
        "2e-3",
        "--batch-size",
        "16",
        "--seed",
        "3",
        *extra,
    )
    return json.loads((run / "metrics.json").read_text())["accuracy"], run


def test_windows_and_head_tail_learn_a_label_that_truncation_cannot_see(tiny_model, long_data, tmp_path, cli):
    truncated, _ = train_long(tiny_model, long_data, tmp_path / "truncate")
    windows, run = train_long(
        tiny_model, long_data, tmp_path / "windows", "--long-inputs", "windows", "--window-stride", "4"
    )
    head_tail, _ = train_long(tiny_model, long_data, tmp_path / "head-tail", "--long-inputs", "head-tail")
    assert truncated <= 0.7 and windows >= 0.9 and head_tail >= 0.9, (truncated, windows, head_tail)
    # Saved with the model: predict cuts and pools as training did, one record per text.
    saved = json.loads((run / "model/bertkit.json").read_text())["settings"]
    assert saved["long_inputs"] == "windows" and saved["window_stride"] == 4
    result = cli("predict", "--model", run / "model", long_data[1], "--output", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    gold = [label for _, label in long_texts(40, 2)]
    assert len(records) == 40 and np.mean([r["label"] == g for r, g in zip(records, gold)]) == pytest.approx(windows)


def test_balanced_class_weights_raise_the_minority_s_recall(tiny_model, tmp_path):
    # "dull" marks every negative but also a fifth of the nine times as many positives: unweighted, a text with
    # "dull" is more likely positive; weighted 9:1, negative.
    rng = random.Random(5)

    def texts(negatives: int, positives: int) -> list[tuple[str, str]]:
        rows = [(" ".join(rng.sample(FILLER, 5) + ["dull"]), "neg") for _ in range(negatives)]
        rows += [(" ".join(rng.sample(FILLER, 5) + (["dull"] if i % 5 == 0 else [])), "pos") for i in range(positives)]
        rng.shuffle(rows)
        return rows

    train, dev = write_tsv(tmp_path / "train.tsv", texts(18, 162)), write_tsv(tmp_path / "dev.tsv", texts(20, 20))
    recall = {}
    for weights in ("none", "balanced"):
        run = finetune_through_cli(
            tmp_path / weights,
            "--model",
            tiny_model,
            "--train",
            train,
            "--eval",
            dev,
            "--epochs",
            "10",
            "--lr",
            "2e-3",
            "--batch-size",
            "16",
            "--seed",
            "3",
            "--class-weights",
            weights,
        )
        recall[weights] = json.loads((run / "metrics.json").read_text())["per_class"]["neg"]["recall"]
    assert recall["balanced"] >= recall["none"] + 0.5, recall


def test_long_input_and_weight_mistakes_are_one_line_errors(tiny_model, long_data, tmp_path, cli):
    train, dev = long_data
    base = ("finetune", "--model", tiny_model, "--train", train, "--output", tmp_path / "run")
    result = cli(*base, "--long-inputs", "windows", "--max-windows", "0")
    assert result.exit_code == 2 and "--max-windows is 0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    weights = tmp_path / "weights.tsv"
    weights.write_text("pos\t2\nneutral\t1\n", encoding="utf-8")
    result = cli(*base, "--class-weights", weights)
    assert result.exit_code == 2 and "line 2: label 'neutral' is not a label" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    empty = write_tsv(tmp_path / "empty.tsv", [("fair story", "pos"), ("  ", "neg")])
    result = cli(
        "finetune", "--model", tiny_model, "--train", empty, "--output", tmp_path / "e", "--long-inputs", "windows"
    )
    assert result.exit_code == 2 and "line 3: the text" in result.stderr and "is empty" in result.stderr
    with pytest.raises(BertkitError, match="no pieces"):  # characters the tokenizer drops leave no text either
        CLASSIFICATION.encode(
            [example("\u200b")], _tokenizer(tiny_model), 16, None, ClassifierOptions(long_inputs="windows")
        )
    with pytest.raises(BertkitError, match="--window-stride 32"):
        CLASSIFICATION.encode(
            [example("fair")], _tokenizer(tiny_model), 16, None, ClassifierOptions(long_inputs="windows")
        )


def _tokenizer(model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


def test_per_label_thresholds_are_tuned_saved_and_decoded():
    from bertkit.metrics.multilabel import best_label_thresholds
    from bertkit.tasks.multilabel import MultilabelOptions

    gold = [["a"], ["a", "b"], [], ["b"]]
    logits = np.array([[-0.8, -2.2], [-0.6, 2.2], [-1.4, 1.7], [-2.2, 2.9]])  # a: above -0.9, b: above 2.0
    probabilities = 1 / (1 + np.exp(-logits))  # as decode computes them
    thresholds, macro = best_label_thresholds(gold, probabilities, ["a", "b"])
    assert thresholds == {"a": probabilities[0, 0], "b": probabilities[1, 1]} and macro == pytest.approx(1.0)
    options = MultilabelOptions(tune_threshold="per-label")
    tuned = MULTILABEL.tuned_options({"best_threshold": 0.5, "best_label_thresholds": thresholds}, options)
    assert json.loads(tuned["label_thresholds"]) == thresholds
    decoding = MultilabelOptions(label_thresholds=tuned["label_thresholds"])
    features = [{"index": i} for i in range(4)]
    outputs = iter((i, {"logits": row}) for i, row in enumerate(logits))
    predicted = MULTILABEL.decode([example("x")] * 4, features, outputs, ["a", "b"], decoding)
    assert [sorted(p["labels"]) for p in predicted] == [["a"], ["a", "b"], [], ["b"]]
    assert MultilabelOptions(tune_threshold=True).tune_threshold == "global"  # a config file of before
    with pytest.raises(BertkitError, match="--label-thresholds is"):
        MultilabelOptions(label_thresholds='{"a": 2}')


def test_windows_predict_the_same_through_an_onnx_export(tiny_model, long_data, tmp_path, cli):
    train, dev = long_data
    run = finetune_through_cli(
        tmp_path / "run",
        "--model",
        tiny_model,
        "--train",
        train,
        "--max-steps",
        "3",
        "--max-length",
        "16",
        "--long-inputs",
        "windows",
        "--window-stride",
        "4",
        "--window-pool",
        "max",
    )
    result = cli("export", "--model", run / "model", "--output", tmp_path / "onnx", "--check-inputs", dev)
    assert result.exit_code == 0, result.output
    records = {}
    for name, model in (("torch", run / "model"), ("onnx", tmp_path / "onnx")):
        result = cli("predict", "--model", model, dev, "--output", tmp_path / f"{name}.jsonl")
        assert result.exit_code == 0, result.output
        records[name] = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert len(records["onnx"]) == 40
    for got, expected in zip(records["onnx"], records["torch"]):
        assert got["label"] == expected["label"]
        assert got["probabilities"]["pos"] == pytest.approx(expected["probabilities"]["pos"], abs=1e-4)
