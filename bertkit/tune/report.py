"""What `bertkit tune` shows and leaves behind: the live progress, best.yaml, trials.csv, plots, the confirmation."""

from __future__ import annotations

import statistics
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bertkit.data.writers import write_json
from bertkit.errors import BertkitError
from bertkit.settings import save_settings
from bertkit.settings.tune import TuneSettings
from bertkit.tune.study import counted, output_to, remove_checkpoints, running


def best_trial(study: Any) -> Any | None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


class LiveView:
    """Trial n of N, the best score so far and the time left, redrawn while the workers run (a thread that
    reads the study storage); a line per finished trial when the output is not a terminal."""

    def __init__(self, study: Any, settings: TuneSettings, deadline: float):
        self.study, self.settings, self.deadline = study, settings, deadline
        self.console = Console(file=sys.stderr, highlight=False)  # the real stderr: trials print to their logs
        self.started = time.time()
        self.stop = threading.Event()
        self.seen: set[int] = set()

    def __enter__(self) -> LiveView:
        self.live = Live(
            self.render(),
            console=self.console,
            refresh_per_second=2,
            transient=True,  # the lines of the finished trials stay; the status line goes
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.live.start()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.update()
        self.live.stop()

    def poll(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self.update()
            except Exception:  # a busy database: draw again next second
                continue

    def update(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        for t in trials:
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                self.live.console.print(trial_line(t))
        self.live.update(self.render(trials))

    def render(self, trials: list | None = None) -> str:
        trials = trials or []
        elapsed = time.time() - self.started
        left = f"{max(0.0, self.deadline - time.time()) / 60:.1f} min left" if self.deadline else "no time limit"
        return (
            f"[bold]tune[/]: trial {counted(trials)} of {self.settings.trials} done, {running(trials)} running; "
            f"best {best_of(trials)}; {elapsed / 60:.1f} min, {left}"
        )


def best_of(trials: list) -> str:
    scored = [t for t in trials if t.value is not None]
    if not scored:
        return "-"
    top = max(scored, key=lambda t: t.value)
    return f"{top.user_attrs.get('metric', 'score')} {top.value:.4f} (trial {top.number})"


def trial_line(t: Any) -> str:
    state = t.state.name.lower()
    if t.value is not None:
        state += f" {t.user_attrs.get('metric', 'score')} {t.value:.4f}"
    reason = t.user_attrs.get("fail_reason") or t.user_attrs.get("interrupted")
    if reason:
        state += f": {reason}"
    elif t.intermediate_values and t.value is None:
        last = max(t.intermediate_values)
        state += f" at evaluation {last} ({t.intermediate_values[last]:.4f})"
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
    return f"trial {t.number}: {state}  [dim]{params}[/]"


def write_outputs(study: Any, settings: TuneSettings) -> Any:
    """trials.csv, the plots and best.yaml; returns the best trial."""
    output = Path(settings.output)
    study.trials_dataframe().to_csv(output / "trials.csv", index=False)
    write_plots(study, output)
    best = best_trial(study)
    if best is None:
        raise BertkitError(
            f"{output}: no trial completed; see the fail_reason column of {output / 'trials.csv'} "
            f"and the logs in {output / 'trials'}"
        )
    best_settings = settings.trial_settings(output / "best", **best.user_attrs["values"])
    save_settings(best_settings, output / "best.yaml")
    return best


def write_plots(study: Any, output: Path) -> list[str]:
    """Optimisation history and (from 2 completed trials) parameter importances, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots

    written = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    drawings = {"history.png": plots.plot_optimization_history}
    if len(complete) >= 2 and any(t.params for t in complete):
        drawings["importances.png"] = plots.plot_param_importances
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. "importances will be equal" for trials that tie
        for name, draw in drawings.items():
            try:
                axes = draw(study)
            except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. every completed trial scored the same
                continue
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.savefig(output / name, dpi=120, bbox_inches="tight")
            plt.close(figure)
            written.append(name)
    return written


def confirm(settings: TuneSettings, values: dict, metric: str) -> dict:
    """Retrain the best settings and the defaults with --seeds seeds each (seeds the search did not use);
    mean and standard deviation of each, on --eval and on --test when given. Finished runs are reused."""
    from bertkit.finetune import finetune

    folder = Path(settings.output) / "confirm"
    folder.mkdir(parents=True, exist_ok=True)
    scores: dict[str, dict[str, list[float]]] = {}
    for name, chosen in (("tuned", values), ("default", {})):
        for offset in range(1, settings.seeds + 1):
            seed = settings.seed + offset
            run_dir = folder / f"{name}-seed{seed}"
            done = run_dir / "metrics.json"
            if not done.is_file():
                with output_to(folder / f"{name}-seed{seed}.log"):
                    finetune(settings.trial_settings(run_dir, **{**chosen, "seed": seed}))
                remove_checkpoints(run_dir)
            for split, score in run_scores(settings, run_dir, metric).items():
                scores.setdefault(split, {}).setdefault(name, []).append(score)
    result = {"metric": metric, "seeds": [settings.seed + offset for offset in range(1, settings.seeds + 1)]}
    for split, by_name in scores.items():
        result[split] = {name: summarise(runs) for name, runs in by_name.items()}
        tuned, default = result[split]["tuned"]["mean"], result[split]["default"]["mean"]
        result[split]["gain"] = round(tuned - default, 6)
    return result


def run_scores(settings: TuneSettings, run_dir: Path, metric: str) -> dict[str, float]:
    """The run's best score on --eval and, with --test, the saved model's score on it."""
    import json

    scores = {"eval": float(json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))[metric])}
    if settings.test is not None:
        target = run_dir / "test_metrics.json"
        if not target.is_file():
            from bertkit.inference import evaluate_file
            from bertkit.settings import EvaluateSettings

            with output_to(run_dir.parent / f"{run_dir.name}.log"):
                evaluate_file(EvaluateSettings(input=settings.test, model=str(run_dir / "model"), output=target))
        scores["test"] = float(json.loads(target.read_text(encoding="utf-8"))[metric])
    return scores


def summarise(runs: list[float]) -> dict:
    sd = statistics.stdev(runs) if len(runs) > 1 else 0.0
    return {"mean": round(statistics.fmean(runs), 6), "sd": round(sd, 6), "runs": [round(r, 6) for r in runs]}


def confirmation_table(result: dict) -> Table:
    table = Table(title=f"Confirmation: {result['metric']}, seeds {result['seeds']}", title_justify="left")
    for column in ("data", "tuned", "defaults", "gain"):
        table.add_column(column, justify="left" if column == "data" else "right")
    for split in ("eval", "test"):
        if split in result:
            row = result[split]
            table.add_row(
                split,
                f"{row['tuned']['mean']:.4f} ± {row['tuned']['sd']:.4f}",
                f"{row['default']['mean']:.4f} ± {row['default']['sd']:.4f}",
                f"{row['gain']:+.4f}",
            )
    return table


def write_summary(path: Path, study: Any, best: Any, confirmation: dict | None, seconds: float) -> None:
    write_json(
        path,
        {
            "metric": best.user_attrs.get("metric"),
            "best_trial": best.number,
            "best_value": best.value,
            "best_settings": best.user_attrs["values"],
            "trials": state_counts(study),
            "search_seconds": round(seconds, 1),
            "confirmation": confirmation,
        },
    )


def state_counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts
