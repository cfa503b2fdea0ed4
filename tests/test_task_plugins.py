"""Tasks are plug-ins: each subclasses `Task`, defines the few members that are its own and owns its options,
and nothing outside bertkit/tasks/ names a task or a task's model outputs (so a new task is its module and one
registry line)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from bertkit.tasks import REGISTERED, TASKS
from bertkit.tasks.base import Task, required_members

PACKAGE = Path(__file__).resolve().parent.parent / "bertkit"
MEMBERS = sorted(name for name in vars(Task) if not name.startswith("_")) + sorted(Task.__annotations__)


def test_the_required_members_are_few_and_the_rest_have_defaults():
    required = required_members()
    assert 0 < len(required) <= 10, required
    assert {"name", "options_type", "read", "encode", "decode"} <= set(required)
    defaulted = [name for name in MEMBERS if name not in required]
    assert {"stream", "configure", "metrics_table", "tuned_options", "write_outputs", "input_record"} <= set(defaulted)
    assert all(hasattr(Task, name) for name in defaulted)


def test_a_task_lacking_a_required_member_cannot_be_made():
    @dataclasses.dataclass
    class Incomplete(Task):
        name: str = "incomplete"
        options_type: type = object

        def read(self, path, options, labelled):
            return []

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


@pytest.mark.parametrize("task", REGISTERED, ids=lambda task: task.name)
def test_every_task_defines_the_required_members(task):
    assert isinstance(task, Task)
    below_task = type(task).__mro__[: type(task).__mro__.index(Task)]
    own = {name for cls in below_task for name in vars(cls)}
    own |= set(vars(task))  # dataclass fields set on the instance (name, options_type)
    missing = [name for name in required_members() if name not in own]
    assert not missing, f"{task.name} lacks {missing}"
    assert isinstance(task.name, str) and task.name
    assert dataclasses.is_dataclass(task.options_type)
    assert all(f.metadata.get("help") for f in dataclasses.fields(task.options_type))  # each option is a flag
    assert set(task.outputs) and all(isinstance(per_token, bool) for per_token in task.outputs.values())
    # the record export checks and serve build from two texts: a predict input of this task
    record = task.input_record(0, "Paris is big .", "Rome is old .")
    assert isinstance(record, dict) and {"text", "tokens", "question"} & set(record), (task.name, record)


def test_every_task_option_is_a_flag_of_the_commands_that_take_it():
    from bertkit.settings import EvaluateSettings, FinetuneSettings, PredictSettings

    commands = {"finetune": FinetuneSettings, "predict": PredictSettings, "evaluate": EvaluateSettings}
    for task in TASKS.values():
        for f in dataclasses.fields(task.options_type):
            for command, settings in commands.items():
                taken = command in f.metadata["commands"]
                assert (f.name in {g.name for g in dataclasses.fields(settings)}) == taken, (task.name, f.name, command)


def test_nothing_outside_tasks_names_a_task_or_its_outputs():
    names = [re.escape(f'"{task.name}"') for task in REGISTERED]
    outputs = [re.escape(name) for task in REGISTERED for name in task.outputs if name != "logits"]
    pattern = re.compile("|".join(names + outputs + [r"hasattr\(task", r"getattr\(task"]))
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "tasks" in path.relative_to(PACKAGE).parts:
            continue
        code = "\n".join(
            line
            for line in path.read_text().splitlines()
            if not line.lstrip().startswith(("#", "finetune(", "settings = "))
        )
        offenders += [f"{path.relative_to(PACKAGE)}: {match}" for match in pattern.findall(code)]
    assert not offenders
