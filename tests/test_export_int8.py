"""The int8 export's check and what export does to the graph.

Protects: the default int8 export passes a model whose inputs sit on the decision boundary (which the
old rule, agreement on every input, refused) while still checking the inputs the model decides;
with a labelled --check-inputs file the task's main metric decides; when the fully quantized graph
fails, the most sensitive products stay fp32 and bertkit.json and the model card list them; the
default graph is fused (attention, skip-LayerNorm, bias-GELU) and `--optimize none` is not.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from deploy_runs import TASK_RUNS, export, finetune


@pytest.fixture(scope="module")
def boundary_model(tiny_model, tmp_path_factory):
    """A tiny classifier moved onto its decision boundary: the classifier is scaled up 30x and its bias
    set so that half the built-in check inputs lean each way, many of them by a hair."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bertkit.deploy.checks import check_texts

    root = tmp_path_factory.mktemp("boundary")
    source = finetune(tiny_model, root / "run", "classification")
    target = root / "model"
    shutil.copytree(source, target)
    model = AutoModelForSequenceClassification.from_pretrained(str(target)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    with torch.no_grad():
        logits = model(**tokenizer(check_texts(), padding=True, return_tensors="pt")).logits
        middle = float(np.median((logits[:, 1] - logits[:, 0]).numpy()))
        model.classifier.weight.mul_(30)
        model.classifier.bias.mul_(30)
        model.classifier.bias[1] -= 30 * middle
    model.save_pretrained(str(target))
    return target


def export_record(directory):
    return json.loads((directory / "bertkit.json").read_text())["export"]


def test_default_int8_passes_on_the_boundary_and_checks_the_clear_inputs(boundary_model, tmp_path):
    exported = export(boundary_model, tmp_path / "int8", "--quantize", "int8")
    record = export_record(exported)
    check = record["check"]["int8"]
    assert check["compared"] == 144 and check["agreement"] < 0.99  # the old rule refused this model
    assert check["margin"] == 0.1 and 20 <= check["clear_compared"] < 144
    assert check["clear_agreement"] >= 0.99 and check["passed"]
    assert record["int8_fp32_nodes"] == [] and "on the boundary" not in (exported / "README.md").read_text()
    assert f"on the {check['clear_compared']} clear of the boundary" in (exported / "README.md").read_text()


def test_a_failing_int8_graph_keeps_its_most_sensitive_products_in_fp32(boundary_model, tmp_path):
    """Every input counted (--check-margin 0) and every one must agree: the fully quantized graph fails,
    and the search may keep every product in fp32 (a graph then equal to fp32), so it must pass."""
    exported = export(
        boundary_model,
        tmp_path / "int8",
        *("--quantize", "int8", "--check-margin", "0", "--min-agreement", "1", "--int8-max-fp32", "100"),
    )
    record = export_record(exported)
    check, kept = record["check"]["int8"], record["int8_fp32_nodes"]
    assert check["passed"] and check["agreement"] == 1.0
    assert not check["fully_quantized"]["passed"] and check["fully_quantized"]["agreement"] < 1.0
    assert kept and len(set(kept)) == len(kept)
    card = (exported / "README.md").read_text()
    assert "kept in fp32 because the fully quantized graph failed its check" in card
    assert all(name in card for name in kept)


def test_labelled_check_inputs_compare_the_tasks_metric(boundary_model, tmp_path):
    labelled, unlabelled = TASK_RUNS["classification"][2], TASK_RUNS["classification"][1]
    check = export_record(export(boundary_model, tmp_path / "a", "--quantize", "int8", "--check-inputs", labelled))
    int8 = check["check"]["int8"]
    assert int8["metric"] == "accuracy" and int8["inputs"] == 100 and int8["passed"]
    assert int8["metric_drop_points"] == pytest.approx(100 * (int8["metric_pytorch"] - int8["metric_onnx"]))
    assert int8["metric_drop_points"] <= 0.5 and "clear_agreement" not in int8
    check = export_record(export(boundary_model, tmp_path / "b", "--quantize", "int8", "--check-inputs", unlabelled))
    assert "metric" not in check["check"]["int8"] and "clear_agreement" in check["check"]["int8"]


def test_a_metric_drop_over_the_limit_writes_nothing(boundary_model, tmp_path, monkeypatch):
    from bertkit.deploy import checks
    from bertkit.deploy.export import export_model
    from bertkit.errors import BertkitError
    from bertkit.settings import ExportSettings

    # every int8 prediction wrong: the metric falls far past any limit, and no graph can mend it
    monkeypatch.setattr(
        checks.Reference, "metric_drop", lambda self, p: {"metric": "accuracy", "metric_drop_points": 50.0}
    )
    settings = ExportSettings(
        model=str(boundary_model),
        output=tmp_path / "int8",
        quantize="int8",
        check_inputs=TASK_RUNS["classification"][2],
        int8_max_fp32=2,
    )
    with pytest.raises(BertkitError, match="even with 2 matrix products kept in fp32: 50.00 points of accuracy lost"):
        export_model(settings)
    assert list(tmp_path.iterdir()) == []


def test_the_default_graph_is_fused_and_none_is_not(boundary_model, tmp_path):
    import onnx

    fused, plain = (
        export(boundary_model, tmp_path / "fused"),
        export(boundary_model, tmp_path / "plain", "--optimize", "none"),
    )
    ops = {
        name: {node.op_type for node in onnx.load(str(d / "model.onnx")).graph.node}
        for name, d in (("fused", fused), ("plain", plain))
    }
    assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= ops["fused"]
    assert not ops["plain"] & {"Attention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization"}
    record = export_record(fused)
    assert record["optimize"] == "fused" and record["fused_operators"]["Attention"] == 2
    assert record["check"]["fp32"]["max_abs_difference"] <= 1e-4  # the same outputs as PyTorch
    assert "BERT fusions (" in (fused / "README.md").read_text() and export_record(plain)["fused_operators"] == {}
