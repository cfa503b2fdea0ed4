"""`bertkit embed`: sentence vectors, contextual word vectors, and their cosine similarities.

    from bertkit.embed import embed
    from bertkit.settings import EmbedSettings
    embed(EmbedSettings(model="runs/base/model", inputs=["sentences.txt"], output=Path("vectors.npy")))
    embed(EmbedSettings(model=MODEL_DIR, inputs=["I ate an apple", "apple released a new phone"],
                        word="apple", similarity=True, plot=Path("apple.png")))

A sentence vector is the [CLS] vector or the mask-aware mean of the token vectors of one layer.
With `word`, each sentence contributes the contextual vector of that word instead (the mean of
its WordPieces at its first occurrence): BERT gives the same word different vectors in
different contexts, which the similarity matrix shows.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from torch import nn

from bertkit.data.writers import write_records
from bertkit.engine import Engine
from bertkit.engine.setup import EngineOptions
from bertkit.errors import BertkitError
from bertkit.modeling.build import load_model
from bertkit.modeling.loading import BERTKIT_FILE, load_pretrained, load_tokenizer, read_bertkit_file, resolve_model_dir
from bertkit.modeling.strategies import unwrap
from bertkit.report import console
from bertkit.settings import EmbedSettings
from bertkit.settings.options import options_from
from bertkit.tasks import TASKS


class LayerOutput(nn.Module):
    """Returns one layer's token vectors: `layer` -1 is what a task head reads, 0 the embeddings."""

    def __init__(self, encoder: nn.Module, layer: int):
        super().__init__()
        self.encoder = encoder
        self.layer = layer

    def forward(self, **inputs) -> dict:
        if self.layer == -1:
            return {"token_vectors": self.encoder(**inputs).last_hidden_state}
        return {"token_vectors": self.encoder(**inputs, output_hidden_states=True).hidden_states[self.layer]}


def embed(settings: EmbedSettings) -> np.ndarray:
    """Compute the vectors; write them, print the similarity table and draw the heat map as asked."""
    settings.validate()
    model_dir = resolve_model_dir(settings.model)
    texts = read_inputs(settings)
    tokenizer = load_tokenizer(model_dir)
    encoder = load_encoder(model_dir, allow_pickle=settings.allow_pickle, trust_remote_code=settings.trust_remote_code)
    layers = encoder.config.num_hidden_layers
    if not -(layers + 1) <= settings.layer <= layers:
        raise BertkitError(
            f"--layer is {settings.layer}; this model has layers 0 (embeddings) to {layers} "
            "(negative numbers count from the last)"
        )
    encoded = tokenizer(
        texts, truncation=True, max_length=settings.max_length, return_offsets_mapping=True, verbose=False
    )
    features = [{"input_ids": ids, "index": i} for i, ids in enumerate(encoded["input_ids"])]
    engine = Engine(options_from(EngineOptions, settings))
    encoder.to(engine.accelerator.device)
    outputs = engine.run_model(
        LayerOutput(encoder, settings.layer),
        features,
        settings.batch_size,
        tokenizer.pad_token_id,
        outputs={"token_vectors": True},
    )
    vectors = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for index, output in outputs:
        tokens = output["token_vectors"]
        if settings.word:
            vectors[index] = word_vector(tokens, encoded["offset_mapping"][index], texts[index], settings.word, index)
        else:
            vectors[index] = tokens[0] if settings.pooling == "cls" else tokens.mean(axis=0)
    if settings.normalize:
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    if settings.output:
        write_vectors(settings.output, texts, vectors, settings.word)
        console.print(f"{len(texts)} vectors of size {vectors.shape[1]} written to {settings.output}")
    if settings.similarity:
        matrix = cosine_matrix(vectors)
        show_similarity(matrix, texts, settings.word)
        if settings.plot:
            plot_similarity(matrix, texts, settings.word, settings.plot)
            console.print(f"heat map written to {settings.plot}")
    return vectors


def read_inputs(settings: EmbedSettings) -> list[str]:
    """One input naming a file (or -) is read as a file of texts; otherwise the inputs are the texts."""
    from bertkit.tasks.text import TextColumns, plain_label, read_text_examples

    inputs = settings.inputs
    if len(inputs) == 1 and (inputs[0] == "-" or Path(inputs[0]).is_file()):
        examples = read_text_examples(inputs[0], TextColumns(text_column=settings.text_column), False, plain_label)
        return [example.text for example in examples]
    return [text.strip() for text in inputs]


def load_encoder(model_dir: str, **load_options) -> nn.Module:
    """The encoder of a plain model directory, or of a fine-tuned one with its strategy applied."""
    if (Path(model_dir) / BERTKIT_FILE).is_file():
        info = read_bertkit_file(model_dir)
        if info.get("task") in TASKS:
            return unwrap(load_model(TASKS[info["task"]], model_dir, info, **load_options)).base_model
    return load_pretrained("AutoModel", model_dir, **load_options).eval()


def word_vector(tokens: np.ndarray, offsets: list, text: str, word: str, index: int) -> np.ndarray:
    """The mean of the word's WordPiece vectors at its first whole-word occurrence in `text`."""
    match = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE)
    if match is None:
        raise BertkitError(
            f"input {index + 1} ('{shorten(text)}'): the word '{word}' does not occur in it; "
            "give sentences that contain --word"
        )
    pieces = [
        i
        for i, (start, end) in enumerate(offsets[: len(tokens)])
        if end > start and start < match.end() and end > match.start()
    ]
    if not pieces:
        raise BertkitError(f"input {index + 1}: the word '{word}' lies beyond --max-length; raise --max-length")
    return tokens[pieces].mean(axis=0)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T


def write_vectors(path: Path, texts: list[str], vectors: np.ndarray, word: str | None) -> None:
    """.npy: a float32 matrix, one row per input; .jsonl: one {text, [word,] vector} record per input."""
    if path.suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        temporary = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(buffer.getvalue())
        os.replace(temporary, path)
        return
    extra = {"word": word} if word else {}
    write_records(
        path,
        ({"text": text, **extra, "vector": [round(float(v), 6) for v in row]} for text, row in zip(texts, vectors)),
        fmt="jsonl",
    )


def show_similarity(matrix: np.ndarray, texts: list[str], word: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    what = f"'{word}' in context" if word else "sentences"
    table = Table(title=f"cosine similarity of {what}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("input")
    for number in range(1, len(texts) + 1):
        table.add_column(str(number), justify="right")
    for number, (text, row) in enumerate(zip(texts, matrix), start=1):
        table.add_row(str(number), shorten(text), *(f"{value:.3f}" for value in row))
    Console(highlight=False).print(table)


def plot_similarity(matrix: np.ndarray, texts: list[str], word: str | None, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.7 * len(texts) + 3)
    figure, axis = plt.subplots(figsize=(size + 3, size), dpi=100)
    image = axis.imshow(matrix, cmap="viridis", vmin=min(0.0, float(matrix.min())), vmax=1.0)
    labels = [f"{i}. {shorten(text, 40)}" for i, text in enumerate(texts, start=1)]
    axis.set_xticks(range(len(texts)), [str(i) for i in range(1, len(texts) + 1)])
    axis.set_yticks(range(len(texts)), labels)
    for row in range(len(texts)):
        for column in range(len(texts)):
            value = matrix[row, column]
            axis.text(column, row, f"{value:.2f}", ha="center", va="center", color="black" if value > 0.6 else "white")
    figure.colorbar(image, ax=axis, label="cosine similarity")
    axis.set_title(f"'{word}' in context" if word else "sentence similarity")
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, bbox_inches="tight")  # keeps the long sentence labels in the picture
    plt.close(figure)


def shorten(text: str, width: int = 50) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
