"""The one inference loop: fine-tuning evaluation, predict, embed and pretraining evaluation all run here.

Inputs go through the model longest first in batches of similar length, so almost no time is
spent on padding; under several processes each runs every N-th batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bertkit.engine.batching import collate
from bertkit.engine.packing import EXAMPLE_LENGTHS

# What a batch holds but a model must not see.
TARGETS = ("labels", "start_positions", "end_positions", "index", "loss_weight", EXAMPLE_LENGTHS)


def my_batches(
    lengths: Sequence[int], batch_size: int, accelerator, examples: Sequence[int] | None = None
) -> list[list[int]]:
    """Indices longest first, cut into batches; this process's share of them.

    `examples` (each index's example): the features of one example (its windows) go into one batch, so an
    example is answered whole by one model call; an example with more features than `batch_size` is the only
    one that spans batches.
    """
    if examples is None or len(set(examples)) == len(examples):
        order = np.argsort(-np.asarray(lengths), kind="stable")
        batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    else:
        batches = whole_example_batches(lengths, batch_size, examples)
    return batches[accelerator.process_index :: accelerator.num_processes]


def whole_example_batches(lengths: Sequence[int], batch_size: int, examples: Sequence[int]) -> list[list[int]]:
    """Batches of whole examples, those with the longest feature first (single features: as `my_batches`)."""
    members: dict[int, list[int]] = {}
    for index, example in enumerate(examples):
        members.setdefault(example, []).append(index)
    units = sorted(members.values(), key=lambda unit: -max(lengths[i] for i in unit))
    batches: list[list[int]] = []
    current: list[int] = []
    for unit in units:
        for start in range(0, len(unit), batch_size):
            part = unit[start : start + batch_size]
            if current and len(current) + len(part) > batch_size:
                batches.append(current)
                current = []
            current.extend(part)
    if current:
        batches.append(current)
    return batches


def run_batches(
    accelerator,
    model: torch.nn.Module,
    lengths: Sequence[int],
    batch_size: int,
    make_batch: Callable[[list[int]], dict],
    examples: Sequence[int] | None = None,
) -> Iterator[tuple[list[int], dict, Any]]:
    """Yield (indices, batch on the device, model output) for this process's batches, without gradients."""
    model.eval()
    with torch.inference_mode():
        for indices in my_batches(lengths, batch_size, accelerator, examples):
            batch = {key: value.to(accelerator.device) for key, value in make_batch(indices).items()}
            with accelerator.autocast():
                output = model(**{key: value for key, value in batch.items() if key not in TARGETS})
            yield indices, batch, output


def model_outputs(
    accelerator,
    model: torch.nn.Module,
    features: Sequence[dict],
    batch_size: int,
    pad_token_id: int,
    outputs: Mapping[str, bool],
) -> Iterator[tuple[int, dict]]:
    """Yield (feature number, {output name: numpy array}) for every feature exactly once.

    `outputs` names the model outputs to keep (the caller's task knows them), each marked True when it
    holds one value per token: those are trimmed to the feature's own length. The features of one example
    (its `index`: e.g. the windows of a long text) share a batch. Under several processes the results are
    gathered and every process yields all of them.
    """
    lengths = [len(feature["input_ids"]) for feature in features]
    examples = [feature["index"] for feature in features] if features and "index" in features[0] else None
    results: list[tuple[int, dict]] = []
    batches = run_batches(
        accelerator,
        model,
        lengths,
        batch_size,
        lambda indices: collate([features[i] for i in indices], pad_token_id),
        examples,
    )
    for indices, _, output in batches:
        arrays = {name: output[name].float().cpu().numpy() for name in outputs}
        for row, index in enumerate(indices):
            item = {
                name: value[row, : lengths[index]] if outputs[name] else value[row] for name, value in arrays.items()
            }
            if accelerator.num_processes == 1:
                yield index, item
            else:
                results.append((index, item))
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        # Every feature is in exactly one process's batches (my_batches deals them out, never pads).
        yield from sorted(gather_object(results), key=lambda pair: pair[0])
