"""`bertkit distill`: the flags of DistillSettings -> `bertkit.distill.distill`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import DistillSettings


def run(settings: DistillSettings) -> None:
    from bertkit.distill import distill

    distill(settings)


settings_command(
    "distill",
    DistillSettings,
    run,
    """Train a smaller student on a fine-tuned teacher's outputs (classification, nli, regression, multilabel).

```
bertkit distill --teacher runs/mr/model --train train.tsv --eval dev.tsv --output runs/mr-student
bertkit distill --teacher runs/mr/model --student mini --train train.tsv --unlabeled reviews.txt --output runs/mr-mini
```

The student (every other layer of the teacher by default, or a new tiny/mini/small BERT) learns the
teacher's soft outputs (--temperature) mixed with the gold labels (--alpha); --unlabeled inputs are
labelled by the teacher. OUTPUT/model is an ordinary model directory for evaluate, predict, export, serve.
""",
)
