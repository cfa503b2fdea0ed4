"""Encoding a large training set through ``datasets.map`` into Arrow (``--cache-encoded`` or ``--num-workers N``).

The task's own `encode` runs on batches of examples: streamed examples (`bertkit/data/streaming.py`) a
batch at a time as they are read, or a batched map over example numbers or records (`--num-workers`
processes). Its features go to Arrow files in ``OUTPUT.encoded/`` beside the run and
are read back memory-mapped, so the token ids of millions of examples never sit in Python lists, and
a repeated or resumed run with the same examples, tokenizer and settings does not encode again.
Keys starting with "_" (metadata for decoding predictions) are left out: training never reads them.
Evaluation data stays encoded in memory, as before (it is decoded, and it is small).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bertkit.errors import BertkitError

ENCODE_BATCH = 1000  # examples per call of the task's encode
WRITE_ROWS = 10_000  # streamed features per Arrow record batch
# Settings that cannot change the encoded training features (the rest, when changed, encodes again).
IRRELEVANT = {"eval", "eval_split", "output", "num_workers", "cache_encoded", "report_to"}


def wants_arrow(settings) -> bool:
    return bool(getattr(settings, "cache_encoded", False)) or getattr(settings, "num_workers", 1) > 1


def encoded_dir(output) -> Path:
    """Beside the run, not in it: it is made before the run directory, and survives --overwrite."""
    return Path(str(output).rstrip("/") + ".encoded")


def fingerprint(task, examples, tokenizer, max_length, label2id, options, settings) -> str:
    """Changes with the examples' content, the tokenizer, the labels and every setting that shapes features."""
    from bertkit.settings import TrainingSettings, settings_to_dict

    training_only = set(TrainingSettings.__dataclass_fields__)
    shaping = {
        key: value
        for key, value in settings_to_dict(settings).items()
        if key not in IRRELEVANT and key not in training_only
    }
    digest = hashlib.sha256()
    digest.update(
        json.dumps([task.name, label2id, max_length, repr(options), shaping], sort_keys=True, default=str).encode()
    )
    # The tokenizer as it splits text; its truncation/padding state changes with every call that truncates.
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    digest.update(hashlib.sha256(json.dumps(state, sort_keys=True).encode()).digest())
    if hasattr(examples, "rows"):  # StreamedExamples: the records' bytes (one pass over the examples saved)
        digest.update(examples.rows.digest().encode())
    else:
        for example in examples:
            digest.update(repr(example).encode())
    return digest.hexdigest()[:20]


def encode_training(task, examples, tokenizer, max_length, label2id, options, settings):
    """(features, truncated count): the task's encode (with its `options`), through datasets.map and Arrow when
    `settings` ask for it (--cache-encoded, --num-workers)."""
    if not wants_arrow(settings):
        return task.encode(examples, tokenizer, max_length, label2id, options)
    import datasets

    if settings.num_workers < 1:
        raise BertkitError(f"--num-workers is {settings.num_workers}; it must be at least 1")

    folder = encoded_dir(settings.output)
    key = fingerprint(task, examples, tokenizer, max_length, label2id, options, settings)
    meta_path = folder / f"train-{key}.json"
    if meta_path.is_file():  # written last: its presence means every file it names is complete
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        _discard_rows(examples)
        return _open(folder, meta["files"]), meta["truncated"]
    folder.mkdir(parents=True, exist_ok=True)

    def encode_batch(batch: list, first: int) -> dict:
        features, truncated = task.encode(batch, tokenizer, max_length, label2id, options)
        columns = {name: [f[name] for f in features] for name in features[0] if not name.startswith("_")}
        columns["index"] = [first + f["index"] for f in features]  # the batch's numbering -> the whole set's
        columns["truncated"] = [truncated] + [0] * (len(features) - 1)  # summed once all batches are done
        columns["_length"] = [len(f["input_ids"]) for f in features]  # the engine groups batches by it
        return columns

    target = folder / f"train-{key}.arrow"
    workers = max(1, getattr(settings, "num_workers", 1))
    if hasattr(examples, "rows") and workers == 1:  # streamed: read and written a batch at a time
        encoded, truncated = _encode_streamed(examples, encode_batch, target)
    else:
        if hasattr(examples, "rows"):  # several processes: each reads its share of the records' Arrow files
            numbers = _rows_dataset(examples.rows)
            pick = lambda batch, first: examples.make(examples.rows.records(batch, first))  # noqa: E731
        else:
            numbers = datasets.Dataset.from_dict({"example": list(range(len(examples)))})
            pick = lambda batch, first: [examples[i] for i in batch["example"]]  # noqa: E731
        encoded = numbers.map(
            lambda batch, indices: encode_batch(pick(batch, indices[0]), indices[0]),
            batched=True,
            with_indices=True,
            batch_size=ENCODE_BATCH,
            remove_columns=numbers.column_names,
            num_proc=workers if workers > 1 and len(examples) > ENCODE_BATCH else None,
            cache_file_name=str(target),
            new_fingerprint=key,
            desc="Encoding the training data",
        )
        truncated = int(encoded.data.column("truncated").to_numpy().sum())
    files = [Path(entry["filename"]).name for entry in encoded.cache_files]
    meta_path.write_text(
        json.dumps({"files": files, "truncated": truncated, "examples": len(examples)}), encoding="utf-8"
    )
    _discard_rows(examples)
    return encoded.remove_columns(["truncated"]), truncated


def _discard_rows(examples) -> None:
    """Streamed examples' copy of the records goes once they are encoded: the cache holds features only."""
    if hasattr(examples, "rows"):
        examples.rows.discard()


def _encode_streamed(examples, encode_batch, target: Path):
    """(features, truncated count) of streamed examples, written to `target` WRITE_ROWS features at a time.

    Large record batches keep opening the file cheap: `Dataset.from_file` reads every batch's header, and
    the memory map brings the pages around each one into the process (~130 MB at 2M rows in batches of 1,000).
    """
    import datasets
    from datasets.arrow_writer import ArrowWriter

    partial = target.with_name(target.name + ".partial")
    truncated, pending = 0, {}
    with ArrowWriter(path=str(partial), writer_batch_size=WRITE_ROWS) as writer:
        for first, batch in examples.batches():
            columns = encode_batch(batch, first)
            truncated += sum(columns["truncated"])
            for name, values in columns.items():
                pending.setdefault(name, []).extend(values)
            if len(pending["index"]) >= WRITE_ROWS:
                writer.write_batch(pending)
                pending = {}
        if pending:
            writer.write_batch(pending)
        writer.finalize()
    partial.replace(target)
    return datasets.Dataset.from_file(str(target)), truncated


def _rows_dataset(rows):
    import datasets

    parts = [datasets.Dataset.from_file(name) for name in rows.files]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def feature_lengths(features):
    """Each feature's length from the Arrow column (reading millions of rows to measure them takes minutes);
    None for features in memory (the engine measures them)."""
    names = getattr(features, "column_names", None)
    return features["_length"] if names and "_length" in names else None


def _open(folder: Path, files: list[str]):
    import datasets

    parts = [datasets.Dataset.from_file(str(folder / name)) for name in files]
    dataset = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return dataset.remove_columns(["truncated"])
