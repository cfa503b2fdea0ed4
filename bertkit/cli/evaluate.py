"""`bertkit evaluate`: the flags of EvaluateSettings -> `bertkit.inference.evaluate_file`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import EvaluateSettings


def run(settings: EvaluateSettings) -> None:
    from bertkit.inference import evaluate_file

    evaluate_file(settings)


settings_command(
    "evaluate",
    EvaluateSettings,
    run,
    """Score a fine-tuned model on a labelled file.

```
bertkit evaluate --model runs/sentiment/model test.tsv --output metrics.json
bertkit evaluate --model runs/qa/model dev-v1.1.json --output metrics.json
```

Prints the task's metrics (for classification: accuracy, macro-F1 and a per-class table; for
regression: Pearson, Spearman and MSE; for multilabel: micro/macro/samples F1, exact match and a
per-label table, at the tuned threshold unless --threshold is given; for tagging: token accuracy
and, for BIO/BIOES tags, entity precision/recall/F1 and a per-type table).
""",
)
