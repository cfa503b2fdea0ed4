"""The task registry: `--task NAME` -> an instance of a `bertkit.tasks.base.Task` subclass.

A new task is a new module here and one line in `REGISTERED`; its options dataclass becomes
flags of finetune/predict/evaluate (see `bertkit.settings.commands`), and nothing else in
bertkit names it.
"""

from __future__ import annotations

from bertkit.errors import BertkitError
from bertkit.tasks.base import Task
from bertkit.tasks.classification import CLASSIFICATION, NLI
from bertkit.tasks.multilabel import MULTILABEL
from bertkit.tasks.qa import QA
from bertkit.tasks.regression import REGRESSION
from bertkit.tasks.tagging import TAGGING

REGISTERED: tuple[Task, ...] = (CLASSIFICATION, NLI, REGRESSION, MULTILABEL, TAGGING, QA)
TASKS: dict[str, Task] = {task.name: task for task in REGISTERED}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise BertkitError(f"unknown task '{name}'; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def option_types() -> list[type]:
    """Every registered task's options dataclass (a type shared by several tasks comes once)."""
    return list(dict.fromkeys(task.options_type for task in TASKS.values()))
