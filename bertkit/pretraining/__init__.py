"""Pretraining pieces: corpus reading and sentence splitting (corpus), token-range instances for NSP or
packed sequences (instances), the tokenized on-disk cache (cache), masking and its collator (masking),
the model wrapper that decodes only masked positions (model) and held-out metrics (metrics).
The entry point is `bertkit.pretrain.pretrain`."""
