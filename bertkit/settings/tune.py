"""``bertkit tune``: the settings of a hyper-parameter search, every finetune option plus the search's own."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bertkit.errors import BertkitError
from bertkit.settings.commands import FinetuneSettings  # with every task's options
from bertkit.settings.options import opt, parse_duration


@dataclass
class TuneSettings(FinetuneSettings):
    """``bertkit tune``: search the finetune settings that score best on --eval; every finetune option given is
    a fixed setting of every trial."""

    output: Optional[Path] = opt(
        None,
        "Study directory: study.db, trials/NNNN (one finetune run per trial), best.yaml, trials.csv, plots.",
        short="-o",
    )
    trials: int = opt(20, "Trials to finish (complete, pruned or crashed), counted over every run of the study.")
    time_budget: str = opt(
        "",
        "Start no new trial after this long (e.g. 30m, 2h; counted from this invocation; a trial under way "
        "runs to its end). Trials themselves train by --epochs.",
    )
    space: Optional[Path] = opt(
        None,
        "YAML file of the search space (replaces the task's default space; see DIR/space.yaml for the format).",
    )
    jobs: int = opt(1, "Trial processes to run at once on this machine, all on the same study storage.")
    seeds: int = opt(3, "Confirmation: retrain the best settings and the defaults with this many seeds each (0: skip).")
    storage: str = opt(
        "",
        "Optuna storage of the study: an RDB URL (sqlite:///..., postgresql://..., mysql://...) or "
        "journal:FILE; default sqlite:///OUTPUT/study.db. Processes or machines given the same storage share "
        "the study.",
    )
    study_name: str = opt("bertkit-tune", "Name of the study inside the storage.")
    prune: bool = opt(True, "Stop trials early whose evaluations fall below the median of earlier trials.")
    test: Optional[Path] = opt(
        None, "Labelled file the confirmation runs are also scored on (never used by the search)."
    )

    def validate(self) -> None:
        if self.output is None:
            raise BertkitError("no study directory given; pass --output DIR")
        if self.eval is None:
            raise BertkitError("tune compares trials on held-out data; pass --eval FILE")
        for name in ("trials", "jobs"):
            if getattr(self, name) < 1:
                raise BertkitError(f"--{name} is {getattr(self, name)}; it must be at least 1")
        if self.num_processes > 1 or self.num_machines > 1:
            raise BertkitError(
                "tune trains each trial in one process; drop --num-processes/--num-machines and use --jobs to run "
                "trials side by side, or --storage to share the study between machines"
            )
        if self.seeds < 0:
            raise BertkitError(f"--seeds is {self.seeds}; give 0 (no confirmation) or more")
        if self.time_budget:
            parse_duration(self.time_budget)
        if self.space is not None and not self.space.is_file():
            raise BertkitError(f"{self.space}: space file not found; check the path given to --space")
        self.trial_settings(self.output / "trials" / "check").validate()

    def trial_settings(self, output: Path, **values) -> FinetuneSettings:
        """The finetune settings of one run: the fixed settings, then `values` (a trial's parameters)."""
        fixed = {f.name: getattr(self, f.name) for f in dataclasses.fields(FinetuneSettings)}
        fixed.update(output=output, overwrite=True, resume=False, time_budget="", config=None)
        return FinetuneSettings(**{**fixed, **values})
