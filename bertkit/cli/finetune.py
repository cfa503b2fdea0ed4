"""`bertkit finetune`: the flags of FinetuneSettings (and of every task's options) -> `bertkit.finetune.finetune`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import FinetuneSettings


def run(settings: FinetuneSettings) -> None:
    from bertkit.finetune import finetune

    finetune(settings)


settings_command(
    "finetune",
    FinetuneSettings,
    run,
    """Fine-tune a model on a labelled file.

```
bertkit finetune --task classification --model MODEL_DIR --train train.tsv --eval dev.tsv --output runs/sentiment
bertkit finetune --task nli --model MODEL_DIR --train pairs.tsv --eval dev.tsv --output runs/nli --epochs 2
bertkit finetune --task regression --model MODEL_DIR --train sts.tsv --eval dev.tsv --output runs/sts
bertkit finetune --task multilabel --model MODEL_DIR --train topics.tsv --eval dev.tsv --output runs/topics --tune-threshold global
bertkit finetune --task tagging --model MODEL_DIR --train train.conllu --eval dev.conllu --tag-field upos --output runs/pos
bertkit finetune --task qa --model MODEL_DIR --train train-v1.1.json --eval dev-v1.1.json --output runs/qa
bertkit finetune --config examples/configs/sentiment.yaml --lr 3e-5
bertkit finetune --task classification --strategy adapters --adapter-size 64 --lr 1e-3 ...
bertkit finetune --task nli --strategy lora --lora-rank 8 --layer-mix weighted --pooling mean ...
```

Strategies: full (default), frozen (head only), adapters, lora; docs/guides/strategies.md says when to pick which.

Writes OUTPUT/model (a Hugging Face model directory plus bertkit.json), metrics.json,
log.jsonl, settings.yaml and curves.png.
""",
)
