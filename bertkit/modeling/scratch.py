"""New models from nothing: a WordPiece tokenizer trained on text, and BERT configs by size."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from bertkit.errors import BertkitError

# layers x hidden, as in the BERT papers' and Turc et al.'s compact models; heads = hidden / 64, FFN = 4 x hidden.
SIZES = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(
    texts: Iterable[str] | Callable[[], Iterable[str]],
    vocab_size: int = 8000,
    lowercase: bool = True,
    min_frequency: int = 2,
):
    """Train a BERT WordPiece tokenizer on `texts`; returns a fast BERT tokenizer that adds [CLS]/[SEP] itself.

    The result is the same, byte for byte, in every process. Upstream's trainer gives the `##x`
    continuation pieces their ids in hash-map order, and merges with equal counts are then chosen by
    those ids (huggingface/tokenizers issue 1794), so the same text gave different vocabularies. A
    first pass with no room for merges lists exactly those pieces; the real pass gets them in sorted
    order as reserved tokens (so they hold fixed ids from the start), and the tokenizer is rebuilt
    from its vocabulary without marking them special.

    `texts` is read twice: pass a list, or a function that returns a fresh iterator each time (a corpus
    too big for memory).
    """
    from tokenizers import Tokenizer, models, trainers

    def fresh_texts():
        return texts() if callable(texts) else iter(texts)

    def trained(size: int, reserved: list[str]):
        draft = bert_wordpiece_pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")), lowercase)
        trainer = trainers.WordPieceTrainer(
            vocab_size=size, min_frequency=min_frequency, special_tokens=reserved, continuing_subword_prefix="##"
        )
        draft.train_from_iterator(fresh_texts(), trainer=trainer)
        return draft.get_vocab(with_added_tokens=False)

    continuations = sorted(piece for piece in trained(1, SPECIAL_TOKENS) if piece.startswith("##"))
    vocab = trained(vocab_size, SPECIAL_TOKENS + continuations)
    model = models.WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##")
    return as_bert_tokenizer(bert_wordpiece_pipeline(Tokenizer(model), lowercase), lowercase)


def bert_wordpiece_pipeline(tokenizer, lowercase: bool):
    """BERT's normalizer and pre-tokenizer on a `tokenizers.Tokenizer`."""
    from tokenizers import normalizers, pre_tokenizers

    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def as_bert_tokenizer(tokenizer, lowercase: bool):
    """The [CLS] A [SEP] B [SEP] template, WordPiece decoding and BERT's special tokens, as a transformers tokenizer."""
    from tokenizers import AddedToken, decoders, processors
    from transformers import BertTokenizerFast

    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        do_lower_case=lowercase,
    )


def bert_config(
    vocab_size: int,
    size: str | None = "mini",
    layers: int | None = None,
    hidden: int | None = None,
    heads: int | None = None,
    intermediate: int | None = None,
    max_position: int = 512,
):
    """A BertConfig from a size preset, with any explicit dimension overriding it."""
    from transformers import BertConfig

    if size is not None and size not in SIZES:
        raise BertkitError(f"--size is '{size}'; choose one of: {', '.join(SIZES)}")
    preset_layers, preset_hidden = SIZES[size] if size else (None, None)
    layers = layers or preset_layers
    hidden = hidden or preset_hidden
    if not layers or not hidden:
        raise BertkitError("give --size, or both --layers and --hidden")
    heads = heads or max(1, hidden // 64)
    if hidden % heads:
        raise BertkitError(f"--hidden {hidden} is not divisible by --heads {heads}; choose sizes that divide")
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate or 4 * hidden,
        max_position_embeddings=max_position,
    )


def init_model_dir(
    texts: list[str], target: Path, size: str = "tiny", vocab_size: int = 4000, seed: int = 0, **dimensions
) -> Path:
    """Write a randomly initialised BERT (with MLM and NSP heads) and a tokenizer trained on `texts` to `target`."""
    import torch
    from transformers import BertForPreTraining

    tokenizer = train_wordpiece(texts, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = BertForPreTraining(bert_config(len(tokenizer), size, **dimensions))
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return target
