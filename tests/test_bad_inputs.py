"""Every mistake a user can make ends the same way: a non-zero exit code, exactly one line on stderr
that names the file and the record (or the option) and says what to do, no traceback, and no output
left behind. The cases are one table, in tests/bad_input_cases.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bad_input_cases import CASES, Case
from conftest import EXAMPLES
from helpers import fine_tuned


@pytest.fixture(scope="module")
def models(tiny_model, tmp_path_factory) -> dict[str, Path]:
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("models")
    clf = fine_tuned(tiny_model, root / "clf", "classification", ["neg", "pos"])
    found = {
        "base": tiny_model,
        "clf": clf,
        "nli": fine_tuned(tiny_model, root / "nli", "nli", ["contradiction", "entailment", "neutral"]),
    }

    def variant(name: str, source: Path = tiny_model) -> Path:
        shutil.copytree(source, root / name)
        found[f"bad_{name}"] = root / name
        return root / name

    (root / "empty").mkdir()
    found["bad_empty"] = root / "empty"
    for name, source in (("truncated", tiny_model), ("truncated_clf", clf)):
        weights = variant(name, source) / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:300])
    for name, source in (("pickle", tiny_model), ("pickle_clf", clf)):
        pickled = variant(name, source)
        torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
        (pickled / "model.safetensors").unlink()
    (variant("noweights") / "model.safetensors").unlink()
    no_tokenizer = variant("notokenizer")
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (no_tokenizer / name).unlink(missing_ok=True)
    (variant("task", clf) / "bertkit.json").write_text(json.dumps({"task": "summarize", "labels": ["a", "b"]}))
    (variant("info", clf) / "bertkit.json").write_text('{"task": "classif')
    (variant("pretrained") / "bertkit.json").write_text(json.dumps({"task": "pretraining"}))
    found["pretrained"] = found.pop("bad_pretrained")
    (variant("labels", clf) / "bertkit.json").write_text(
        json.dumps({"task": "classification", "labels": ["a", "b", "c"]})
    )
    return found


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gives_one_actionable_line(case: Case, models, tmp_path, capsys):
    from bertkit.cli import main

    for name, content in case.files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content, encoding="utf-8")
    places = {
        "tmp": tmp_path,
        "train": EXAMPLES / "sentiment/train.tsv",
        "dev": EXAMPLES / "sentiment/dev.tsv",
        "tag_train": EXAMPLES / "tagging/train.conll",
        "qa_train": EXAMPLES / "qa/train.jsonl",
        **{key: str(value) for key, value in models.items()},
    }
    argv = [arg.format(**places) for arg in case.argv]
    existed = (tmp_path / case.output).exists()
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    stderr = capsys.readouterr().err
    assert exit_info.value.code not in (0, None)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    for word in case.words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    if not existed:
        assert not (tmp_path / case.output).exists(), f"{case.output} was left behind"
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "a temporary file was left behind"


def test_the_table_covers_every_command():
    assert len(CASES) >= 30
    assert {case.argv[0] for case in CASES} >= {"finetune", "predict", "evaluate", "pretrain", "embed"}
    tasks = {case.argv[case.argv.index("--task") + 1] for case in CASES if "--task" in case.argv}
    assert tasks >= {"classification", "nli", "tagging", "qa"}
