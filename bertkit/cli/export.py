"""`bertkit export`: the flags of ExportSettings -> `bertkit.deploy.export.export_model`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import ExportSettings


def run(settings: ExportSettings) -> None:
    from bertkit.deploy.export import export_model

    export_model(settings)


settings_command(
    "export",
    ExportSettings,
    run,
    """Export a fine-tuned model to ONNX (fp32 or int8) for ONNX Runtime.

```
bertkit export --model runs/sentiment/model --output runs/sentiment/onnx
bertkit export --model runs/sentiment/model --output runs/sentiment/onnx-int8 --quantize int8
```

Any task and strategy (LoRA is merged into the weights). The export checks itself against
PyTorch and stops if they disagree. OUTPUT holds model.onnx, config.json, the tokenizer,
bertkit.json and README.md; predict, evaluate and serve take it as --model.
""",
)
