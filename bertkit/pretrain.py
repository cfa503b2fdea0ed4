"""`bertkit pretrain` as a library function: corpus -> tokenizer -> cached instances -> engine -> model/.

    from bertkit.pretrain import pretrain
    from bertkit.settings import PretrainSettings
    pretrain(PretrainSettings(corpus=[Path("corpus.txt")], output=Path("runs/base"), size="mini", max_steps=20000))

The model trains on masked LM (+ next-sentence prediction) with the shared engine; the saved
`model/` is a plain `BertForPreTraining` directory (it loads as `BertForMaskedLM` too) with its
tokenizer, and works as `--model` of `bertkit finetune`. With `objective="electra"` the encoder
learns replaced-token detection beside a small generator (bertkit/pretraining/electra.py); `model/`
is then a plain `BertModel` directory, the generator in `model/generator/`.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

from bertkit import __version__
from bertkit.driver import finish_run, resume_hint, start_engine, start_run
from bertkit.errors import BertkitError
from bertkit.modeling.loading import (
    load_pretrained,
    load_tokenizer,
    quiet_transformers,
    resolve_model_dir,
    save_model_dir,
)
from bertkit.modeling.scratch import bert_config, train_wordpiece
from bertkit.modeling.starts import start_mimetic, start_mimetic_layers
from bertkit.pretraining.cache import SPLITS, InstanceFeatures, build_cache, held_out_for
from bertkit.pretraining.corpus import iter_blocks, layout_of, resolve_corpus
from bertkit.pretraining.electra import (
    ElectraPretrainingModel,
    describe_generator,
    electra_at_initial_scale,
    make_electra,
    replacements,
    saved_generator,
    write_electra,
)
from bertkit.pretraining.masking import MaskingCollator, MaskingRule
from bertkit.pretraining.metrics import DETECTION_STARTED, detector_warning, evaluate_electra, evaluate_pretraining
from bertkit.pretraining.model import PretrainingModel
from bertkit.pretraining.rescale import at_initial_embedding_scale
from bertkit.report import console, model_card
from bertkit.settings import PretrainSettings, settings_to_dict


def pretrain(settings: PretrainSettings) -> dict:
    """Pretrain on `settings.corpus`; returns the final held-out metrics (empty without a held-out slice)."""
    settings.validate()
    quiet_transformers()
    files = resolve_corpus(settings.corpus)
    if settings.validation:
        resolve_corpus([settings.validation])
    base = resolve_model_dir(settings.model) if settings.model else None
    engine = start_engine(settings)
    run_dir, reporter = start_run(engine, settings, title="pretrain")  # created by the main process alone

    with engine.accelerator.main_process_first(), removed_on_error(run_dir, keep=settings.resume):
        tokenizer = get_tokenizer(settings, files, base, run_dir / "tokenizer", reporter)
        meta = build_cache(files, tokenizer, settings, run_dir / "cache", notify=reporter.note)
    splits = {
        split: InstanceFeatures(
            run_dir / "cache" / split, meta["dtype"], tokenizer.cls_token_id, tokenizer.sep_token_id
        )
        for split in SPLITS
    }
    reporter.note(describe(meta, settings))
    rule = MaskingRule.for_tokenizer(
        tokenizer, settings.mlm_probability, settings.predictions_cap, settings.whole_word_masking
    )
    collator = MaskingCollator(rule, tokenizer.pad_token_id, settings.seed, settings.static_masks)
    model = build_model(settings, tokenizer, base, splits["train"].tokens, reporter)
    electra = isinstance(model, ElectraPretrainingModel)
    if settings.dump_instances and engine.is_main:
        count, target = settings.dump_instances
        written = dump_instances(splits["train"], collator, tokenizer, count, target, model if electra else None)
        reporter.note(f"Wrote {written} training instances to {target}")
    if settings.max_steps == 0 and settings.dump_instances:
        return {}

    info = {
        "bertkit_version": __version__,
        "task": "pretraining",
        "objective": settings.objective,
        "base_model": settings.model or None,
        "max_length": settings.max_seq_length,
        "settings": settings_to_dict(settings),
    }
    if electra:
        info["electra"] = {"generator": describe_generator(model), "rtd_weight": settings.rtd_weight}
    splits["validation"].keep_sample(settings.eval_instances, settings.seed)
    validation = splits["validation"] if len(splits["validation"]) else None
    if validation is None:
        reporter.note("No held-out text (--validation-fraction 0 or too few documents): no evaluation")
    eval_collator = MaskingCollator(rule, tokenizer.pad_token_id, settings.seed, static=True)

    def evaluate(current) -> dict:
        if electra:
            return evaluate_electra(
                current, validation, eval_collator, settings.eval_batch_size, engine.accelerator, settings.seed
            )
        return evaluate_pretraining(current, validation, eval_collator, settings.eval_batch_size, engine.accelerator)

    def save_best(current, metrics: dict) -> None:
        pipeline = "feature-extraction" if electra else "fill-mask"
        card = model_card(
            "pretraining", pipeline, None, info["settings"], metrics, settings.model, *card_lines(settings)
        )
        if electra:
            saved, factor = electra_at_initial_scale(current)
            write = lambda directory: write_electra(saved, tokenizer, directory)  # noqa: E731
        else:
            (saved, factor), write = at_initial_embedding_scale(current.model), None
        saved_info = {**info, "embedding_rescale": factor, "metrics": metrics}
        save_model_dir(saved, tokenizer, run_dir / "model", saved_info, card, write_weights=write)

    result = engine.fit(
        model,
        splits["train"],
        run_dir=run_dir,
        evaluate=evaluate if validation else None,
        # ELECTRA too: its detection loss rises as its generator improves, the generator's MLM loss only falls
        main_metric="mlm_loss",
        greater_is_better=False,
        on_best=save_best,
        reporter=reporter,
        collate_fn=collator,
        lengths=splits["train"].lengths,
        on_epoch=splits["train"].set_epoch,
        resume_hint=resume_hint(),
    )
    summary = summarize(result)
    finish_run(
        engine,
        run_dir,
        summary,
        result.state.history,
        "rtd_auc" if electra else "mlm_accuracy",
        "pretraining: final held-out evaluation",
        reporter,
    )
    if electra and summary.get("rtd_auc", 1.0) < DETECTION_STARTED:
        reporter.note(detector_warning(summary))
    return summary


@contextmanager
def removed_on_error(run_dir: Path, keep: bool):
    """A mistake found while reading the corpus (bad UTF-8, too few documents) leaves no half-made run."""
    try:
        yield
    except BertkitError:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def summarize(result) -> dict:
    """metrics.json's scalars: the final held-out metrics and how much was trained, how fast."""
    state = result.state
    return {
        **result.final_metrics,
        "steps": state.step,
        "epochs": round(result.epochs, 3),  # the engine's count: its batches span every process
        "train_tokens": state.tokens_seen,
        "train_seconds": round(state.train_seconds, 3),
        "tokens_per_second": round(state.tokens_seen / max(state.train_seconds, 1e-9), 1),
        "eval_seconds": round(state.eval_seconds, 3),
    }


def card_lines(settings: PretrainSettings) -> tuple[str, str]:
    """How the model was made, and how to use it, for its model card."""
    objective = "masked LM + next-sentence prediction" if settings.nsp else "masked LM"
    if settings.objective == "electra":
        objective = f"ELECTRA: replaced-token detection, generator {settings.generator_size:g} of the width"
    origin = f"from `{settings.model}`" if settings.model else "from scratch"
    usage = "bertkit finetune --task classification --model THIS_DIR --train train.tsv --output runs/NAME"
    return f"Pretrained with `bertkit pretrain --recipe {settings.recipe}` ({objective}) {origin}.", usage


def get_tokenizer(settings: PretrainSettings, files: list[Path], base: str | None, saved: Path, reporter):
    """The run's tokenizer: --tokenizer, the --model's, the one this run trained before, or a new WordPiece."""
    if settings.tokenizer:  # a directory with tokenizer files (no config.json needed), or a hub name when online
        name = settings.tokenizer
        return load_tokenizer(name if Path(name).is_dir() else resolve_model_dir(name, "--tokenizer"))
    if base:
        return load_tokenizer(base)
    if (saved / "tokenizer.json").is_file():
        return load_tokenizer(str(saved))
    layout = layout_of(settings)
    held_out = set() if settings.validation else held_out_for(files, settings)
    reporter.note(
        f"Training a WordPiece tokenizer ({settings.vocab_size} pieces, "
        f"{'lower-cased' if settings.lowercase else 'cased'}) on the training documents ..."
    )

    def training_lines():  # read twice by the trainer, never held in memory
        return (
            line for number, block in enumerate(iter_blocks(files, layout)) if number not in held_out for line in block
        )

    tokenizer = train_wordpiece(training_lines, vocab_size=settings.vocab_size, lowercase=settings.lowercase)
    tokenizer.save_pretrained(saved)
    return tokenizer


def build_model(settings: PretrainSettings, tokenizer, base: str | None, tokens, reporter):
    """The model the engine trains: `PretrainingModel` (masked LM) or `ElectraPretrainingModel`."""
    if settings.objective == "electra":
        discriminator, _ = make_model(settings, tokenizer, base, "BertModel")
        generator = saved_generator(base)
        model = make_electra(discriminator, settings, tokenizer, generator)
        if generator is None:
            start_at_unigram(model.generator.generator_lm_head.bias, tokens, len(tokenizer))
            if not base and settings.attention_start == "mimetic":  # the discriminator's were set in make_model
                start_mimetic_layers(model.generator, settings.seed + 1)
        return model
    pretraining, new_head = make_model(settings, tokenizer, base, "BertForPreTraining")
    if new_head:
        start_at_unigram(pretraining.cls.predictions.bias, tokens, len(tokenizer))
    warmup = settings.head_warmup_steps if base and new_head else 0
    if settings.head_warmup_steps and not warmup:
        reporter.note(f"{base} has its masked-LM head: no head warm-up (--head-warmup-steps is ignored)")
    elif warmup:
        reporter.note(f"{base} has no masked-LM head: the new head trains alone for the first {warmup} steps")
    return PretrainingModel(pretraining, warmup * settings.grad_accum)


def make_model(settings: PretrainSettings, tokenizer, base: str | None, kind: str):
    """(model, whether its masked-LM head is new): a transformers `kind` (BertForPreTraining or BertModel)
    continued from --model, or new from --size / explicit dimensions."""
    import transformers
    from accelerate.utils import set_seed

    set_seed(settings.seed)
    if base:
        model, loading = load_pretrained(
            kind,
            base,
            allow_pickle=settings.allow_pickle,
            trust_remote_code=settings.trust_remote_code,
            output_loading_info=True,
        )
        if model.config.vocab_size < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        new_head = any(key.startswith("cls.predictions.transform") for key in loading["missing_keys"])
        return for_objective(model, settings), new_head
    explicit = settings.layers and settings.hidden
    config = bert_config(
        len(tokenizer),
        None if explicit else settings.size,
        layers=settings.layers or None,
        hidden=settings.hidden or None,
        heads=settings.heads or None,
        intermediate=settings.intermediate or None,
        max_position=max(512, settings.max_seq_length),
    )
    model = getattr(transformers, kind)(config)
    if settings.attention_start == "mimetic":
        start_mimetic(model, settings.seed)
    return for_objective(model, settings), True


def start_at_unigram(bias, tokens, vocab_size: int) -> None:
    """Start the masked-LM output bias at the log frequency of each piece in the training corpus.

    A new model's first lesson is how common each piece is. Its decoder is tied to the input
    embeddings, so unless the bias already holds those frequencies, the first steps learn them by
    giving every input embedding (and the segment embedding) one shared "frequency" direction and
    making every output state alike; after a short budget the inputs then look alike to fine-tuning,
    which stays at chance from the [CLS] vector (measured: BENCHMARKS.md, "Pretraining that pays off").
    """
    import numpy as np
    import torch

    counts = np.bincount(np.asarray(tokens), minlength=vocab_size)[:vocab_size].astype(np.float64) + 1.0
    with torch.no_grad():
        bias.copy_(torch.from_numpy(np.log(counts / counts.sum())).to(bias.dtype))


def for_objective(model, settings: PretrainSettings):
    """The model set up for this run's objective: its dropout, and without NSP the pooler and NSP classifier
    frozen (nothing reaches them, so AdamW leaves them as drawn and several processes do not wait for
    gradients that never come)."""
    if not settings.nsp:
        heads = [model.cls.seq_relationship] if hasattr(model, "cls") else []
        for module in (model.base_model.pooler, *heads):
            module.requires_grad_(False)
    return with_dropout(model, settings.dropout)


def with_dropout(model, probability: float):
    """Pretrain with `probability` on every dropout layer; the config keeps its value, which fine-tuning then uses."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = probability
    return model


def describe(meta: dict, settings: PretrainSettings) -> str:
    train, held = meta["train"], meta["validation"]
    kind = "sentence pairs (NSP)" if settings.nsp else "packed sequences"
    return (
        f"Corpus: {train['documents']} training documents, {train['tokens']:,} tokens -> {train['instances']:,} "
        f"{kind} of up to {settings.max_seq_length}; held out: {held['documents']} documents, "
        f"{held['instances']:,} instances"
    )


def dump_instances(
    features: InstanceFeatures, collator: MaskingCollator, tokenizer, count: int, target: Path, electra=None
) -> int:
    """Write the first `count` training instances, masked as epoch 1 masks them, as jsonl; with an ELECTRA
    model also what its generator (as it stands: new, or continued) put in for the discriminator."""
    target.parent.mkdir(parents=True, exist_ok=True)
    features.set_epoch(0)
    written = 0
    with open(target, "w", encoding="utf-8") as stream:
        for index in range(min(count, len(features))):
            item = features[index]
            masked, positions, labels = collator.mask(item)
            record = {
                "tokens": tokenizer.convert_ids_to_tokens(masked.tolist()),
                "segment_ids": item["token_type_ids"].tolist(),
                "masked_positions": positions.tolist(),
                "masked_labels": tokenizer.convert_ids_to_tokens(labels.tolist()),
            }
            if "next_sentence_label" in item:
                record["is_random_next"] = bool(item["next_sentence_label"])
            if electra is not None:
                corrupted, replaced = replacements(electra, collator([item]), seed=index)
                record["discriminator_tokens"] = tokenizer.convert_ids_to_tokens(corrupted)
                record["replaced_positions"] = replaced
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    if written < count:
        console.print(f"only {written} training instances exist; wrote them all")
    return written
