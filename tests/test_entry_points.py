"""The library entry points check their settings as the command line does, and the inference loop deals
every input to exactly one process (so gathering needs no de-duplication)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bertkit.errors import BertkitError

MISSING = "no-such-model-dir"  # unchecked settings would fail later, on this directory, with another message


def test_predict_and_evaluate_check_their_settings(tmp_path):
    from bertkit.inference import evaluate_file, predict_file
    from bertkit.settings import EvaluateSettings, PredictSettings

    inputs = tmp_path / "in.txt"
    inputs.write_text("a fine film\n")
    with pytest.raises(BertkitError, match="--batch-size is 0"):
        predict_file(PredictSettings(input=inputs, model=MISSING, batch_size=0))
    with pytest.raises(BertkitError, match="--runtime is 'tpu'"):
        evaluate_file(EvaluateSettings(input=inputs, model=MISSING, runtime="tpu"))


def test_export_and_serve_check_their_settings(tmp_path):
    from bertkit.deploy.export import export_model
    from bertkit.deploy.serve import serve
    from bertkit.settings import ExportSettings, ServeSettings

    with pytest.raises(BertkitError, match="--opset is 5"):
        export_model(ExportSettings(model=MISSING, output=tmp_path / "onnx", opset=5))
    assert not (tmp_path / "onnx").exists()
    with pytest.raises(BertkitError, match="--port is 0"):
        serve(ServeSettings(model=MISSING, port=0))


def test_embed_checks_the_choices():
    from bertkit.settings import EmbedSettings

    settings = EmbedSettings(inputs=["a text"], model=MISSING, output=Path("vectors.npy"), precision="fp8")
    with pytest.raises(BertkitError, match="--precision is 'fp8'; choose one of: auto, fp32, bf16, fp16"):
        settings.validate()


@pytest.mark.parametrize("processes", [1, 2, 3, 5])
def test_inference_deals_every_input_to_exactly_one_process(processes):
    from bertkit.engine.inference import my_batches

    lengths = [(7 * i) % 13 + 1 for i in range(23)]  # 23 inputs in batches of 4: the last batch is short
    dealt = [
        index
        for rank in range(processes)
        for batch in my_batches(lengths, 4, SimpleNamespace(process_index=rank, num_processes=processes))
        for index in batch
    ]
    assert sorted(dealt) == list(range(23))
