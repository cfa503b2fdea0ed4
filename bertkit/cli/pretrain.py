"""`bertkit pretrain`: the flags of PretrainSettings -> `bertkit.pretrain.pretrain`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import PretrainSettings


def run(settings: PretrainSettings) -> None:
    from bertkit.pretrain import pretrain

    pretrain(settings)


settings_command(
    "pretrain",
    PretrainSettings,
    run,
    """Pretrain a BERT encoder on raw text with masked LM (--recipe bert or --nsp add next-sentence prediction).

```
bertkit pretrain corpus/*.txt --output runs/base --size mini --max-seq-length 128 --max-steps 20000
bertkit pretrain corpus.txt --output runs/mine --model runs/base/model --lr 1e-4
bertkit pretrain corpus.txt --output runs/peek --dump-instances 20 instances.jsonl --max-steps 0
bertkit pretrain corpus.txt --output runs/2h --size small --time-budget 2h --eval-every 500
bertkit pretrain corpus.txt --output runs/electra --objective electra --time-budget 30m
```

Documents are blank-line separated blocks (or one per line / per file); lines are split
into sentences. Without --model or --tokenizer a WordPiece tokenizer is trained on the
corpus. Writes OUTPUT/model (loads as BertForPreTraining / BertForMaskedLM and as --model
of bertkit finetune), metrics.json, log.jsonl, settings.yaml, curves.png and cache/.
With --objective electra, OUTPUT/model is a plain BertModel (the discriminator) and
OUTPUT/model/generator holds the generator that a continued run picks up.
""",
)
