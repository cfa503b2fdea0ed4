"""`bertkit distill` as a library function: a fine-tuned teacher -> a smaller student, an ordinary model directory.

    from bertkit.distill import distill
    from bertkit.settings import DistillSettings
    distill(DistillSettings(teacher="runs/mr/model", student="layers-of-teacher", train=Path("train.tsv"),
                            output=Path("runs/mr-student")))

The teacher's outputs are computed once for every training input (and every --unlabeled one); the student
then trains in the ordinary engine on a loss mixing the teacher's soft targets, softened by --temperature
(Hinton et al.: KL divergence of the softmax for a label, binary cross-entropy of the sigmoids for label
sets, squared error for scores), with the gold labels' own loss: alpha x soft + (1 - alpha) x gold; the
unlabelled inputs have the soft part only. With --hidden-weight the student's layers also learn the [CLS]
states of evenly mapped teacher layers (Sun et al. 2019), computed with the logits. The student is saved
as fine-tuning saves a model, so evaluate, predict, export and serve take it as it is. Sentence-level tasks
with logits only: tagging and QA are not distilled yet (their per-token and span outputs need their own soft
targets).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertkit import __version__
from bertkit.driver import finish_run, scalar_metrics, start_engine, start_run
from bertkit.errors import BertkitError
from bertkit.finetune import prepare_inputs
from bertkit.inference import load_finetuned
from bertkit.modeling.build import save_model
from bertkit.modeling.loading import load_pretrained
from bertkit.modeling.scratch import SIZES
from bertkit.modeling.strategies import count_parameters, unwrap
from bertkit.report import model_card
from bertkit.settings import PredictSettings, settings_to_dict
from bertkit.settings.distill import STUDENT_SIZES, DistillSettings

MULTI_LABEL = "multi_label_classification"  # transformers' problem_type of a sigmoid head


def distillable(task) -> bool:
    """One vector of logits per text (classification, NLI, regression, multi-label); tagging and QA are not."""
    return task.sequence_level and set(task.outputs) == {"logits"}


class Distilling(nn.Module):
    """The student with the distillation loss: what the engine trains (it reads `.loss`).

    With `hidden_weight`, each student layer's [CLS] state also learns its mapped teacher layer's (Sun et al.
    2019, patient KD): both as unit vectors, through a learned projection where the widths differ; the
    projection trains with the student but is not part of the saved model.
    """

    def __init__(self, student: nn.Module, temperature: float, alpha: float, hidden_weight: float = 0.0, width=None):
        super().__init__()
        self.student, self.temperature, self.alpha = student, temperature, alpha
        # a score (one output) is matched by squared error; a label set by sigmoids; labels by softmax
        self.kind = "score" if student.config.num_labels == 1 else student.config.problem_type
        self.hidden_weight = hidden_weight
        own = getattr(student.config, "hidden_size", width)
        self.projection = nn.Linear(own, width) if hidden_weight and width and width != own else nn.Identity()

    def forward(self, teacher_logits, has_label, labels=None, teacher_states=None, **inputs):
        matching = self.hidden_weight > 0 and teacher_states is not None
        output = self.student(**inputs, output_hidden_states=matching)
        logits = output.logits
        soft = soft_loss(self.kind, logits, teacher_logits.to(logits.dtype), self.temperature)
        loss = self.alpha * soft.mean()
        if labels is not None and self.alpha < 1:
            gold = gold_loss(self.kind, logits, labels) * has_label
            loss = loss + (1 - self.alpha) * gold.sum() / has_label.sum().clamp(min=1)
        if matching:  # every layer's output but the embeddings', [CLS] only: [batch, layers, width]
            states = torch.stack([layer[:, 0] for layer in output.hidden_states[1:]], dim=1)
            loss = loss + self.hidden_weight * state_loss(self.projection(states), teacher_states.to(states.dtype))
        return SimpleNamespace(loss=loss, logits=logits)


def state_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Squared distance of unit vectors (0 when aligned, 4 when opposite), averaged over inputs and layers."""
    return (F.normalize(student, dim=-1) - F.normalize(teacher, dim=-1)).pow(2).sum(-1).mean()


class TeacherStates(nn.Module):
    """The teacher's logits and the [CLS] states of the layers mapped to the student's (`layers`: 1-based)."""

    def __init__(self, teacher: nn.Module, layers: list[int]):
        super().__init__()
        self.teacher, self.layers = teacher, layers

    def forward(self, **inputs) -> dict:
        output = self.teacher(**inputs, output_hidden_states=True)
        states = torch.stack([output.hidden_states[layer][:, 0] for layer in self.layers], dim=1)
        return {"logits": output.logits, "states": states}


def mapped_layers(student_layers: int, teacher_layers: int) -> list[int]:
    """Student layer i (1..S) learns teacher layer round(i x T / S): evenly spaced, the last on the last."""
    return [round(i * teacher_layers / student_layers) for i in range(1, student_layers + 1)]


def soft_loss(kind: str, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per example; x T^2 keeps the gradients' scale independent of the temperature (Hinton et al. 2015)."""
    if kind == "score":
        return F.mse_loss(student, teacher, reduction="none").mean(-1)
    scaled, target = student / temperature, teacher / temperature
    if kind == MULTI_LABEL:
        loss = F.binary_cross_entropy_with_logits(scaled, torch.sigmoid(target), reduction="none").mean(-1)
    else:
        loss = F.kl_div(F.log_softmax(scaled, -1), F.log_softmax(target, -1), log_target=True, reduction="none")
        loss = loss.sum(-1)
    return loss * temperature**2


def gold_loss(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if kind == "score":
        return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype), reduction="none")
    if kind == MULTI_LABEL:
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none").mean(-1)
    return F.cross_entropy(logits, labels, reduction="none")


def make_student(
    choice: str, teacher: nn.Module, teacher_strategy: dict, task, labels: list[str], settings: DistillSettings
):
    """The student model and how bertkit.json describes it."""
    teacher = unwrap(teacher)
    if choice == "layers-of-teacher":
        spec = teacher_strategy
        if (spec.get("name"), spec.get("layer_mix", "last"), spec.get("pooling", "cls")) != ("full", "last", "cls"):
            raise BertkitError(
                f"--student layers-of-teacher: the teacher was trained with strategy {spec.get('name')}, "
                f"layer mix {spec.get('layer_mix')}, pooling {spec.get('pooling')}; "
                "give a teacher fine-tuned with the full strategy, or a --student size"
            )
        student = copy.deepcopy(teacher)
        encoder = student.base_model.encoder
        kept = list(range(0, len(encoder.layer), 2))  # every other layer, the first included (DistilBERT)
        encoder.layer = nn.ModuleList(encoder.layer[i] for i in kept)
        student.config.num_hidden_layers = len(kept)
        return student, {"student": choice, "teacher_layers_kept": kept}
    if choice in STUDENT_SIZES:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        layers, hidden = SIZES[choice]
        config = AutoConfig.for_model(
            "bert",
            vocab_size=teacher.config.vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=hidden // 64,
            intermediate_size=4 * hidden,
            max_position_embeddings=teacher.config.max_position_embeddings,
            pad_token_id=teacher.config.pad_token_id,
            **{k: v for k, v in task.head_config(labels).items() if k != "ignore_mismatched_sizes"},
        )
        return AutoModelForSequenceClassification.from_config(config), {"student": choice}
    if not Path(choice).is_dir():
        raise BertkitError(
            f"--student {choice}: not a model directory nor one of layers-of-teacher, {', '.join(STUDENT_SIZES)}"
        )
    student = load_pretrained(task.auto_model, choice, allow_pickle=settings.allow_pickle, **task.head_config(labels))
    if student.config.vocab_size != teacher.config.vocab_size:
        raise BertkitError(f"--student {choice}: its vocabulary differs from the teacher's; give one that shares it")
    return student, {"student": str(Path(choice).resolve())}


def with_teacher_outputs(features: list[dict], teacher, engine, pad_token_id: int, placeholder) -> list[dict]:
    """Each feature with the teacher's logits (and its mapped layers' [CLS] states when `teacher` is a
    TeacherStates); unlabelled ones get a placeholder label and has_label 0."""
    inputs = [{key: value for key, value in feature.items() if key != "labels"} for feature in features]
    wanted = {"logits": False, **({"states": False} if isinstance(teacher, TeacherStates) else {})}
    outputs = dict(engine.run_model(teacher, inputs, 64, pad_token_id, wanted))
    made = []
    for number, feature in enumerate(features):
        labelled = "labels" in feature
        extra = {"teacher_states": outputs[number]["states"].astype(np.float32)} if "states" in wanted else {}
        made.append(
            {
                **feature,
                "labels": feature["labels"] if labelled else copy.copy(placeholder),
                "teacher_logits": np.asarray(outputs[number]["logits"], dtype=np.float32),
                "has_label": float(labelled),
                **extra,
            }
        )
    return made


def placeholder(label):
    """A label of the same type for unlabelled inputs (the batches stack every feature's labels alike)."""
    return np.zeros_like(label) if isinstance(label, np.ndarray) else type(label)(0)


def distill(settings: DistillSettings) -> dict:
    """Train the student; returns the final evaluation metrics (as finetune does)."""
    from accelerate.utils import set_seed

    settings.validate()
    teacher = load_finetuned(PredictSettings(model=settings.teacher, input=Path("-"), runtime="torch", threads=0))
    task = teacher.task
    if not distillable(task):
        raise BertkitError(
            f"{settings.teacher}: a {task.name} model; distill takes classification, nli, regression and "
            "multilabel models (one output per text)"
        )
    max_length = settings.max_length or teacher.info.get("max_length") or task.default_max_length
    settings = dataclasses.replace(settings, task=task.name, model=str(settings.teacher), micro_batches=1)
    engine = start_engine(settings)
    data = prepare_inputs(task, settings.model, settings, max_length)
    if data.labels != teacher.labels:
        raise BertkitError(
            f"{settings.train}: labels {', '.join(data.labels)} differ from the teacher's ({', '.join(teacher.labels)})"
        )
    tokenizer, pad = data.tokenizer, data.tokenizer.pad_token_id or 0
    features = list(data.train_features)
    if settings.unlabeled is not None:
        unlabeled = task.read(settings.unlabeled, data.options, labelled=False)
        more, _ = task.encode(unlabeled, tokenizer, max_length, None, data.options)
        features += [{**feature, "index": len(features) + i} for i, feature in enumerate(more)]
    set_seed(settings.seed)
    student, described = make_student(
        settings.student, teacher.model, teacher.info.get("strategy") or {}, task, teacher.labels, settings
    )
    teacher_config = unwrap(teacher.model).config
    layers = mapped_layers(student.config.num_hidden_layers, teacher_config.num_hidden_layers)
    source = TeacherStates(teacher.model, layers) if settings.hidden_weight > 0 else teacher.model
    features = with_teacher_outputs(features, source, engine, pad, placeholder(features[0]["labels"]))
    described.update(
        teacher=str(Path(settings.teacher).resolve()),
        temperature=settings.temperature,
        alpha=settings.alpha,
        hidden_weight=settings.hidden_weight,
        **({"teacher_layers_matched": layers} if settings.hidden_weight > 0 else {}),
        labelled_inputs=data.train_count,
        unlabeled_inputs=len(features) - len(data.train_features),
    )
    run_dir, reporter = start_run(engine, settings, title=f"distill {task.name}")
    trainable, total = count_parameters(student)
    reporter.note(
        f"{task.name}: student {settings.student} ({total:,} parameters; the teacher has "
        f"{count_parameters(unwrap(teacher.model))[1]:,}); {len(features)} inputs, {data.train_count} labelled"
    )
    saved_settings = {**settings_to_dict(settings), "max_length": max_length, **dataclasses.asdict(data.options)}
    info = {
        "bertkit_version": __version__,
        "task": task.name,
        "labels": teacher.labels,
        "base_model": str(Path(settings.teacher).resolve()),
        "max_length": max_length,
        "strategy": data.strategy,
        "settings": saved_settings,
        "distillation": described,
    }
    for key in ("text_pairs",):
        if key in teacher.info:
            info[key] = teacher.info[key]

    def evaluate(_) -> dict:
        outputs = engine.run_model(student, data.eval_features, settings.eval_batch_size, pad, task.outputs)
        predictions = task.decode(data.eval_examples, data.eval_features, outputs, teacher.labels, data.options)
        return task.metrics(data.eval_examples, predictions, teacher.labels)

    def save_best(_, metrics: dict) -> None:
        card = model_card(task.name, task.pipeline_tag, teacher.labels, saved_settings, metrics, settings.teacher)
        save_model(
            student, tokenizer, run_dir / "model", {**info, "tuned": {}, "metrics": scalar_metrics(metrics)}, card
        )

    metric = task.main_metric(teacher.labels)
    result = engine.fit(
        Distilling(student, settings.temperature, settings.alpha, settings.hidden_weight, teacher_config.hidden_size),
        features,
        run_dir=run_dir,
        pad_token_id=pad,
        evaluate=evaluate if data.eval_examples is not None else None,
        main_metric=metric,
        on_best=save_best,
        reporter=reporter,
    )
    summary = {
        **result.final_metrics,
        "best_step": result.state.best_step,
        "steps": result.state.step,
        "student_parameters": total,
        "train_seconds": round(result.state.train_seconds, 3),
    }
    finish_run(
        engine, run_dir, summary, result.state.history, metric, f"distill {task.name}: final evaluation", reporter
    )
    return summary
