"""Same seed, same result: tokenizer training and pretraining give byte-identical files in separate
processes, whatever each process's hash seed (Python's and the tokenizers library's own)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT
from helpers import CORPUS, PRETRAIN_TINY, run

pytestmark = pytest.mark.slow  # each test starts several processes

TRAIN_TOKENIZER = (
    "import sys; sys.path.insert(0, 'tests'); from conftest import example_texts; "
    "from bertkit.modeling.scratch import train_wordpiece; "
    "train_wordpiece(example_texts(), vocab_size=900).save_pretrained(sys.argv[1])"
)


def file_bytes(directory) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def test_tokenizer_training_is_byte_identical_in_every_process(tmp_path):
    outputs = []
    for hash_seed in ("0", "1", "77"):
        target = tmp_path / f"hash-{hash_seed}"
        done = subprocess.run(
            [sys.executable, "-c", TRAIN_TOKENIZER, str(target)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={
                "PATH": "",
                "PYTHONPATH": str(ROOT),
                "PYTHONHASHSEED": hash_seed,
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
            },
        )
        assert done.returncode == 0, done.stderr
        outputs.append(file_bytes(target))
    assert set(outputs[0]) >= {"tokenizer.json", "tokenizer_config.json"}
    assert outputs[0] == outputs[1] == outputs[2]


def test_pretraining_with_one_seed_gives_bit_identical_models(tmp_path):
    runs = []
    for hash_seed in ("1", "2"):
        output = tmp_path / f"run-{hash_seed}"
        done = run(
            [
                "pretrain",
                str(CORPUS),
                "--output",
                str(output),
                *PRETRAIN_TINY,
                "--seed",
                "1",
                "--max-steps",
                "30",
                "--eval-every",
                "0",
            ],
            PYTHONHASHSEED=hash_seed,
        )
        assert done.returncode == 0, done.stderr
        runs.append(output)
    first, second = (file_bytes(run_dir / "model") for run_dir in runs)
    assert "model.safetensors" in first and first.keys() == second.keys()
    # bertkit.json and the model card record the settings, and with them each run's own --output path.
    different = [name for name in first if name not in ("bertkit.json", "README.md") and first[name] != second[name]]
    assert different == []
    assert file_bytes(runs[0] / "tokenizer") == file_bytes(runs[1] / "tokenizer")
