"""`bertkit predict`: the flags of PredictSettings -> `bertkit.inference.predict_file`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import PredictSettings


def run(settings: PredictSettings) -> None:
    from bertkit.inference import predict_file

    predict_file(settings)


settings_command(
    "predict",
    PredictSettings,
    run,
    """Predict labels for every input of a file, in input order.

```
bertkit predict --model runs/sentiment/model inputs.txt --output predictions.jsonl
cat inputs.txt | bertkit predict --model runs/sentiment/model - --output predictions.csv
bertkit predict --model runs/qa/model questions.jsonl --output answers.jsonl
```

For NLI, a txt input holds the two texts of a pair separated by a tab. For tagging, input is
CoNLL, CoNLL-U, jsonl tokens, or raw text lines (txt); `--output tags.conll` writes `word<TAB>tag` lines.
""",
)
