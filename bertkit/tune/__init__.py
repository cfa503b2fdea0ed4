"""`bertkit tune` as a library function: an Optuna search over finetune settings, on a study store that
survives a killed process and can be shared by several processes and machines.

from bertkit.settings import TuneSettings
from bertkit.tune import tune
settings = TuneSettings(task="classification", model="models/minilm", train=Path("train.tsv"),
                        eval=Path("dev.tsv"), output=Path("runs/search"), trials=20, time_budget="30m")
tune(settings)

`space` holds the search space, `study` the storage and the trials (each a finetune run in OUTPUT/trials/NNNN),
`report` what is shown and left behind (best.yaml, trials.csv, plots, the confirmation).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bertkit.data.writers import write_json
from bertkit.report import console, print_table
from bertkit.settings.tune import TuneSettings
from bertkit.tasks import get_task


def tune(settings: TuneSettings) -> dict:
    """Run (or continue) the study in `settings.output`; returns the summary written to OUTPUT/tune.json."""
    import optuna

    from bertkit.tune import report
    from bertkit.tune import study as studies
    from bertkit.tune.space import default_space, load_space, untuned_values, write_space

    settings.validate()
    space = load_space(settings.space) if settings.space else default_space(get_task(settings.task), settings)
    output = Path(settings.output)
    if settings.overwrite:
        drop_study(settings)
    output.mkdir(parents=True, exist_ok=True)
    write_space(space, output / "space.yaml")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = studies.make_study(settings)
    queued = studies.recover(study)
    if queued:
        console.print(f"Interrupted trial(s) {', '.join(map(str, queued))} queued again")
    untuned = untuned_values(space, settings)
    if untuned is not None and not study.get_trials(deepcopy=False):
        # A new study tries the untuned run first, so that its best is never below not tuning on the eval data
        # (SICK NLI, 10 trials: the best confirmed at 79.3 on the eval split, the untuned run at 82.1).
        study.enqueue_trial(untuned, user_attrs={"untuned": True})
    started = time.time()
    deadline = started + settings.time_budget_seconds if settings.time_budget else 0.0
    with report.LiveView(study, settings, deadline):
        studies.run_workers(settings, space, deadline)
    searched = time.time() - started
    best = report.write_outputs(study, settings)
    metric = best.user_attrs["metric"]
    console.print(f"Best: trial {best.number}, {metric} {best.value:.4f}; settings in {output / 'best.yaml'}")
    confirmation = None
    if settings.seeds:
        confirmation = report.confirm(settings, best.user_attrs["values"], metric)
        write_json(output / "confirmation.json", confirmation)
        print_table(report.confirmation_table(confirmation))
    report.write_summary(output / "tune.json", study, best, confirmation, searched)
    return {"best_trial": best.number, "best_value": best.value, "metric": metric, "confirmation": confirmation}


def drop_study(settings: TuneSettings) -> None:
    """--overwrite: the study (in any storage) and the study directory go; a new study starts."""
    import optuna

    from bertkit.tune.study import open_storage

    if settings.storage:
        try:
            optuna.delete_study(study_name=settings.study_name, storage=open_storage(settings))
        except KeyError:  # no such study yet
            pass
    shutil.rmtree(settings.output, ignore_errors=True)
