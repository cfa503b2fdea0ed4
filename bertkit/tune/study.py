"""The study of `bertkit tune`: its storage, its trials (each one a finetune run) and the workers that run them.

A trial counts toward --trials once it completed, was pruned, or crashed (a `fail_reason` is recorded). A trial
whose process died (kill -9, a lost machine) or was interrupted (Ctrl-C) does not count: it is marked failed and
its parameters are queued again, so the next run of the same command trains them anew.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError, RunInterrupted
from bertkit.settings.tune import TuneSettings
from bertkit.tune.space import Param, suggest

HOST = socket.gethostname()
# RDB storages: a running trial writes a heartbeat; one silent past the grace period (its machine or process
# died) is failed by the next trial that starts anywhere, and queued again.
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120


def storage_url(settings: TuneSettings) -> str:
    return settings.storage or f"sqlite:///{(Path(settings.output) / 'study.db').resolve()}"


def open_storage(settings: TuneSettings) -> Any:
    """The study storage: an RDB URL (SQLite by default) or journal:FILE."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    url = storage_url(settings)
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        # SQLite: several processes take turns writing; they wait for the lock instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
    except (ImportError, ValueError, OSError) as error:
        raise BertkitError(f"--storage {url}: cannot open it: {str(error).splitlines()[0]}") from None
    except Exception as error:  # the database drivers' own errors (sqlalchemy.exc.*)
        raise BertkitError(
            f"--storage {url}: cannot open it ({type(error).__name__}); give sqlite:///FILE, "
            "postgresql://..., mysql://... or journal:FILE"
        ) from None


def counted(trials: list) -> int:
    """Finished trials toward --trials: complete, pruned, or crashed with a recorded reason."""
    from optuna.trial import TrialState

    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs)
        for t in trials
    )


def running(trials: list) -> int:
    from optuna.trial import TrialState

    return sum(t.state == TrialState.RUNNING for t in trials)


def alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:  # someone else's process holds that number now
        return True
    return True


def recover(study: Any) -> list[int]:
    """Fail the trials of this machine whose process is gone (kill -9), then queue every interrupted trial's
    parameters again (once); returns the numbers queued."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage  # the study's own storage object, whatever its kind
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("host") == HOST and not alive(t.user_attrs.get("pid")):
            try:
                storage.set_trial_user_attr(t._trial_id, "interrupted", "its process ended before the trial did")
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except UpdateFinishedTrialError:  # another process got there first
                continue
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    queued = []
    for t in trials:
        if t.state == TrialState.FAIL and "interrupted" in t.user_attrs and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            queued.append(t.number)
    return queued


def make_study(settings: TuneSettings, worker: int = 0) -> Any:
    """Open (or create) the study with a TPE sampler seeded per worker and per run (no two draw alike)."""
    import optuna

    storage = open_storage(settings)
    # Never at a trial's first evaluation: it may still be warming up, and its score is noise (SICK relatedness:
    # two trials pruned there at Spearman -0.25 and -0.16 finish at 0.66 and 0.67 when let run)
    pruner = optuna.pruners.NopPruner()
    if settings.prune:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    study = optuna.create_study(
        storage=storage, study_name=settings.study_name, direction="maximize", load_if_exists=True, pruner=pruner
    )
    done = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(
        seed=settings.seed + 7919 * worker + done, n_startup_trials=max(2, min(10, settings.trials // 3))
    )
    return study


@contextlib.contextmanager
def output_to(path: Path):
    """A trial's own printing (tables, notes) goes to its log file, not over the live view."""
    with open(path, "a", encoding="utf-8") as stream, contextlib.redirect_stdout(stream):
        with contextlib.redirect_stderr(stream):
            yield


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:500]


def objective(settings: TuneSettings, space: dict[str, Param]):
    """A trial: sample its settings, fine-tune, report each evaluation for pruning, return the best score."""
    import optuna

    def run_trial(trial: optuna.Trial) -> float:
        trial.set_user_attr("host", HOST)
        trial.set_user_attr("pid", os.getpid())
        values = suggest(trial, space)
        trial.set_user_attr("values", values)
        folder = Path(settings.output) / "trials"
        folder.mkdir(parents=True, exist_ok=True)
        run_dir = folder / f"{trial.number:04d}"
        trial.set_user_attr("run", str(run_dir))
        evaluations = []

        def report(metrics: dict, metric: str) -> None:
            if not evaluations:
                trial.set_user_attr("metric", metric)
            evaluations.append(float(metrics[metric]))
            trial.report(evaluations[-1], len(evaluations))  # step: the evaluation's number
            if trial.should_prune():
                raise optuna.TrialPruned(f"evaluation {len(evaluations)}: {metric} {evaluations[-1]:.4f}")

        from bertkit.finetune import finetune

        try:
            with output_to(folder / f"{trial.number:04d}.log"):
                run_settings = settings.trial_settings(run_dir, **values)
                run_settings.validate()
                summary = finetune(run_settings, on_evaluation=report)
        except optuna.TrialPruned:
            raise
        except (RunInterrupted, KeyboardInterrupt) as error:
            # The engine's hint (finetune --resume) is not how a study continues: the same tune command is.
            trial.set_user_attr("interrupted", one_line(error).split(";")[0])
            raise KeyboardInterrupt from None
        except Exception as error:  # a crash (out of memory, a diverged loss, ...): recorded, the study goes on
            trial.set_user_attr("fail_reason", one_line(error))
            raise
        finally:
            remove_checkpoints(run_dir)
            release_accelerator_memory()
        metric = trial.user_attrs["metric"]
        for key in ("steps", "best_step", "train_seconds"):
            trial.set_user_attr(key, summary.get(key))
        return float(summary[metric])

    return run_trial


def remove_checkpoints(run_dir: Path) -> None:
    """A trial is never resumed: its checkpoints (weights and optimizer state) would only fill the disk."""
    import shutil

    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)


def release_accelerator_memory() -> None:
    """After a trial (an out-of-memory one above all) the next starts with the GPU's cached memory freed."""
    import gc

    import torch

    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def work(settings: TuneSettings, space: dict[str, Param], worker: int, deadline: float) -> None:
    """Run trials until --trials are finished (counting every process's) or the time budget is spent."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are recorded in the study and shown by tune
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if settings.jobs > 1:  # several trials share the cores
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.jobs))
    study = make_study(settings, worker)
    run_trial = objective(settings, space)
    while True:
        trials = study.get_trials(deepcopy=False)
        if counted(trials) + running(trials) >= settings.trials or (deadline and time.time() >= deadline):
            return
        study.optimize(run_trial, n_trials=1, catch=(Exception,), gc_after_trial=True)


def worker_process(settings: TuneSettings, space: dict[str, Param], worker: int, deadline: float) -> None:
    """The entry of a --jobs process: quiet on the terminal (the parent draws the progress)."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            work(settings, space, worker, deadline)
        except KeyboardInterrupt:
            sys.exit(130)


def run_workers(settings: TuneSettings, space: dict[str, Param], deadline: float) -> None:
    """--jobs 1: trials in this process; more: that many processes on the same storage."""
    if settings.jobs == 1:
        work(settings, space, 0, deadline)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch threads or locks inherited
    workers = [
        context.Process(target=worker_process, args=(settings, space, number, deadline), daemon=False)
        for number in range(settings.jobs)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
