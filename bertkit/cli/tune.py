"""`bertkit tune`: the flags of TuneSettings (every finetune option, plus the search's) -> `bertkit.tune.tune`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import TuneSettings


def run(settings: TuneSettings) -> None:
    from bertkit.tune import tune

    tune(settings)


settings_command(
    "tune",
    TuneSettings,
    run,
    """Search the fine-tuning settings that score best on --eval (Optuna: TPE sampler, pruning of poor trials).

```
bertkit tune --task classification --model MODEL_DIR --train train.tsv --eval dev.tsv --output runs/search --trials 20
bertkit tune --task tagging --model MODEL_DIR --train train.conllu --eval dev.conllu --tag-field upos --output runs/pos-search --time-budget 30m
bertkit tune --config search.yaml --space space.yaml --jobs 2 --seeds 3 --test test.tsv
bertkit tune ... --storage postgresql://user@host/db    # one study shared by several machines
bertkit finetune --config runs/search/best.yaml          # train the best settings again
```

Every finetune option given is a fixed setting of every trial. The same command again continues the study
(finished trials kept, an interrupted one trained again). Writes OUTPUT/study.db, trials/NNNN (one finetune
run per trial), space.yaml, best.yaml, trials.csv, history.png, importances.png, confirmation.json and tune.json.
""",
)
