"""`bertkit export` and predict/evaluate on an exported directory.

Protects: every task exports to a directory ONNX Runtime loads, whose fp32 outputs match PyTorch
(the export's own check and an independent one); predict and evaluate on the export write the same
records and metrics as on the PyTorch model; int8 is smaller and agrees on the labels; LoRA is
merged into the weights and adapters / layer mix / mean pooling survive; failures are one line.
"""

from __future__ import annotations

import json

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
    assert_same_records(json.loads((tmp_path / "onnx.json").read_text()),
                        json.loads((tmp_path / "torch.json").read_text()))


def test_int8_is_smaller_and_agrees(models, exports, tmp_path):
    checked_on = TASK_RUNS["classification"][2]  # a user's own file instead of the built-in inputs
    exported = export(models["classification"], tmp_path / "int8", "--quantize", "int8", "--check-inputs", checked_on)
    check = json.loads((exported / "bertkit.json").read_text())["export"]["check"]
    assert check["int8"]["label_agreement"] >= 0.99 and check["int8"]["inputs"] == 100
    assert (exported / "model.onnx").stat().st_size < 0.6 * (exports["classification"] / "model.onnx").stat().st_size
    inputs = TASK_RUNS["classification"][1]
    for model, name in ((models["classification"], "torch.jsonl"), (exported, "int8.jsonl")):
        assert invoke("predict", "--model", model, inputs, "--output", tmp_path / name)[0] == 0
    labels = [[record["label"] for record in read_jsonl(tmp_path / name)] for name in ("torch.jsonl", "int8.jsonl")]
    assert np.mean([a == b for a, b in zip(*labels)]) >= 0.9


@pytest.mark.parametrize("options", [
    ("--strategy", "lora", "--lora-rank", "4", "--lr", "1e-2"),
    ("--strategy", "adapters", "--adapter-size", "8", "--layer-mix", "weighted", "--pooling", "mean", "--lr", "1e-2"),
], ids=["lora", "adapters-weighted-mean"])
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
        (("predict", "--model", exports["classification"], TASK_RUNS["classification"][1], "--runtime", "torch"),
         "no torch weights"),
        (("predict", "--model", models["classification"], TASK_RUNS["classification"][1], "--runtime", "onnx"),
         "bertkit export"),
        (("predict", "--model", models["classification"], TASK_RUNS["classification"][1], "--threads", "-1"),
         "--threads"),
    ]
    for argv, words in cases:
        code, text = invoke(*argv)
        assert code == 2, text
        assert words in text and len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    assert not (tmp_path / "again").exists() and not (tmp_path / ".sub.tmp").exists()


@pytest.mark.parametrize("change, words", [("ATOL", "differ from PyTorch"), ("min_agreement", "int8 model predicts")])
def test_a_failed_check_stops_the_export(change, words, models, tmp_path, monkeypatch):
    from bertkit.deploy import export as export_module
    from bertkit.errors import BertkitError
    from bertkit.settings import ExportSettings

    settings = ExportSettings(model=str(models["classification"]), output=tmp_path / "onnx", quantize="int8")
    if change == "ATOL":
        monkeypatch.setattr(export_module, "ATOL", -1.0)
    else:
        settings.min_agreement = 1.01  # no model can agree on more than all labels
    with pytest.raises(BertkitError, match=words):
        export_module.export_model(settings)
    assert list(tmp_path.iterdir()) == []
