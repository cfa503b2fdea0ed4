"""Experiment tracking through Accelerate's trackers: ``--report-to tensorboard,mlflow`` (default none).

Everything stays inside the run directory, under OUTPUT/tracking:
- tensorboard: event files in OUTPUT/tracking/COMMAND/  (``tensorboard --logdir OUTPUT/tracking``)
- mlflow: a local file store at ``file:OUTPUT/tracking/mlruns``, experiment COMMAND, run named after
  OUTPUT (``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri file:OUTPUT/tracking/mlruns``);
  MLFLOW_TRACKING_URI wins when set

What is logged: the resolved settings as hyper-parameters, then every line the run writes to
log.jsonl: training (``train/loss``, ``train/lr``, ...) and evaluation metrics (``eval/NAME``) at
their step. Accelerate writes from the main process only (``init_trackers``/``log`` are no-ops elsewhere).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError

# --report-to name -> (module that must be importable, what to install)
TRACKERS = {
    "tensorboard": ("tensorboard", "'bertkit[tracking]' (tensorboard)"),
    "mlflow": ("mlflow", "'bertkit[tracking]' (mlflow-skinny)"),
}
SKIPPED_KEYS = ("step", "time")  # log.jsonl bookkeeping, not metrics


def tracker_names(report_to: str | None) -> list[str]:
    """The trackers --report-to asks for ([] for none), checked to be known and installed."""
    names = [name.strip().lower() for name in (report_to or "none").split(",") if name.strip()]
    if names in ([], ["none"]):
        return []
    if "none" in names:
        raise BertkitError(f"--report-to is '{report_to}'; 'none' cannot be combined with trackers")
    for name in names:
        if name not in TRACKERS:
            raise BertkitError(
                f"--report-to names '{name}'; choose from {', '.join(TRACKERS)} or none (several comma-separated)"
            )
        module, package = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise BertkitError(f"--report-to {name}: the {module} package is not installed; pip install {package}")
    return list(dict.fromkeys(names))


def tracking_dir(output: Any) -> Path:
    return Path(output) / "tracking"


def accelerator_options(settings) -> dict:
    """Keyword arguments of `Accelerator` for --report-to (none for settings without it, e.g. predict)."""
    names = tracker_names(getattr(settings, "report_to", None))
    if not names:
        return {}
    return {"log_with": names, "project_dir": str(tracking_dir(settings.output))}


def hyperparameters(settings) -> dict:
    """The resolved settings as values every tracker takes (TensorBoard's hparams refuse None and lists)."""
    from bertkit.settings import settings_to_dict

    values = {}
    for key, value in settings_to_dict(settings).items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(item) for item in value)
        values[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return values


class TrackedReporter:
    """A `Reporter` whose step and evaluation lines also go to the trackers; everything else passes through."""

    def __init__(self, reporter, accelerator):
        self._reporter = reporter
        self._accelerator = accelerator

    def __getattr__(self, name: str):
        return getattr(self._reporter, name)

    def log_step(self, step: int, *args, **kwargs) -> None:
        self._reporter.log_step(step, *args, **kwargs)
        self._log("train", self._reporter.last, step)

    def log_eval(self, step: int, metrics: dict, *args, **kwargs) -> None:
        self._reporter.log_eval(step, metrics, *args, **kwargs)
        self._log("eval", metrics, step)

    def _log(self, prefix: str, values: dict, step: int) -> None:
        scalars = {
            f"{prefix}/{key}": value
            for key, value in values.items()
            if key not in SKIPPED_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        if scalars:
            self._accelerator.log(scalars, step=step)


def track(reporter, accelerator, settings, run_dir: Path, command: str):
    """Start the --report-to trackers (hyper-parameters = the resolved settings); returns the reporter to use.

    `accelerator` must have been made with `accelerator_options(settings)`; `end_training()` closes the trackers.
    """
    names = tracker_names(getattr(settings, "report_to", None))
    if not names:
        return reporter
    init_kwargs: dict = {}
    if "mlflow" in names:
        if accelerator.is_main_process and not os.environ.get("MLFLOW_TRACKING_URI"):
            import mlflow

            # MLflow 3 keeps the file store only on request; it needs no server or database, which suits a run
            # directory that must stay self-contained and offline.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            mlflow.set_tracking_uri((tracking_dir(run_dir) / "mlruns").resolve().as_uri())
        init_kwargs["mlflow"] = {"run_name": Path(run_dir).name}
    accelerator.init_trackers(command, config=hyperparameters(settings), init_kwargs=init_kwargs)
    return TrackedReporter(reporter, accelerator)
