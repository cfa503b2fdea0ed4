"""What a run shows and leaves behind: progress bar, log.jsonl, summary table, curves.png, model card."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=True, highlight=False)


class Reporter:
    """Receives the engine's steps and evaluations: draws the progress bar and appends to log.jsonl."""

    def __init__(self, log_path: Path | None, enabled: bool = True, title: str = "training"):
        self.log_path = log_path
        self.enabled = enabled
        self.title = title
        self.progress: Progress | None = None
        self.task_id = None
        self.last: dict[str, Any] = {}

    def note(self, message: str) -> None:
        if self.enabled:
            console.print(message)

    def start(self, total_steps: int | None, done: int, steps_per_epoch: int) -> None:
        """`total_steps` None: not known in advance (a --time-budget run)."""
        if not self.enabled:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} ex/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.progress.start()
        self.task_id = self.progress.add_task(self.title, total=total_steps, completed=done, loss="-", speed="-")

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, completed=step)

    def log_step(
        self,
        step: int,
        epoch: float,
        loss: float,
        lr: float,
        examples_per_second: float,
        tokens_per_second: float = 0.0,
    ) -> None:
        record = {
            "step": step,
            "epoch": round(epoch, 4),
            "loss": loss,
            "lr": lr,
            "examples_per_second": round(examples_per_second, 2),
            "tokens_per_second": round(tokens_per_second, 1),
            "time": time.time(),
        }
        self.last = record
        self._append(record)
        if self.progress is not None:
            self.progress.update(self.task_id, completed=step, loss=f"{loss:.4f}", speed=f"{examples_per_second:.0f}")

    def log_eval(self, step: int, metrics: dict, improved: bool, seconds: float) -> None:
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        self._append({"step": step, "eval": shown, "eval_seconds": round(seconds, 3), "time": time.time()})
        if self.enabled:
            text = ", ".join(f"{k} {v:.4f}" for k, v in shown.items())
            console.print(f"step {step}: {text}{' (best so far)' if improved else ''}")

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def rewind(self, step: int) -> None:
        """Forget log lines after `step` (a resumed run logs those steps again)."""
        if not self.enabled or self.log_path is None or not self.log_path.is_file():
            return
        lines = self.log_path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
        from bertkit.data.writers import atomic_output

        with atomic_output(self.log_path) as stream:
            stream.writelines(kept)

    def _append(self, record: dict) -> None:
        if self.enabled and self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")


def metrics_table(metrics: dict, title: str = "Metrics") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
        elif isinstance(value, (int, str)):
            table.add_row(key, str(value))
    return table


def print_table(table: Table) -> None:
    Console(file=sys.stdout if sys.stdout.isatty() else sys.stderr, highlight=False).print(table)


def plot_curves(log_path: Path, target: Path, main_metric: str) -> bool:
    """Training loss and the evaluation metric against steps, as a PNG; False if nothing was logged."""
    if not log_path.is_file():
        return False
    steps, losses, eval_steps, values = [], [], [], []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "loss" in record:
            steps.append(record["step"])
            losses.append(record["loss"])
        elif main_metric in record.get("eval", {}):
            eval_steps.append(record["step"])
            values.append(record["eval"][main_metric])
    if not steps:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, loss_axis = plt.subplots(figsize=(7, 4), dpi=100)
    loss_axis.plot(steps, losses, color="tab:blue", label="training loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    if values:
        metric_axis = loss_axis.twinx()
        metric_axis.plot(eval_steps, values, "o-", color="tab:orange", label=f"eval {main_metric}")
        metric_axis.set_ylabel(f"eval {main_metric}", color="tab:orange")
    figure.suptitle("Training curves")
    figure.tight_layout()
    figure.savefig(target)
    plt.close(figure)
    return True


def model_card(
    task: str,
    pipeline_tag: str,
    labels: list[str] | None,
    settings: dict,
    metrics: dict,
    base_model: str,
    made_by: str | None = None,
    usage: str | None = None,
) -> str:
    """A README.md for model/, as the Hugging Face convention has it; `pipeline_tag` comes from the task."""
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {pipeline_tag}",
        "tags: [bertkit]",
        "---",
        "",
        f"# bertkit {task} model",
        "",
        made_by or f"Fine-tuned with `bertkit finetune --task {task}` from `{base_model}`.",
        "",
    ]
    if labels:
        lines += ["## Labels", "", ", ".join(f"`{label}`" for label in labels), ""]
    lines += ["## Data", ""]
    for key in ("train", "eval", "corpus", "validation"):
        if settings.get(key):
            lines.append(f"- {key}: `{settings[key]}`")
    lines += ["", "## Final evaluation", ""]
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    if scalars:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in scalars.items()]
    else:
        lines.append("No evaluation file was given.")
    lines += [
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(settings, indent=2, default=str),
        "```",
        "",
        "## Use",
        "",
        "```",
        usage or "bertkit predict --model THIS_DIR inputs.txt --output predictions.jsonl",
        "```",
        "",
    ]
    return "\n".join(lines)
