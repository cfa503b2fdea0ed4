"""The mimetic attention start: its heads attend from the first step, it is a pure function of the seed,
`--attention-start mimetic` asks for it (BERT's draw stays the default), and `bertkit pretrain` saves it as
a plain BERT."""

from __future__ import annotations

import pytest
import torch
from helpers import CORPUS, PRETRAIN_TINY


def new_bert(start: str, seed: int = 1, hidden: int = 128, heads: int = 2):
    from transformers import BertConfig, BertModel

    from bertkit.modeling.starts import start_mimetic

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=500,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        attn_implementation="eager",
    )
    model = BertModel(config).eval()
    if start == "mimetic":
        start_mimetic(model, seed)
    return model


def self_and_neighbour_attention(model) -> tuple[float, float]:
    """Mean attention of a position to itself and to its two neighbours, layer 0, on random text."""
    ids = torch.randint(5, 500, (4, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        weights = model(input_ids=ids, output_attentions=True).attentions[0]  # [batch, heads, 64, 64]
    own = weights.diagonal(dim1=-2, dim2=-1).mean().item()
    near = (weights.diagonal(1, -2, -1).mean() + weights.diagonal(-1, -2, -1).mean()).item() / 2
    return own, near


def test_mimetic_heads_attend_to_themselves_and_their_neighbours_from_the_start():
    uniform = 1 / 64
    own, near = self_and_neighbour_attention(new_bert("mimetic"))
    assert own > 10 * uniform and near > 2 * uniform
    # BERT's draw: every head averages the sequence, which is what keeps a short run from learning context
    own, near = self_and_neighbour_attention(new_bert("random"))
    assert abs(own - uniform) < 0.2 * uniform and abs(near - uniform) < 0.2 * uniform


def test_mimetic_products_are_near_their_targets():
    model = new_bert("mimetic", hidden=128, heads=2)
    attention = model.encoder.layer[0].attention
    query, key = attention.self.query.weight.double(), attention.self.key.weight.double()
    for head in range(2):
        rows = slice(head * 64, (head + 1) * 64)
        product = query[rows].T @ key[rows]  # W_q W_k^T of the head, hidden x hidden
        assert product.diagonal().mean() > 5 * (product - torch.diag(product.diagonal())).std()
    value_output = attention.self.value.weight.double().T @ attention.output.dense.weight.double().T
    assert value_output.diagonal().mean().item() == pytest.approx(-0.4, abs=0.03)  # a2 Z - b2 I, exactly
    positions = model.embeddings.position_embeddings.weight
    assert positions.std().item() == pytest.approx(0.1, rel=1e-3)
    similar = torch.nn.functional.cosine_similarity(positions[10], positions[11], dim=0)
    assert similar > 0.8 > torch.nn.functional.cosine_similarity(positions[10], positions[300], dim=0)


def test_mimetic_start_is_a_function_of_the_seed():
    first, again, other = (new_bert("mimetic", seed) for seed in (3, 3, 4))
    state = first.state_dict()
    assert all(torch.equal(state[name], value) for name, value in again.state_dict().items())
    name = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(state[name], other.state_dict()[name])


def test_the_start_is_bert_s_unless_asked():
    from bertkit.errors import BertkitError
    from bertkit.settings import PretrainSettings

    assert PretrainSettings().attention_start == PretrainSettings(recipe="bert").attention_start == "random"
    assert PretrainSettings(attention_start="mimetic").attention_start == "mimetic"
    with pytest.raises(BertkitError, match="--attention-start is 'identity'; choose one of: mimetic, random"):
        PretrainSettings(corpus=[CORPUS], attention_start="identity").validate()


@pytest.mark.parametrize("objective", ["mlm", "electra"])
def test_pretrain_saves_the_start_it_was_given(cli, tmp_path, objective):
    from transformers import BertModel

    saved = {}
    for start in ("mimetic", "random"):
        output = tmp_path / start
        arguments = [*PRETRAIN_TINY, "--max-steps", "0", "--objective", objective, "--attention-start", start]
        result = cli("pretrain", CORPUS, "--output", output, *arguments)
        assert result.exit_code == 0, result.output
        model = BertModel.from_pretrained(output / "model")
        attention = model.encoder.layer[0].attention
        saved[start] = (attention.self.value.weight.T @ attention.output.dense.weight.T).diagonal().mean().item()
    assert saved["mimetic"] < -0.3 and abs(saved["random"]) < 0.05
