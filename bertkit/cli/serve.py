"""`bertkit serve`: the flags of ServeSettings -> `bertkit.deploy.serve.serve`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import ServeSettings


def run(settings: ServeSettings) -> None:
    from bertkit.deploy.serve import serve

    serve(settings)


settings_command(
    "serve",
    ServeSettings,
    run,
    """Serve a model over HTTP: POST /predict, GET /health, docs at /docs.

```
bertkit serve --model runs/sentiment/onnx --port 8000
curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"inputs": [{"text": "a fine film"}]}'
```

Each input is a predict input record ({"text": ...}, {"text": ..., "text_pair": ...},
{"tokens": [...]}, {"question": ..., "context": ...}); the answer holds the records predict
writes, in order. Requests arriving together run as one batch (--max-batch-size, --max-wait-ms).
""",
)
