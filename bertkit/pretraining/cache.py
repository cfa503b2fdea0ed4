"""The on-disk cache of a pretraining run: the corpus tokenized once, and its instances.

    OUTPUT/cache/meta.json                 what the cache was made from (reused only if it all matches)
    OUTPUT/cache/{train,validation}/tokens.bin       token ids (uint16 or int32), documents one after another
                                     sentences.npy   token offset of each sentence start, plus the end
                                     documents.npy   sentence offset of each document start, plus the end
                                     instances.npy   one row of token ranges per instance (see instances.py)

The corpus is read and tokenized in batches with the fast tokenizer and appended to the token
file, so it never has to fit in memory; training reads the token file as a memory map. A later
epoch, a `--resume` or a repeated run with the same corpus, tokenizer and settings reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from array import array
from pathlib import Path

import numpy as np

from bertkit.errors import BertkitError
from bertkit.pretraining.corpus import count_documents, iter_documents, layout_of, resolve_corpus
from bertkit.pretraining.instances import build_nsp_instances, build_packed_instances, instance_lengths, materialize

SPLITS = ("train", "validation")
BATCH_SENTENCES = 4096  # sentences per tokenizer call: large enough to keep the fast tokenizer busy


class SplitWriter:
    """Appends tokenized documents of one split to its files."""

    def __init__(self, folder: Path, dtype):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.dtype = folder, dtype
        self.stream = open(folder / "tokens.bin", "wb")
        self.sentence_lengths = array("q")
        self.document_sizes = array("q")

    def add(self, sentences: list[list[int]]) -> None:
        """One document, as the token ids of its sentences (empty ones are dropped)."""
        kept = [ids for ids in sentences if ids]
        if kept:
            self.stream.write(np.fromiter((t for ids in kept for t in ids), dtype=self.dtype).tobytes())
            self.sentence_lengths.extend(len(ids) for ids in kept)
            self.document_sizes.append(len(kept))

    def close(self) -> None:
        self.stream.close()
        np.save(self.folder / "sentences.npy", offsets(self.sentence_lengths))
        np.save(self.folder / "documents.npy", offsets(self.document_sizes))


def offsets(sizes) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(np.frombuffer(sizes, dtype=np.int64) if len(sizes) else []))).astype(np.int64)


def held_out_documents(count: int, fraction: float, seed: int, nsp: bool) -> set[int]:
    """Which documents form the validation slice: a seeded random `fraction` of them (at least 2 with NSP)."""
    if fraction <= 0 or count < 2:
        return set()
    wanted = max(2 if nsp else 1, round(count * fraction))
    if count - wanted < (2 if nsp else 1):
        return set()
    return set(random.Random(seed).sample(range(count), wanted))


def held_out_for(files: list[Path], settings) -> set[int]:
    """The held-out document numbers of this corpus under these settings."""
    return held_out_documents(
        count_documents(files, layout_of(settings)), settings.validation_fraction, settings.seed, settings.nsp
    )


def tokenize_corpus(
    files: list[Path],
    layout: str,
    tokenizer,
    folder: Path,
    held_out: set[int] | None,
    validation_files: list[Path] | None,
) -> None:
    """Tokenize the corpus into train/ and validation/ (held-out documents, or the --validation files)."""
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.int32
    writers = {split: SplitWriter(folder / split, dtype) for split in SPLITS}
    sources = [("train", files, held_out or set())]
    if validation_files:
        sources.append(("validation", validation_files, set()))
    for default_split, paths, held in sources:
        pending: list[tuple[str, list[str]]] = []
        for number, sentences in enumerate(iter_documents(paths, layout)):
            pending.append(("validation" if number in held else default_split, sentences))
            if sum(len(s) for _, s in pending) >= BATCH_SENTENCES:
                _flush(pending, tokenizer, writers)
                pending = []
        _flush(pending, tokenizer, writers)
    for writer in writers.values():
        writer.close()


def _flush(pending: list[tuple[str, list[str]]], tokenizer, writers: dict[str, SplitWriter]) -> None:
    flat = [sentence for _, sentences in pending for sentence in sentences]
    if not flat:
        return
    ids = tokenizer(
        flat, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False, verbose=False
    )["input_ids"]
    position = 0
    for split, sentences in pending:
        writers[split].add(ids[position : position + len(sentences)])
        position += len(sentences)


def build_cache(files: list[Path], tokenizer, settings, folder: Path, notify=print) -> dict:
    """Make (or reuse) the cache for this corpus, tokenizer and settings; returns its meta data."""
    meta = {"fingerprint": fingerprint(files, tokenizer, settings)}
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        if old.get("fingerprint") == meta["fingerprint"]:
            notify(f"Reusing the tokenized corpus in {folder}")
            return old
    if folder.exists():
        shutil.rmtree(folder)
    layout = layout_of(settings)
    validation_files = None
    held_out: set[int] = set()
    if settings.validation:
        validation_files = resolve_corpus([settings.validation])
    else:
        held_out = held_out_for(files, settings)
    notify(f"Tokenizing {len(files)} file(s) into {folder} ...")
    tokenize_corpus(files, layout, tokenizer, folder, held_out, validation_files)
    for number, split in enumerate(SPLITS):
        meta[split] = _write_instances(folder / split, settings, random.Random(settings.seed * 7919 + number))
    if meta["train"]["instances"] == 0:
        raise BertkitError(f"{files[0]}: the corpus gave no training text; give files with text")
    meta["dtype"] = np.dtype(np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.int32).name
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")  # written last: marks the cache complete
    return meta


def _write_instances(split_dir: Path, settings, rng: random.Random) -> dict:
    sentences, documents = np.load(split_dir / "sentences.npy"), np.load(split_dir / "documents.npy")
    count = len(documents) - 1
    if count == 0:
        rows = np.zeros((0, 5 if settings.nsp else 2), dtype=np.int64)
    elif settings.nsp:
        try:
            rows = build_nsp_instances(sentences, documents, settings.max_seq_length, settings.short_seq_prob, rng)
        except BertkitError as error:
            raise BertkitError(f"{split_dir.name} text: {error}") from None
    else:
        rows = build_packed_instances(sentences, documents, settings.max_seq_length)
    np.save(split_dir / "instances.npy", rows)
    return {
        "documents": int(count),
        "sentences": int(len(sentences) - 1),
        "tokens": int(sentences[-1]),
        "instances": int(len(rows)),
    }


def fingerprint(files: list[Path], tokenizer, settings) -> str:
    """Changes whenever the corpus files, the tokenizer or a setting that shapes the instances changes."""
    digest = hashlib.sha256()
    paths = list(files) + ([settings.validation] if settings.validation else [])
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    shaping = (
        settings.seed,
        layout_of(settings),
        settings.validation_fraction,
        settings.max_seq_length,
        settings.short_seq_prob,
        settings.nsp,
        getattr(tokenizer, "do_lower_case", None),
    )
    digest.update(repr(shaping).encode())
    return digest.hexdigest()


class InstanceFeatures:
    """The instances of one split as engine features, made from the memory-mapped cache on demand.

    Item i is ``{"input_ids", "token_type_ids", ["next_sentence_label"], "_index", "_epoch"}``; the
    masking collator uses `_index` and `_epoch` to draw the masks (see masking.py).
    """

    def __init__(self, split_dir: Path, dtype: str, cls_id: int, sep_id: int):
        self.sentences = np.load(split_dir / "sentences.npy")
        self.documents = np.load(split_dir / "documents.npy")
        self.instances = np.load(split_dir / "instances.npy")
        total = int(self.sentences[-1])
        self.tokens = np.memmap(split_dir / "tokens.bin", dtype=dtype, mode="r") if total else np.zeros(0, dtype)
        self.boundaries = self.sentences[self.documents[1:-1]]
        self.cls_id, self.sep_id = cls_id, sep_id
        self.lengths = instance_lengths(self.instances, self.sentences, self.documents)
        self.nsp = self.instances.shape[1] == 5
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def keep_sample(self, count: int, seed: int) -> None:
        """Keep a fixed, seeded sample of `count` instances (0: all): held-out evaluation in seconds, not minutes."""
        if 0 < count < len(self.instances):
            chosen = np.sort(np.random.default_rng(seed).choice(len(self.instances), count, replace=False))
            self.instances, self.lengths = self.instances[chosen], self.lengths[chosen]

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, index: int) -> dict:
        instance = self.instances[index]
        ids, segments = materialize(self.tokens, instance, self.boundaries, self.cls_id, self.sep_id)
        item = {"input_ids": ids, "token_type_ids": segments, "_index": int(index), "_epoch": self.epoch}
        if self.nsp:
            item["next_sentence_label"] = int(instance[4])  # 1: B is a random sentence (BERT's convention)
        return item
