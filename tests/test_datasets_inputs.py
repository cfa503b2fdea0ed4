"""Inputs through `datasets`: parquet, arrow, saved Dataset/DatasetDict and hf:NAME from a local cache only.

Every file here is written by the test with `datasets` from the project's own examples.
"""

from __future__ import annotations

import json

import datasets
import huggingface_hub
import pytest
from conftest import EXAMPLES
from helpers import write_hub_cache

from bertkit.data.datasets_io import Source, source
from bertkit.data.readers import read_table
from bertkit.errors import BertkitError
from bertkit.settings import FinetuneSettings, PredictSettings, options_from
from bertkit.tasks import get_task

SENTIMENT = datasets.Features(
    {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """datasets' cache (parquet/arrow conversions, hub datasets) lives in the test's own folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))


def sentiment_rows(name: str = "train") -> dict:
    lines = (EXAMPLES / f"sentiment/{name}.tsv").read_text(encoding="utf-8").splitlines()[1:]
    pairs = [line.split("\t") for line in lines if line.strip()]
    return {"sentence": [text for text, _ in pairs], "label": [1 if label == "pos" else 0 for _, label in pairs]}


def sentiment_dataset(name: str = "train") -> datasets.Dataset:
    return datasets.Dataset.from_dict(sentiment_rows(name), features=SENTIMENT)


def settings(**values) -> FinetuneSettings:
    return FinetuneSettings(model="m", train=None, **values)


def test_labels_of_the_example_data_are_pos_and_neg():
    assert set(sentiment_rows()["label"]) == {0, 1}


@pytest.mark.parametrize("kind", ["parquet", "arrow", "saved"])
def test_each_format_gives_records_with_label_names(tmp_path, kind):
    dataset = sentiment_dataset()
    if kind == "parquet":
        path = tmp_path / "train.parquet"
        dataset.to_parquet(str(path))
    elif kind == "arrow":
        dataset.save_to_disk(str(tmp_path / "saved"))
        path = next((tmp_path / "saved").glob("*.arrow"))
    else:
        path = tmp_path / "saved"
        dataset.save_to_disk(str(path))
    examples = get_task("classification").read(str(path), settings(), labelled=True)
    assert len(examples) == len(dataset)
    assert {e.label for e in examples} == {"neg", "pos"}  # ClassLabel numbers -> names
    assert examples[4].where.endswith("record 5")


def test_dataset_dict_split_is_chosen_or_must_be_named(tmp_path):
    path = tmp_path / "dd"
    datasets.DatasetDict(train=sentiment_dataset("train"), validation=sentiment_dataset("dev")).save_to_disk(str(path))
    dev = get_task("classification").read(source(path, "validation"), settings(), labelled=True)
    assert len(dev) == len(sentiment_rows("dev")["label"])
    assert dev[0].where == f"{path}[validation] record 1"
    with pytest.raises(BertkitError, match=r"holds the splits train, validation; choose one with --split"):
        read_table(source(path, None))
    with pytest.raises(BertkitError, match=r"no split 'test' \(splits: train, validation\); fix --eval-split"):
        read_table(Source(path, "test", "--eval-split"))


def test_column_flags_and_errors_name_the_record(tmp_path):
    path = tmp_path / "odd.parquet"
    datasets.Dataset.from_dict({"body": ["fine", ""], "y": ["a", "b"]}).to_parquet(str(path))
    with pytest.raises(BertkitError, match=r"no text column found .*name it with --text-column"):
        get_task("classification").read(str(path), settings(), labelled=True)
    with pytest.raises(BertkitError, match=r"odd.parquet record 2: the text \('body'\) is empty"):
        get_task("classification").read(str(path), settings(text_column="body", label_column="y"), labelled=True)


def test_nli_pairs_from_parquet(tmp_path):
    path = tmp_path / "nli.parquet"
    datasets.Dataset.from_dict(
        {"premise": ["a man sleeps", "a dog runs"], "hypothesis": ["he rests", "a cat sits"], "label": [0, 1]},
        features=datasets.Features(
            {
                "premise": datasets.Value("string"),
                "hypothesis": datasets.Value("string"),
                "label": datasets.ClassLabel(names=["entailment", "contradiction"]),
            }
        ),
    ).to_parquet(str(path))
    examples = get_task("nli").read(str(path), settings(task="nli"), labelled=True)
    assert [(e.text_pair, e.label) for e in examples] == [("he rests", "entailment"), ("a cat sits", "contradiction")]


def test_tagging_tokens_and_hub_tag_columns(tmp_path):
    tags = datasets.List(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))
    data = datasets.Dataset.from_dict(
        {
            "tokens": [["Ann", "Lee", "runs"], ["he", "sleeps"]],
            "ner_tags": [[1, 2, 0], [0, 0]],
            "pos_tags": [[0, 0, 0], [0, 0]],
        },
        features=datasets.Features(
            {"tokens": datasets.List(datasets.Value("string")), "ner_tags": tags, "pos_tags": tags}
        ),
    )
    path = tmp_path / "ner"
    data.save_to_disk(str(path))
    task = get_task("tagging")
    with pytest.raises(
        BertkitError,
        match=r"several columns could be the tags \(ner_tags, pos_tags\); choose one "
        r"with --label-column",
    ):
        task.read(str(path), settings(task="tagging"), labelled=True)
    sentences = task.read(str(path), settings(task="tagging", label_column="ner_tags"), labelled=True)
    assert sentences[0].tags == ["B-PER", "I-PER", "O"] and sentences[1].tokens == ["he", "sleeps"]
    unlabelled = task.read(str(path), options_from(task.options_type, PredictSettings(model="m")), labelled=False)
    assert unlabelled[0].tags is None


def squad_dataset() -> datasets.Dataset:
    """SQuAD as the hub ships it: id, title, context, question, answers {text: [...], answer_start: [...]}."""
    records = [
        json.loads(line)
        for line in (EXAMPLES / "qa/train.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    answers = datasets.Features(
        {"text": datasets.List(datasets.Value("string")), "answer_start": datasets.List(datasets.Value("int32"))}
    )
    columns = {key: [r[key] for r in records] for key in ("id", "question", "context")}
    columns["answers"] = [r["answers"] for r in records]
    return datasets.Dataset.from_dict(
        columns,
        features=datasets.Features(
            {
                "id": datasets.Value("string"),
                "question": datasets.Value("string"),
                "context": datasets.Value("string"),
                "answers": answers,
            }
        ),
    )


def test_qa_from_a_parquet_squad_layout(tmp_path):
    path = tmp_path / "squad.parquet"
    data = squad_dataset()
    data.to_parquet(str(path))
    examples = get_task("qa").read(str(path), settings(task="qa"), labelled=True)
    assert len(examples) == len(data)
    first = examples[0]
    assert first.context[first.answers[0].start : first.answers[0].end] == first.answers[0].text


def test_hub_name_reads_the_local_cache_only(tmp_path):
    write_hub_cache("tiny_sentiment", "plain", {"train": sentiment_dataset("train"), "test": sentiment_dataset("dev")})
    task = get_task("classification")
    examples = task.read(source("hf:tiny_sentiment:plain", "train"), settings(), labelled=True)
    assert len(examples) == len(sentiment_rows("train")["label"]) and examples[0].label in ("neg", "pos")
    assert examples[0].where == "hf:tiny_sentiment:plain[train] record 1"
    also = task.read(source("hf:tiny_sentiment", "test"), settings(), labelled=True)  # the only config cached
    assert len(also) == len(sentiment_rows("dev")["label"])
    with pytest.raises(
        BertkitError,
        match=r"hf:tiny_sentiment:other: .*not in the local cache .*available configs in "
        r"the cache: \['plain'\]: give one as hf:tiny_sentiment:CONFIG\); fetch",
    ):
        task.read(source("hf:tiny_sentiment:other", "train"), settings(), labelled=True)


def test_hub_name_reads_a_downloaded_snapshot(tmp_path):
    """What `huggingface-cli download --repo-type dataset me/tiny` leaves in the hub cache: data files, no arrow."""
    repo = tmp_path / "hf-hub" / "datasets--me--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("f" * 40)
    (repo / "snapshots" / ("f" * 40) / "data").mkdir(parents=True)
    sentiment_dataset("dev").to_parquet(str(repo / "snapshots" / ("f" * 40) / "data" / "test-00000.parquet"))
    examples = get_task("classification").read(source("hf:me/tiny", None), settings(), labelled=True)
    assert len(examples) == len(sentiment_rows("dev")["label"])
    assert examples[0].where == "hf:me/tiny[test] record 1"


def test_missing_hub_dataset_says_how_to_fetch_it():
    with pytest.raises(
        BertkitError,
        match=r"hf:someone/absent: dataset 'someone/absent' is not in the local cache "
        r".*huggingface-cli download --repo-type dataset someone/absent",
    ):
        read_table(source("hf:someone/absent", "train"))


def test_damaged_parquet_is_one_line(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(BertkitError, match=r"bad.parquet: not a readable parquet file"):
        read_table(str(path))


def test_finetune_predict_evaluate_from_saved_datasets(tiny_model, cli, tmp_path):
    path = tmp_path / "sentiment"
    datasets.DatasetDict(
        train=sentiment_dataset("train"), validation=sentiment_dataset("dev"), test=sentiment_dataset("test")
    ).save_to_disk(str(path))
    run = tmp_path / "run"
    result = cli(
        "finetune",
        "--model",
        tiny_model,
        "--train",
        path,
        "--eval",
        path,
        "--output",
        run,
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--max-length",
        "32",
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run / "model/bertkit.json").read_text())["labels"] == ["neg", "pos"]
    predictions = tmp_path / "p.jsonl"
    result = cli("predict", "--model", run / "model", path, "--split", "test", "--output", predictions)
    assert result.exit_code == 0, result.output
    assert len(predictions.read_text().splitlines()) == len(sentiment_rows("test")["label"])
    result = cli("evaluate", "--model", run / "model", path, "--output", tmp_path / "m.json")
    assert result.exit_code != 0 and "choose one with --split" in result.output


def test_arrow_ipc_file_is_read_too(tmp_path):
    """Not only save_to_disk's Arrow streams: an Arrow IPC file (pyarrow.feather / ipc.new_file) as well."""
    import pyarrow as pa

    path = tmp_path / "table.arrow"
    table = pa.table({"text": ["good film", "bad film"], "label": ["pos", "neg"]})
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)
    assert [r["label"] for r in read_table(str(path)).records] == ["pos", "neg"]
