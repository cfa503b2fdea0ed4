"""`bertkit export` and predict/evaluate on an exported directory.

Protects: every task exports to a directory ONNX Runtime loads, whose fp32 outputs match PyTorch
(the export's own check and an independent one); predict and evaluate on the export write the same
records and metrics as on the PyTorch model; int8 is smaller and agrees on the labels; LoRA is
merged into the weights and adapters / layer mix / mean pooling survive; failures are one line.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from deploy_runs import TASK_RUNS, assert_same_records, export, finetune, invoke, read_jsonl

TASKS = list(TASK_RUNS)


@pytest.fixture(scope="module")
def models(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy-runs")
    return {task: finetune(tiny_model, root / task, task) for task in TASKS}


@pytest.fixture(scope="module")
def exports(models, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {task: export(model, root / task) for task, model in models.items()}


@pytest.mark.parametrize("task", TASKS)
def test_export_round_trip_matches_pytorch(task, models, exports, tmp_path):
    exported = exports[task]
    names = {path.name for path in exported.iterdir()}
    assert {"model.onnx", "config.json", "bertkit.json", "README.md", "tokenizer.json"} <= names
    info = json.loads((exported / "bertkit.json").read_text())
    assert info["task"] == task and info["export"]["quantize"] == "none"
    assert info["export"]["check"]["fp32"]["max_abs_difference"] <= 1e-4
    assert "model.onnx" in (exported / "README.md").read_text()
    source, inputs = models[task], TASK_RUNS[task][1]
    for model, name in ((source, "torch.jsonl"), (exported, "onnx.jsonl")):
        code, text = invoke("predict", "--model", model, inputs, "--output", tmp_path / name)
        assert code == 0, text
    expected, got = read_jsonl(tmp_path / "torch.jsonl"), read_jsonl(tmp_path / "onnx.jsonl")
    assert len(got) == len(expected) > 0
    assert_same_records(got, expected)


def test_onnxruntime_loads_the_export_directly(models, exports):
    """Independent of bertkit's runner: a plain InferenceSession gives PyTorch's logits."""
    import onnxruntime
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(exports["classification"]))
    batch = tokenizer(["a fine film", "the plot was dull and far too long"], padding=True, return_tensors="np")
    session = onnxruntime.InferenceSession(str(exports["classification"] / "model.onnx"))
    names = [node.name for node in session.get_inputs()]
    logits = session.run(["logits"], {name: batch[name].astype(np.int64) for name in names})[0]
    model = AutoModelForSequenceClassification.from_pretrained(str(models["classification"])).eval()
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


@pytest.mark.parametrize("task", ["classification", "tagging"])
def test_evaluate_on_export_gives_the_same_metrics(task, models, exports, tmp_path):
    labelled = TASK_RUNS[task][2]
    for model, name in ((models[task], "torch.json"), (exports[task], "onnx.json")):
        code, text = invoke("evaluate", "--model", model, labelled, "--output", tmp_path / name, "--threads", "1")
        assert code == 0, text
    assert_same_records(
        json.loads((tmp_path / "onnx.json").read_text()), json.loads((tmp_path / "torch.json").read_text())
    )


def test_int8_is_smaller_and_agrees(models, exports, tmp_path):
    checked_on = TASK_RUNS["classification"][2]  # a user's own file instead of the built-in inputs
    exported = export(models["classification"], tmp_path / "int8", "--quantize", "int8", "--check-inputs", checked_on)
    info = json.loads((exported / "bertkit.json").read_text())["export"]
    check = info["check"]
    assert info["int8_weight_bits"] == 7 and "7-bit weights" in (exported / "README.md").read_text()
    assert check["int8"]["agreement"] >= 0.99 and check["int8"]["inputs"] == check["int8"]["compared"] == 100
    assert check["int8"]["measure"] == "inputs with the same label"
    assert (exported / "model.onnx").stat().st_size < 0.6 * (exports["classification"] / "model.onnx").stat().st_size
    inputs = TASK_RUNS["classification"][1]
    for model, name in ((models["classification"], "torch.jsonl"), (exported, "int8.jsonl")):
        assert invoke("predict", "--model", model, inputs, "--output", tmp_path / name)[0] == 0
    labels = [[record["label"] for record in read_jsonl(tmp_path / name)] for name in ("torch.jsonl", "int8.jsonl")]
    assert np.mean([a == b for a, b in zip(*labels)]) >= 0.9


@pytest.mark.parametrize(
    "options",
    [
        ("--strategy", "lora", "--lora-rank", "4", "--lr", "1e-2"),
        (
            "--strategy",
            "adapters",
            "--adapter-size",
            "8",
            "--layer-mix",
            "weighted",
            "--pooling",
            "mean",
            "--lr",
            "1e-2",
        ),
    ],
    ids=["lora", "adapters-weighted-mean"],
)
def test_strategies_export_with_their_additions(options, tiny_model, tmp_path):
    import onnx

    model = finetune(tiny_model, tmp_path / "run", "classification", "--epochs", "1", *options)
    exported = export(model, tmp_path / "onnx")
    graph = onnx.load(str(exported / "model.onnx")).graph
    initializers = [tensor.name for tensor in graph.initializer]
    if "lora" in options:  # merged: no LoRA matrices left in the graph
        assert not any("lora" in name for name in initializers)
    inputs = TASK_RUNS["classification"][2]
    for source, name in ((model, "torch.json"), (exported, "onnx.json")):
        code, text = invoke("evaluate", "--model", source, inputs, "--output", tmp_path / name)
        assert code == 0, text
    got, expected = (json.loads((tmp_path / name).read_text()) for name in ("onnx.json", "torch.json"))
    assert_same_records(got, expected)  # includes the learned layer weights under the layer mix
    assert ("layer_weights" in expected) == ("weighted" in options)


def test_export_errors_are_one_line(models, exports, tmp_path):
    (tmp_path / "file").write_text("x")
    cases = [
        (("export", "--model", models["classification"], "--output", exports["classification"]), "already exists"),
        (("export", "--model", exports["classification"], "--output", tmp_path / "again"), "already an ONNX export"),
        (("export", "--model", models["classification"], "--output", tmp_path / "file" / "sub"), "cannot write"),
        (
            ("predict", "--model", exports["classification"], TASK_RUNS["classification"][1], "--runtime", "torch"),
            "no torch weights",
        ),
        (
            ("predict", "--model", models["classification"], TASK_RUNS["classification"][1], "--runtime", "onnx"),
            "bertkit export",
        ),
        (
            ("predict", "--model", models["classification"], TASK_RUNS["classification"][1], "--threads", "-1"),
            "--threads",
        ),
        (
            (
                "export",
                "--model",
                models["classification"],
                "--output",
                tmp_path / "bits",
                "--quantize",
                "int8",
                "--int8-weight-bits",
                "6",
            ),
            "give 7 or 8",
        ),
    ]
    for argv, words in cases:
        code, text = invoke(*argv)
        assert code == 2, text
        assert words in text and len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    assert not (tmp_path / "again").exists() and not (tmp_path / ".sub.tmp").exists()


def agreeing_less(monkeypatch, task_name: str) -> None:
    """The task's agreement measure reports 99% of what it measures (--min-agreement is at most 1)."""
    from bertkit.tasks import TASKS

    task = TASKS[task_name]
    measured = task.agreement
    monkeypatch.setattr(task, "agreement", lambda *both: {**measured(*both), "agreement": 0.99})


@pytest.mark.parametrize(
    "change, words", [("ATOL", "differ from PyTorch"), ("min_agreement", "int8 model fails its check")]
)
def test_a_failed_check_stops_the_export(change, words, models, tmp_path, monkeypatch):
    from bertkit.deploy import checks
    from bertkit.deploy import export as export_module
    from bertkit.errors import BertkitError
    from bertkit.settings import ExportSettings

    settings = ExportSettings(
        model=str(models["classification"]), output=tmp_path / "onnx", quantize="int8", int8_max_fp32=1
    )
    if change == "ATOL":
        monkeypatch.setattr(checks, "ATOL", -1.0)
    else:  # the int8 model agrees on less than everything (the fp32 check reads no agreement)
        settings.min_agreement = 1.0
        settings.check_margin = 0.0
        agreeing_less(monkeypatch, "classification")
    with pytest.raises(BertkitError, match=words):
        export_module.export_model(settings)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "task, measure", [("tagging", "words with the same tag"), ("qa", "mean answer F1 against PyTorch's answers")]
)
def test_int8_check_compares_decoded_predictions(task, measure, models, tmp_path):
    """Tagging is checked per word (not per WordPiece logit), QA on the decoded answers (not start/end argmax)."""
    from bertkit.data.conll import read_tagged

    given = ("--check-inputs", TASK_RUNS[task][2]) if task == "tagging" else ()
    exported = export(models[task], tmp_path / "int8", "--quantize", "int8", "--min-agreement", "0", *given)
    check = json.loads((exported / "bertkit.json").read_text())["export"]["check"]
    assert check["fp32"]["measure"] == check["int8"]["measure"] == measure
    assert check["fp32"]["agreement"] == 1.0 and 0 < check["int8"]["agreement"] <= 1
    if task == "tagging":
        words = sum(len(sentence.tokens) for sentence in read_tagged(TASK_RUNS[task][2], True))
        assert check["int8"]["compared"] == words and check["int8"]["inputs"] < words
    else:
        assert check["int8"]["compared"] == check["int8"]["inputs"] == 144
        assert 0 <= check["int8"]["identical"] <= check["int8"]["agreement"] + 1e-9


@pytest.mark.parametrize("task, measure", [("tagging", "words with the same tag"), ("qa", "mean answer F1")])
def test_a_failed_int8_check_names_the_model_and_the_fix(task, measure, models, tmp_path, monkeypatch):
    code, text = invoke(
        *("export", "--model", models[task], "--output", tmp_path / "onnx", "--quantize", "int8"),
        *("--min-agreement", "1", "--check-margin", "0", "--int8-max-fp32", "0"),
    )
    if code == 0:  # an int8 model may agree on everything; then it is made to agree on a little less
        shutil.rmtree(tmp_path / "onnx")
        from bertkit.deploy import export as export_module
        from bertkit.errors import BertkitError
        from bertkit.settings import ExportSettings

        agreeing_less(monkeypatch, task)
        with pytest.raises(BertkitError) as failure:
            export_module.export_model(
                ExportSettings(
                    model=str(models[task]),
                    output=tmp_path / "again",
                    quantize="int8",
                    min_agreement=1,
                    check_margin=0,
                    int8_max_fp32=0,
                )
            )
        code, text = 2, str(failure.value)
    assert code == 2 and len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    for words in (str(models[task]), measure, "--min-agreement", "--quantize none"):
        assert words in text.replace("\n", ""), (words, text)
    assert not (tmp_path / "onnx").exists() and not (tmp_path / "again").exists()


@pytest.mark.parametrize("keep, words", [("last-ffn", "last feed-forward block"), ("last-layer", "last layer")])
def test_int8_keep_fp32_leaves_the_named_products_unquantized(keep, words, models, tmp_path):
    import onnx

    exported = export(
        models["qa"], tmp_path / "int8", "--quantize", "int8", "--int8-keep-fp32", keep, "--optimize", "none"
    )  # unfused: every product keeps its module path as its name
    info = json.loads((exported / "bertkit.json").read_text())["export"]
    assert info["int8_keep_fp32"] == keep and f"{words} and the head in fp32" in (exported / "README.md").read_text()
    nodes = {node.name: node.op_type for node in onnx.load(str(exported / "model.onnx")).graph.node}
    kept = [
        "/model/qa_outputs/MatMul",
        "/model/bert/encoder/layer.1/output/dense/MatMul",
        "/model/bert/encoder/layer.1/intermediate/dense/MatMul",
    ]
    last_query = "/model/bert/encoder/layer.1/attention/self/query/MatMul"
    (kept if keep == "last-layer" else []).append(last_query)
    for name in kept:
        assert nodes.get(name) == "MatMul", name  # still a float product
    quantized = ["/model/bert/encoder/layer.0/output/dense/MatMul"] + ([last_query] if keep == "last-ffn" else [])
    for name in quantized:
        assert name not in nodes and nodes.get(f"{name}_quant") == "MatMulInteger", name


def test_task_agreement_measures():
    from bertkit.tasks import get_task

    tags = get_task("tagging").agreement(
        [{"tags": ["A", "B"]}, {"tags": ["C"]}], [{"tags": ["A", "X"]}, {"tags": ["C"]}]
    )
    assert tags["agreement"] == pytest.approx(2 / 3) and tags["compared"] == 3
    answers = get_task("qa").agreement(
        [{"answer": "red fox"}, {"answer": ""}, {"answer": "Oslo"}],
        [{"answer": "the fox"}, {"answer": ""}, {"answer": "Paris"}],
    )
    assert answers["agreement"] == pytest.approx((2 / 3 + 1 + 0) / 3) and answers["identical"] == pytest.approx(1 / 3)
    labels = get_task("classification").agreement(
        [{"label": "pos"}, {"label": "neg"}], [{"label": "pos"}, {"label": "pos"}]
    )
    assert labels["agreement"] == 0.5
    sets = get_task("multilabel").agreement(
        [{"labels": ["a", "b"]}, {"labels": ["a"]}], [{"labels": ["b", "a"]}, {"labels": []}]
    )
    assert sets["agreement"] == 0.5
    scores = get_task("regression").agreement(
        [{"score": 0.0}, {"score": 4.0}, {"score": 2.0}], [{"score": 0.1}, {"score": 4.3}, {"score": 2.0}]
    )
    assert scores["tolerance"] == pytest.approx(0.2) and scores["agreement"] == pytest.approx(2 / 3)
    assert scores["max_abs_difference"] == pytest.approx(0.3)


@pytest.mark.parametrize("bits, largest", [("7", 64), ("8", 127)])
def test_int8_weight_bits_bound_the_stored_weights(bits, largest, models, tmp_path):
    import onnx
    from onnx import numpy_helper

    exported = export(
        models["tagging"], tmp_path / "int8", "--quantize", "int8", "--int8-weight-bits", bits, "--min-agreement", "0"
    )
    weights = [
        numpy_helper.to_array(tensor)
        for tensor in onnx.load(str(exported / "model.onnx")).graph.initializer
        if tensor.data_type == onnx.TensorProto.INT8 and tensor.name.endswith("_quantized")
    ]
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == largest
