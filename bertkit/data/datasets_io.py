"""Inputs through Hugging Face ``datasets``: Parquet, Arrow, saved datasets and the local hub cache.

    --train train.parquet                      a Parquet file (one table)
    --train train.arrow                        an Arrow file (a shard of Dataset.save_to_disk, or Arrow IPC)
    --train data/sst2 --train-split train      a directory written by Dataset/DatasetDict.save_to_disk
    --train hf:glue:sst2 --train-split train   a dataset already in the local cache: NAME[:CONFIG], never downloaded

Each becomes the same `Table` the text readers make (records with a location such as
``data/sst2[train] record 5``), so every task reads it as it reads a jsonl file. ClassLabel
columns (and lists of them, e.g. ``ner_tags``) give their label names, not their numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError

HF_PREFIX = "hf:"
FILE_SUFFIXES = (".parquet", ".arrow")
SAVED_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes (DatasetDict / Dataset)
BATCH = 1000  # rows converted to Python at a time


class Source(str):
    """An input name (path or hf:NAME) that also carries which split of a DatasetDict to read.

    A str, so every reader and message treats it as the path it was before; only this module reads
    `split_name` and `split_option` (the flag that sets it, for error messages).
    """

    split_name: str | None
    split_option: str

    def __new__(cls, value: Any, split: str | None = None, option: str = "--split"):
        made = super().__new__(cls, str(value))
        made.split_name, made.split_option = split, option
        return made


def source(path: Any, split: str | None, option: str = "--split") -> Source | None:
    """`path` with the split to read (None stays None: an input that was not given)."""
    return None if path is None else Source(path, split, option)


def is_dataset_source(path: Any) -> bool:
    """True for hf:NAME, .parquet/.arrow files and directories written by save_to_disk."""
    text = str(path)
    if text.startswith(HF_PREFIX):
        return True
    if Path(text).suffix.lower() in FILE_SUFFIXES:
        return True
    return is_saved_dataset(Path(text))


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_MARKERS)


def open_dataset(path: Any):
    """The `datasets.Dataset` that `path` names (a split chosen from a DatasetDict), and how to name it in errors."""
    text = str(path)
    split = getattr(path, "split_name", None)
    option = getattr(path, "split_option", "--split")
    if text.startswith(HF_PREFIX):
        loaded = _from_hub_cache(text, split)
    else:
        loaded = _from_path(Path(text))
    return _choose_split(loaded, text, split, option)


def _from_path(path: Path):
    import datasets

    if not path.exists():
        raise BertkitError(f"{path}: file not found; check the path")
    if path.is_dir():
        if not is_saved_dataset(path):
            raise BertkitError(
                f"{path}: is a directory but not a saved dataset (no dataset_dict.json or state.json); "
                "write it with Dataset.save_to_disk or pass a file"
            )
        return datasets.load_from_disk(str(path))
    builder = "parquet" if path.suffix.lower() == ".parquet" else "arrow"
    if builder == "arrow":
        try:  # an Arrow stream (what save_to_disk writes) is memory-mapped where it lies, not copied
            return datasets.Dataset.from_file(str(path))
        except Exception:  # noqa: BLE001 -- an Arrow IPC *file*: datasets' arrow builder reads that too
            pass
    try:  # datasets' own readers: Parquet, and Arrow IPC files
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as error:  # noqa: BLE001 -- pyarrow/datasets raise many kinds for a damaged file
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BertkitError(
            f"{path}: not a readable {builder} file ({message}); re-write it "
            f"(e.g. Dataset.to_{builder if builder == 'parquet' else 'arrow'})"
        ) from None


def parse_hub_name(text: str) -> tuple[str, str | None]:
    """'hf:NAME[:CONFIG]' -> (NAME, CONFIG or None)."""
    name, _, config = text[len(HF_PREFIX) :].partition(":")
    if not name.strip() or name.count("/") > 1:
        raise BertkitError(f"{text}: give a dataset name as hf:NAME or hf:NAME:CONFIG (e.g. hf:stanfordnlp/imdb)")
    return name, config or None


def _from_hub_cache(text: str, split: str | None):
    """A hub dataset from the local caches only: datasets' prepared cache (what load_dataset wrote on a first
    online run), else the hub download cache (huggingface-cli download). Never touches the network."""
    name, config = parse_hub_name(text)
    cached_configs = ""
    try:  # the builder load_dataset itself falls back to when offline
        from datasets.packaged_modules.cache.cache import Cache

        builder = Cache(repo_id=name, dataset_name=name.split("/")[-1], config_name=config, version="auto", hash="auto")
        return builder.as_dataset()
    except (FileNotFoundError, ValueError) as error:  # its message lists the configs that are cached, if any
        cached_configs = next((line for line in str(error).splitlines() if line.startswith("Available configs")), "")
    snapshot = _hub_snapshot(name)
    if snapshot is None:
        config_arg = f", '{config}'" if config else ""
        other = f" ({cached_configs.lower()}: give one as hf:{name}:CONFIG)" if cached_configs else ""
        raise BertkitError(
            f"{text}: dataset '{name}'{f' (config {config})' if config else ''} is not in the local "
            f'cache ({_cache_dirs()}){other}; fetch it once online with python -c "import datasets; '
            f"datasets.load_dataset('{name}'{config_arg})\" or huggingface-cli download "
            f"--repo-type dataset {name}"
        )
    import datasets

    try:  # a folder of data files: datasets reads it as a local dataset (its README's configs included)
        return datasets.load_dataset(snapshot, config)
    except Exception as error:  # noqa: BLE001
        raise BertkitError(
            f"{text}: the downloaded files in {snapshot} cannot be read as a dataset "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); "
            "check the config name"
        ) from None


def _hub_snapshot(name: str) -> str | None:
    from huggingface_hub import constants, snapshot_download

    try:
        return snapshot_download(
            repo_id=name, repo_type="dataset", local_files_only=True, cache_dir=constants.HF_HUB_CACHE
        )
    except Exception:  # noqa: BLE001 -- not downloaded (LocalEntryNotFoundError and friends)
        return None


def _cache_dirs() -> str:
    import datasets
    from huggingface_hub import constants

    return f"HF_DATASETS_CACHE={datasets.config.HF_DATASETS_CACHE}, HF_HUB_CACHE={constants.HF_HUB_CACHE}"


def _choose_split(loaded, shown: str, split: str | None, option: str):
    """A Dataset as is; from a DatasetDict the split asked for, or its only split."""
    import datasets

    if isinstance(loaded, datasets.Dataset):
        return loaded, shown
    names = list(loaded)
    if split is None:
        if len(names) != 1:
            raise BertkitError(f"{shown}: holds the splits {', '.join(names)}; choose one with {option}")
        split = names[0]
    if split not in loaded:
        raise BertkitError(f"{shown}: no split '{split}' (splits: {', '.join(names)}); fix {option}")
    return loaded[split], f"{shown}[{split}]"


def label_decoders(features) -> dict[str, Any]:
    """Column -> function turning its stored numbers into label names (ClassLabel, or a list of ClassLabel)."""
    import datasets

    decoders = {}
    for column, feature in features.items():
        if isinstance(feature, datasets.ClassLabel):
            decoders[column] = lambda value, f=feature: _label_name(f, value)
        elif isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.ClassLabel):
            decoders[column] = lambda value, f=feature.feature: (
                None if value is None else [_label_name(f, v) for v in value]
            )
    return decoders


def _label_name(feature, value):
    # -1 is how datasets marks a missing label (e.g. GLUE test splits): the record has no label.
    return None if value is None or value < 0 else feature.int2str(int(value))


def iter_records(dataset) -> Iterator[dict]:
    """The rows of `dataset` as dicts with label names, a batch at a time (memory-mapped data stays on disk)."""
    decoders = label_decoders(dataset.features)
    for batch in dataset.iter(batch_size=BATCH):
        columns = list(batch)
        for values in zip(*(batch[c] for c in columns)):
            record = dict(zip(columns, values))
            for column, decode in decoders.items():
                record[column] = decode(record[column])
            yield record


def dataset_table(path: Any):
    """Read a dataset source into a `Table`, each record located as `NAME[split] record N`."""
    from bertkit.data.readers import Table

    dataset, shown = open_dataset(path)
    if len(dataset) == 0:
        raise BertkitError(f"{shown}: holds no records; give a dataset with data")
    table = Table(Path(shown), columns=list(dataset.column_names))
    for number, record in enumerate(iter_records(dataset), start=1):
        table.records.append(record)
        table.where.append(f"{shown} record {number}")
    return table
