"""`bertkit embed`: the flags of EmbedSettings -> `bertkit.embed.embed`."""

from __future__ import annotations

from bertkit.cli.app import settings_command
from bertkit.settings import EmbedSettings


def run(settings: EmbedSettings) -> None:
    from bertkit.embed import embed

    embed(settings)


settings_command(
    "embed",
    EmbedSettings,
    run,
    """Sentence vectors or a word's contextual vectors from any model directory.

```
bertkit embed --model MODEL_DIR sentences.txt --output vectors.npy --pooling mean
bertkit embed --model MODEL_DIR --similarity --word apple "I ate an apple" "apple released a new phone" --plot apple.png
```

Vectors go to .npy or .jsonl; --similarity prints their cosine similarity matrix.
""",
)
