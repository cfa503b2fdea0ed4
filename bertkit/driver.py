"""The beginning and the end that every training run shares (finetune and pretrain), so they cannot drift.

engine = start_engine(settings)                                 # Accelerate, from the settings' engine options
run_dir, reporter = start_run(engine, settings, title="...")    # the main process alone creates OUTPUT/
result = engine.fit(..., reporter=reporter, resume_hint=resume_hint())
finish_run(engine, run_dir, summary, result.state.history, "accuracy", "...", reporter)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bertkit.data.writers import write_json
from bertkit.engine import Engine
from bertkit.engine.setup import EngineOptions
from bertkit.report import Reporter, metrics_table, plot_curves, print_table
from bertkit.rundir import prepare_run_dir, resume_command
from bertkit.settings.options import options_from, save_settings
from bertkit.tracking import accelerator_options, track


def start_engine(settings: Any) -> Engine:
    return Engine(options_from(EngineOptions, settings), **accelerator_options(settings))


def start_run(engine: Engine, settings: Any, title: str) -> tuple[Path, Reporter]:
    """Create (or reopen, under --resume) the run directory and its settings.yaml on the main process only;
    every process gets the path and a reporter (which writes only on the main process)."""

    def create() -> Path:
        run_dir = prepare_run_dir(settings.output, settings.overwrite, settings.resume)
        save_settings(settings, run_dir / "settings.yaml")
        return run_dir

    engine.on_main(create)
    engine.accelerator.wait_for_everyone()  # the directory exists before any process writes into it
    run_dir = Path(settings.output)
    reporter = Reporter(run_dir / "log.jsonl", enabled=engine.is_main, title=title)
    return run_dir, track(reporter, engine.accelerator, settings, run_dir, title.split()[0])  # --report-to


def resume_hint() -> str:
    """What to type to continue an interrupted run."""
    return resume_command()


def finish_run(
    engine: Engine,
    run_dir: Path,
    summary: dict,
    history: list,
    curve_metric: str,
    title: str,
    reporter: Reporter,
    extra_tables: tuple = (),
) -> None:
    """metrics.json, curves.png and the summary table, written by the main process; then the processes part."""
    if engine.is_main:
        write_json(run_dir / "metrics.json", {**summary, "history": history})
        plot_curves(run_dir / "log.jsonl", run_dir / "curves.png", curve_metric)
        print_table(metrics_table(scalar_metrics(summary), title=title))
        for table in extra_tables:
            if table is not None:
                print_table(table)
        reporter.note(f"Model written to {run_dir / 'model'}")
    engine.accelerator.end_training()


def scalar_metrics(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float))}
