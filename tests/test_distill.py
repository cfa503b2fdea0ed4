"""`bertkit distill`: a student from a fine-tuned teacher.

Protects: a layers-of-teacher student keeps every other layer, learns (well above chance on held-out
data) and is an ordinary model directory (evaluate reads it); the soft-target losses are zero where the
student matches the teacher and unlabelled inputs carry no gold loss; regression and multi-label
teachers distil; tasks distill cannot take and label sets that differ are one-line errors.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import EXAMPLES
from deploy_runs import TASK_RUNS, finetune, invoke


@pytest.fixture(scope="module")
def teacher(tiny_model, tmp_path_factory):
    return finetune(tiny_model, tmp_path_factory.mktemp("teacher") / "run", "classification")


def distill(teacher, output, *extra):
    code, text = invoke(
        *("distill", "--teacher", teacher, "--output", output, "--batch-size", "16", "--seed", "1"), *extra
    )
    assert code == 0, text
    return output / "model"


def test_a_layers_of_teacher_student_learns_and_is_an_ordinary_model(teacher, tmp_path):
    train = EXAMPLES / "sentiment" / "train.tsv"
    student = distill(
        teacher,
        tmp_path / "student",
        *("--train", train, "--epochs", "2", "--lr", "2e-3", "--unlabeled", EXAMPLES / "sentiment" / "inputs.txt"),
    )
    info = json.loads((student / "bertkit.json").read_text())
    assert info["task"] == "classification" and info["distillation"]["teacher_layers_kept"] == [0]
    assert info["distillation"]["unlabeled_inputs"] > 0 and info["distillation"]["labelled_inputs"] == 400
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 1
    code, text = invoke("evaluate", "--model", student, EXAMPLES / "sentiment" / "test.tsv", "--output", tmp_path / "m")
    assert code == 0, text
    assert json.loads((tmp_path / "m").read_text())["accuracy"] >= 0.8  # two labels: chance is 0.5


@pytest.mark.parametrize("task", ["regression", "multilabel"])
def test_regression_and_multilabel_teachers_distil(task, tiny_model, tmp_path):
    model = finetune(tiny_model, tmp_path / "teacher", task)
    student = distill(
        model, tmp_path / "student", "--train", TASK_RUNS[task][0][1], "--max-steps", "3", "--student", "tiny"
    )
    assert json.loads((student / "bertkit.json").read_text())["distillation"]["student"] == "tiny"
    assert invoke("evaluate", "--model", student, TASK_RUNS[task][2], "--output", tmp_path / "m")[0] == 0


def test_soft_losses_vanish_where_the_student_matches_and_unlabelled_inputs_have_no_gold_loss():
    from types import SimpleNamespace

    from bertkit.distill import Distilling, soft_loss

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    for kind in ("single_label_classification", "multi_label_classification", "score"):
        assert (soft_loss(kind, logits, logits, 2.0) < soft_loss(kind, logits, -logits, 2.0)).all(), kind
    assert torch.allclose(soft_loss("single_label_classification", logits, logits, 2.0), torch.zeros(2), atol=1e-6)

    class Fixed(torch.nn.Module):
        config = SimpleNamespace(problem_type="single_label_classification", num_labels=2)

        def forward(self, **inputs):
            return SimpleNamespace(logits=logits)

    model = Distilling(Fixed(), temperature=1.0, alpha=0.0)  # gold labels only
    wrong = torch.tensor([1, 1])  # the first input's label disagrees with its logits
    unlabelled = model(teacher_logits=logits, has_label=torch.tensor([0.0, 1.0]), labels=wrong).loss
    labelled = model(teacher_logits=logits, has_label=torch.tensor([1.0, 1.0]), labels=wrong).loss
    assert unlabelled < labelled  # the unlabelled input's (wrong) placeholder label adds nothing


def test_distill_errors_are_one_line(teacher, tiny_model, tmp_path):
    tagger = finetune(tiny_model, tmp_path / "tagger", "tagging")
    cases = [
        (("--teacher", tagger, "--train", TASK_RUNS["tagging"][0][1]), "distill takes classification"),
        (("--teacher", teacher, "--train", EXAMPLES / "nli" / "train.tsv"), "differ from the teacher's"),
        (("--teacher", teacher, "--train", EXAMPLES / "sentiment" / "train.tsv", "--alpha", "2"), "--alpha"),
        (("--teacher", teacher, "--train", EXAMPLES / "sentiment" / "train.tsv", "--student", "huge"), "--student"),
    ]
    for number, (options, words) in enumerate(cases):
        code, text = invoke("distill", "--output", tmp_path / f"out{number}", *options)
        assert code == 2 and words in text and len(text.strip().splitlines()) == 1, text
