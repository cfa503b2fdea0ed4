"""Re-initialising the parts of a pretrained encoder that would hurt fine-tuning (Zhang et al. 2021,
"Revisiting Few-sample BERT Fine-tuning").

The [CLS] head reads BERT's pooler, a dense + tanh layer that only next-sentence prediction trains.
After a short pretraining run the NSP task is still at chance: the pooler has been pushed around by
noise, its tanh saturates, the gradient through it vanishes and fine-tuning stays at chance. A pooler
that NSP never trained is worth no more than a fresh one, so by default (`--reinit-pooler auto`) it
is drawn anew when the model's own `bertkit.json` says NSP was off or never beat chance.
`--reinit-layers N` also re-draws the top N encoder layers, which the paper found to help small data.
"""

from __future__ import annotations

import torch
from torch import nn

from bertkit.errors import BertkitError
from bertkit.modeling.loading import pretraining_record

NSP_LEARNED = 0.6  # held-out NSP accuracy above which the pooler learned something (chance is 0.5)


def pooler_untrained(model_dir: str) -> bool:
    """True when `model_dir` is a bertkit pretraining run whose NSP was off or stayed near chance."""
    info = pretraining_record(model_dir)  # None: a model from elsewhere (e.g. the hub), whose pooler is trusted
    if info is None:
        return False
    if not (info.get("settings") or {}).get("nsp", True):
        return True
    accuracy = (info.get("metrics") or {}).get("nsp_accuracy")
    return accuracy is None or accuracy < NSP_LEARNED


def reinit_plan(choice: str, layers: int, model_dir: str) -> dict:
    """What to draw anew, as bertkit.json records it: {"pooler": bool, "layers": int}."""
    pooler = {"yes": True, "no": False}.get(choice)
    if pooler is None:
        pooler = pooler_untrained(model_dir)
    return {"pooler": pooler, "layers": layers}


def reinitialize(model: nn.Module, plan: dict) -> None:
    """Draw the pooler and/or the top `plan["layers"]` encoder layers anew, as BERT initialises them."""
    encoder = getattr(model, "base_model", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    modules: list[nn.Module] = []
    if plan.get("pooler") and getattr(encoder, "pooler", None) is not None:
        modules.append(encoder.pooler)
    count = plan.get("layers", 0)
    if count:
        if layers is None or count > len(layers):
            have = 0 if layers is None else len(layers)
            raise BertkitError(f"--reinit-layers is {count}; this model has {have} encoder layers")
        modules.extend(layers[-count:])
    std = model.config.initializer_range
    with torch.no_grad():  # BERT's own initialisation (transformers' helpers skip weights already loaded)
        for module in modules:
            for part in module.modules():
                if isinstance(part, nn.Linear):
                    part.weight.normal_(0.0, std)
                    part.bias.zero_()
                elif isinstance(part, nn.LayerNorm):
                    part.weight.fill_(1.0)
                    part.bias.zero_()
