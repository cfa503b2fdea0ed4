"""ELECTRA's training speed against masked LM's, measured in the same run: steps of the two alternate.

    flock /tmp/bertkit-bench.lock .venv/bin/python bench/electra_speed.py --size mini --rounds 8

Both models are bertkit's own training wrappers (`PretrainingModel`, `ElectraPretrainingModel` with
its default 1/4-width generator) of the `--size` preset, on one batch of `--batch-size` random
sequences of `--length` WordPieces with bertkit's masking (25%, the budget recipe), AdamW as the
engine makes it. Rounds alternate the two (forward, backward, optimizer step), so a busy machine slows
both alike; the ratio of their median step times is the result (bench/results/electra-speed.json).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import types

import torch
from common import save_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="mini")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    import numpy as np
    from transformers import BertForPreTraining, BertModel

    from bertkit.engine.setup import make_optimizer
    from bertkit.modeling.scratch import bert_config
    from bertkit.pretraining.electra import make_electra
    from bertkit.pretraining.masking import MaskingCollator, MaskingRule
    from bertkit.pretraining.model import PretrainingModel

    torch.manual_seed(0)
    config = bert_config(args.vocab, args.size, max_position=512)
    specials = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK], as bertkit's tokenizers number them
    tokenizer = types.SimpleNamespace(cls_token_id=2, sep_token_id=3, pad_token_id=0, all_special_ids=specials)
    settings = types.SimpleNamespace(generator_size=0.25, dropout=0.0, rtd_weight=50.0, mlm_probability=0.25)
    models = {
        "mlm": PretrainingModel(BertForPreTraining(config)),
        "electra": make_electra(BertModel(config), settings, tokenizer, None),
    }
    rule = MaskingRule(4, np.array([0, 2, 3]), np.arange(5, args.vocab), 0.25, 5 * math.ceil(args.length * 0.25 / 5))
    rng = np.random.default_rng(0)
    items = []
    for index in range(args.batch_size):
        ids = rng.integers(5, args.vocab, args.length)
        ids[0], ids[-1] = 2, 3
        items.append({"input_ids": ids, "token_type_ids": np.zeros_like(ids), "_epoch": 0, "_index": index})
    batch = MaskingCollator(rule, 0, seed=1, static=False)(items)
    optimizers = {name: make_optimizer(model, 1e-4, 0.1) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_number in range(args.rounds + 1):  # the first round warms up
        for name, model in models.items():
            started = time.perf_counter()
            model(**batch).loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad()
            if round_number:
                times[name].append(time.perf_counter() - started)
    tokens = args.batch_size * args.length
    result = {
        "size": args.size,
        "batch": [args.batch_size, args.length],
        "rounds": args.rounds,
        "seconds_per_step": {name: statistics.median(values) for name, values in times.items()},
        "tokens_per_second": {name: tokens / statistics.median(values) for name, values in times.items()},
    }
    result["electra_over_mlm"] = result["tokens_per_second"]["electra"] / result["tokens_per_second"]["mlm"]
    save_results("electra-speed", result)
    print(result)


if __name__ == "__main__":
    main()
