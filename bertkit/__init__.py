"""bertkit: pretrain BERT-style encoders and fine-tune them for classification, tagging, NLI and QA."""

__version__ = "0.1.0"
