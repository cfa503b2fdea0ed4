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
        (("--teacher", teacher, "--train", EXAMPLES / "sentiment" / "train.tsv", "--hidden-weight", "-1"), "0 (off)"),
    ]
    for number, (options, words) in enumerate(cases):
        code, text = invoke("distill", "--output", tmp_path / f"out{number}", *options)
        assert code == 2 and words in text and len(text.strip().splitlines()) == 1, text


def test_student_layers_map_evenly_onto_the_teacher_s_the_last_on_the_last():
    from bertkit.distill import mapped_layers

    assert mapped_layers(3, 6) == [2, 4, 6]
    assert mapped_layers(1, 2) == [2]
    assert mapped_layers(4, 12) == [3, 6, 9, 12]
    assert mapped_layers(6, 6) == [1, 2, 3, 4, 5, 6]


def test_hidden_state_matching_costs_only_where_the_directions_differ():
    from types import SimpleNamespace

    from bertkit.distill import Distilling, state_loss

    states = torch.randn(4, 2, 8)
    assert state_loss(3 * states, states) < 1e-6  # the length of a state is free; its direction is learned
    assert state_loss(-states, states) == pytest.approx(4.0)
    hidden = (torch.zeros(4, 3, 8), torch.randn(4, 3, 8), torch.randn(4, 3, 8))  # embeddings, layer 1, layer 2

    class Fixed(torch.nn.Module):
        config = SimpleNamespace(problem_type="single_label_classification", num_labels=2, hidden_size=8)

        def forward(self, output_hidden_states=False, **inputs):
            return SimpleNamespace(logits=torch.zeros(4, 2), hidden_states=hidden if output_hidden_states else None)

    logits, has_label = torch.zeros(4, 2), torch.zeros(4)
    model = Distilling(Fixed(), temperature=1.0, alpha=1.0, hidden_weight=2.0, width=8)
    same = torch.stack([layer[:, 0] for layer in hidden[1:]], dim=1)
    assert model(teacher_logits=logits, has_label=has_label, teacher_states=same).loss < 1e-6
    apart = model(teacher_logits=logits, has_label=has_label, teacher_states=-same).loss
    assert apart == pytest.approx(2.0 * 4.0)
    wider = Distilling(Fixed(), temperature=1.0, alpha=1.0, hidden_weight=2.0, width=16)  # a projection 8 -> 16
    assert wider(teacher_logits=logits, has_label=has_label, teacher_states=torch.randn(4, 2, 16)).loss > 0


def test_a_student_of_another_width_matches_the_teacher_s_states_through_a_projection(teacher, tmp_path):
    student = distill(
        teacher,
        tmp_path / "student",
        *("--train", EXAMPLES / "sentiment" / "train.tsv", "--student", "tiny", "--max-steps", "3"),
        *("--hidden-weight", "1"),
    )
    described = json.loads((student / "bertkit.json").read_text())["distillation"]
    assert described["hidden_weight"] == 1.0 and described["teacher_layers_matched"] == [1, 2]
    assert not any("projection" in key for key in _weights(student))  # the projection is not part of the model


def _weights(model_dir) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "pt") as weights:
        return list(weights.keys())
