"""The table of user mistakes that tests/test_bad_inputs.py runs, one `Case` each.

To add one (tagging, QA, pretraining, ...), append a `Case`: the command line (placeholders below), the
files to write first, and the words the one error line must contain.

Placeholders in `argv`: {tmp} (the case's directory), {clf} / {nli} (fine-tuned model directories),
{base} (a pretrained model, no task), {bad_*} (broken model directories, see the `models` fixture), and
{train} / {dev} / {tag_train} / {qa_train} (good files from examples/). `output` is the
path (under {tmp}) that must not exist afterwards; by default `out`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Case:
    id: str
    argv: list[str]
    words: tuple[str, ...]  # all must appear in the one error line
    files: dict[str, str | bytes] = field(default_factory=dict)
    output: str = "out"


def finetune(*extra: str, task: str = "classification", train: str = "{train}", model: str = "{base}") -> list[str]:
    return [
        "finetune",
        "--task",
        task,
        "--model",
        model,
        "--train",
        train,
        "--output",
        "{tmp}/out",
        "--max-steps",
        "1",
        *extra,
    ]


CASES = [
    # ---- finetune: training and evaluation files
    Case("train-missing", finetune(train="{tmp}/nope.tsv"), ("nope.tsv", "file not found")),
    Case("train-empty", finetune(train="{tmp}/t.tsv"), ("t.tsv", "empty"), {"t.tsv": ""}),
    Case(
        "train-not-utf8",
        finetune(train="{tmp}/t.tsv"),
        ("t.tsv line 3", "UTF-8"),
        {"t.tsv": b"text\tlabel\ngood\tpos\nbad \xff\xfe\tneg\n"},
    ),
    Case(
        "tsv-wrong-field-count",
        finetune(train="{tmp}/t.tsv"),
        ("t.tsv line 3", "3 fields", "header has 2"),
        {"t.tsv": "text\tlabel\na\tpos\nb\tneg\textra\n"},
    ),
    Case(
        "csv-duplicate-header", finetune(train="{tmp}/t.csv"), ("t.csv line 1", "twice"), {"t.csv": "text,text\na,b\n"}
    ),
    Case(
        "no-label-column",
        finetune(train="{tmp}/t.tsv"),
        ("t.tsv", "no label column", "--label-column"),
        {"t.tsv": "text\tstars\na\t1\nb\t2\n"},
    ),
    Case("label-column-not-there", finetune("--label-column", "y"), ("train.tsv", "no column 'y'", "--label-column")),
    Case(
        "ambiguous-text-column",
        finetune(train="{tmp}/t.tsv"),
        ("t.tsv", "several columns", "--text-column"),
        {"t.tsv": "text\tsentence\tlabel\na\tb\tpos\nc\td\tneg\n"},
    ),
    Case(
        "one-label-only",
        finetune(train="{tmp}/t.tsv"),
        ("t.tsv", "only one label"),
        {"t.tsv": "text\tlabel\na\tpos\nb\tpos\n"},
    ),
    Case(
        "empty-text",
        finetune(train="{tmp}/t.tsv"),
        ("t.tsv line 3", "text", "empty"),
        {"t.tsv": "text\tlabel\na\tpos\n \tneg\n"},
    ),
    Case(
        "jsonl-bad-line",
        finetune(train="{tmp}/t.jsonl"),
        ("t.jsonl line 2", "not valid JSON"),
        {"t.jsonl": '{"text": "a", "label": "pos"}\n{"text": "b", "label": \n'},
    ),
    Case(
        "jsonl-not-object",
        finetune(train="{tmp}/t.jsonl"),
        ("t.jsonl line 2", "JSON object"),
        {"t.jsonl": '{"text": "a", "label": "pos"}\n["b", "neg"]\n'},
    ),
    Case(
        "jsonl-text-not-plain",
        finetune(train="{tmp}/t.jsonl"),
        ("t.jsonl line 2", "not a plain value"),
        {"t.jsonl": '{"text": "a", "label": "pos"}\n{"text": {"x": 1}, "label": "neg"}\n'},
    ),
    Case("json-not-a-list", finetune(train="{tmp}/t.json"), ("t.json", "JSON list"), {"t.json": '{"text": "a"}'}),
    Case(
        "eval-label-unseen",
        finetune("--eval", "{tmp}/dev.tsv"),
        ("dev.tsv line 3", "'maybe'", "not in the training"),
        {"dev.tsv": "text\tlabel\na\tpos\nb\tmaybe\n"},
    ),
    Case(
        "nli-without-pairs", finetune(task="nli", train="{train}"), ("train.tsv", "second text", "--text-pair-column")
    ),
    Case(
        "nli-empty-hypothesis",
        finetune(task="nli", train="{tmp}/p.tsv"),
        ("p.tsv line 3", "second text", "empty"),
        {"p.tsv": "premise\thypothesis\tlabel\na\tb\tentailment\nc\t\tcontradiction\n"},
    ),
    # ---- regression and multi-label files
    Case(
        "regression-score-not-a-number",
        finetune(task="regression", train="{tmp}/s.tsv"),
        ("s.tsv line 3", "score", "'high'", "not a finite number"),
        {"s.tsv": "text\tscore\na\t1.5\nb\thigh\n"},
    ),
    Case(
        "regression-score-empty",
        finetune(task="regression", train="{tmp}/s.tsv"),
        ("s.tsv line 3", "score", "empty"),
        {"s.tsv": "text\tscore\na\t1.5\nb\t \n"},
    ),
    Case(
        "multilabel-empty-label-list",
        finetune(task="multilabel", train="{tmp}/m.jsonl"),
        ("m.jsonl line 2", "no label", "--allow-empty-labels"),
        {"m.jsonl": '{"text": "a", "labels": ["x", "y"]}\n{"text": "b", "labels": []}\n'},
    ),
    Case(
        "multilabel-label-unseen-at-eval",
        finetune("--eval", "{tmp}/d.csv", task="multilabel", train="{tmp}/m.csv"),
        ("d.csv line 3", "'z'", "not in the training"),
        {"m.csv": 'text,labels\na,"x,y"\nb,x\n', "d.csv": 'text,labels\na,x\nb,"x,z"\n'},
    ),
    Case(
        "multilabel-threshold-out-of-range", finetune("--threshold", "1.5", task="multilabel"), ("--threshold is 1.5",)
    ),
    # ---- finetune: option values and combinations
    Case("lr-zero", finetune("--lr", "0"), ("--learning-rate", "above 0")),
    Case("batch-size-zero", finetune("--batch-size", "0"), ("--batch-size is 0", "at least 1")),
    Case("batch-size-not-a-number", finetune("--batch-size", "valid integer"), ("--batch-size", "valid integer")),
    Case("unknown-option", finetune("--lerning-rate", "1"), ("--lerning-rate",)),
    Case("warmup-ratio-too-big", finetune("--warmup-ratio", "1.5"), ("--warmup-ratio is 1.5",)),
    Case("max-length-too-small", finetune("--max-length", "4"), ("--max-length is 4", "at least 8")),
    Case("epochs-zero", finetune("--epochs", "0", "--max-steps", "-1"), ("--epochs is 0.0",)),
    Case("keep-checkpoints-zero", finetune("--keep-checkpoints", "0"), ("--keep-checkpoints is 0",)),
    Case("negative-save-every", finetune("--save-every", "-5"), ("--save-every is -5", "negative")),
    Case("unknown-task", finetune(task="summarize"), ("--task is 'summarize'", "classification")),
    Case("precision-unknown", finetune("--precision", "fp8"), ("--precision is 'fp8'", "auto")),
    Case("precision-bf16-on-cpu", finetune("--precision", "bf16"), ("--precision bf16", "GPU", "fp32")),
    Case("resume-and-overwrite", finetune("--resume", "--overwrite"), ("--resume and --overwrite",)),
    Case("resume-nothing", finetune("--resume"), ("out", "no run to resume", "drop --resume")),
    Case("output-is-a-file", finetune(), ("out", "is a file", "--output"), {"out": "not a directory"}),
    Case(
        "processes-uneven",
        finetune("--num-processes", "3", "--num-machines", "2"),
        ("--num-processes 3", "--num-machines 2"),
    ),
    Case(
        "machine-rank-out-of-range",
        finetune("--num-processes", "2", "--num-machines", "2", "--machine-rank", "2"),
        ("--machine-rank is 2",),
    ),
    Case("port-out-of-range", finetune("--main-process-port", "70000"), ("--main-process-port is 70000",)),
    # ---- config files
    Case("config-missing", finetune("--config", "{tmp}/run.yaml"), ("run.yaml", "not found", "--config")),
    Case(
        "config-bad-yaml",
        finetune("--config", "{tmp}/run.yaml"),
        ("run.yaml", "not valid YAML"),
        {"run.yaml": "lr: [1\nbatch: 2\n"},
    ),
    Case(
        "config-unknown-key",
        finetune("--config", "{tmp}/run.yaml"),
        ("run.yaml", "unknown setting 'lerning_rate'"),
        {"run.yaml": "lerning_rate: 0.1\n"},
    ),
    Case(
        "config-wrong-type",
        finetune("--config", "{tmp}/run.toml"),
        ("run.toml", "'batch_size'", "int"),
        {"run.toml": 'batch_size = "many"\n'},
    ),
    # ---- model directories
    Case("model-empty-dir", finetune(model="{bad_empty}"), ("empty", "no config.json", "model directory")),
    Case("model-truncated", finetune(model="{bad_truncated}"), ("truncated", "cannot load the model", "complete run")),
    Case("model-pickle-only", finetune(model="{bad_pickle}"), ("pickle", "pytorch_model.bin", "--allow-pickle")),
    Case("model-no-weights", finetune(model="{bad_noweights}"), ("noweights", "no weights", "model.safetensors")),
    Case("model-no-tokenizer", finetune(model="{bad_notokenizer}"), ("notokenizer", "no tokenizer files")),
    Case(
        "model-hub-name-offline", finetune(model="someone/bert-nowhere"), ("someone/bert-nowhere", "offline", "--model")
    ),
    Case("model-is-a-file", finetune(model="{train}"), ("train.tsv", "is a file", "--model")),
    # ---- predict and evaluate
    Case(
        "predict-input-missing",
        ["predict", "--model", "{clf}", "{tmp}/in.txt", "--output", "{tmp}/out"],
        ("in.txt", "file not found"),
    ),
    Case(
        "predict-input-empty",
        ["predict", "--model", "{clf}", "{tmp}/in.txt", "--output", "{tmp}/out"],
        ("in.txt", "empty"),
        {"in.txt": "\n\n"},
    ),
    Case(
        "predict-batch-size-zero",
        ["predict", "--model", "{clf}", "{train}", "--batch-size", "0", "--output", "{tmp}/out"],
        ("--batch-size is 0",),
    ),
    Case(
        "predict-output-format",
        ["predict", "--model", "{clf}", "{tmp}/in.txt", "--output", "{tmp}/out.xml"],
        ("out.xml", "cannot write", ".jsonl"),
        {"in.txt": "good film\n"},
        output="out.xml",
    ),
    Case(
        "predict-conll-output-of-a-classifier",
        ["predict", "--model", "{clf}", "{tmp}/in.txt", "--output", "{tmp}/out.conll"],
        ("out.conll", "per-word tags", ".jsonl"),
        {"in.txt": "good film\n"},
        output="out.conll",
    ),
    Case(
        "predict-model-without-task",
        ["predict", "--model", "{base}", "{train}", "--output", "{tmp}/out"],
        ("bertkit.json", "'bertkit finetune' run"),
    ),
    Case(
        "predict-model-of-unknown-task",
        ["predict", "--model", "{bad_task}", "{train}", "--output", "{tmp}/out"],
        ("unknown task 'summarize'",),
    ),
    Case(
        "predict-model-damaged-info",
        ["predict", "--model", "{bad_info}", "{train}", "--output", "{tmp}/out"],
        ("bertkit.json", "not valid JSON"),
    ),
    Case(
        "predict-model-labels-mismatch",
        ["predict", "--model", "{bad_labels}", "{train}", "--output", "{tmp}/out"],
        ("bertkit.json", "3 labels", "2 outputs"),
    ),
    Case(
        "predict-model-pickle-only",
        ["predict", "--model", "{bad_pickle_clf}", "{train}", "--output", "{tmp}/out"],
        ("pytorch_model.bin", "--allow-pickle"),
    ),
    Case(
        "evaluate-nli-model-on-single-texts",
        ["evaluate", "--model", "{nli}", "{dev}", "--output", "{tmp}/out"],
        ("dev.tsv", "second text"),
    ),
    Case(
        "evaluate-label-unseen",
        ["evaluate", "--model", "{clf}", "{tmp}/d.tsv", "--output", "{tmp}/out"],
        ("d.tsv line 3", "'maybe'"),
        {"d.tsv": "text\tlabel\na\tpos\nb\tmaybe\n"},
    ),
    Case(
        "evaluate-without-labels",
        ["evaluate", "--model", "{clf}", "{tmp}/d.txt", "--output", "{tmp}/out"],
        ("d.txt", "no label column"),
        {"d.txt": "good film\n"},
    ),
    Case(
        "evaluate-model-truncated",
        ["evaluate", "--model", "{bad_truncated_clf}", "{dev}", "--output", "{tmp}/out"],
        ("truncated_clf", "cannot load the model"),
    ),
    # ---- tagging
    Case(
        "conll-line-missing-its-tag",
        finetune(task="tagging", train="{tmp}/t.conll"),
        ("t.conll line 2", "1 fields", "word first, tag last"),
        {"t.conll": "John\tB-PER\nlives\nin\tO\n\n"},
    ),
    Case(
        "conllu-spaces-not-tabs",
        finetune(task="tagging", train="{tmp}/t.conllu"),
        ("t.conllu line 2", "CoNLL-U has 10"),
        {"t.conllu": "# sent\n1\tJohn\tjohn\tPROPN\n\n"},
    ),
    Case(
        "jsonl-tags-and-tokens-differ",
        finetune(task="tagging", train="{tmp}/t.jsonl"),
        ("t.jsonl line 1", "2 tokens but 1 tags"),
        {"t.jsonl": '{"tokens": ["a", "b"], "tags": ["O"]}\n'},
    ),
    Case(
        "tag-field-unknown",
        finetune("--tag-field", "lemma", task="tagging", train="{tag_train}"),
        ("--tag-field", "lemma", "upos"),
    ),
    Case(
        "pooling-on-a-token-task",
        finetune("--pooling", "mean", task="tagging", train="{tag_train}"),
        ("--pooling mean", "tagging", "drop --pooling"),
    ),
    # ---- extractive QA
    Case(
        "qa-answer-not-in-passage",
        finetune(task="qa", train="{tmp}/q.jsonl"),
        ("q.jsonl line 1", "id q1", "not at character 0", "--skip-bad-examples"),
        {
            "q.jsonl": '{"id": "q1", "question": "who?", "context": "Ann lives here.", '
            '"answers": {"text": ["Bob"], "answer_start": [0]}}\n'
        },
    ),
    Case(
        "qa-training-question-without-answers",
        finetune(task="qa", train="{tmp}/q.json"),
        ("q.json", "id q2", "no 'answers'"),
        {
            "q.json": '{"data": [{"title": "x", "paragraphs": [{"context": "Ann lives here.", '
            '"qas": [{"id": "q2", "question": "who?"}]}]}]}'
        },
    ),
    Case(
        "qa-stride-leaves-no-room",
        finetune("--doc-stride", "400", "--max-length", "128", task="qa", train="{qa_train}"),
        ("train.jsonl line 1", "--doc-stride 400", "lower --doc-stride"),
    ),
    # ---- strategies
    Case("lora-rank-zero", finetune("--strategy", "lora", "--lora-rank", "0"), ("--lora-rank is 0",)),
    # ---- pretrain
    Case(
        "pretrain-corpus-missing",
        ["pretrain", "{tmp}/nope.txt", "--output", "{tmp}/out"],
        ("nope.txt", "file not found"),
    ),
    Case(
        "pretrain-size-unknown",
        ["pretrain", "{train}", "--output", "{tmp}/out", "--size", "huge"],
        ("--size", "huge", "tiny"),
    ),
    Case(
        "pretrain-time-budget-unreadable",
        ["pretrain", "{train}", "--output", "{tmp}/out", "--time-budget", "5x"],
        ("--time-budget", "5x", "30m"),
    ),
    Case(
        "predict-with-a-pretrained-model",
        ["predict", "--model", "{pretrained}", "{train}", "--output", "{tmp}/out"],
        ("a pretrained model", "fine-tune it first", "bertkit finetune"),
    ),
    # ---- embed
    Case(
        "embed-output-format",
        ["embed", "--model", "{base}", "hello", "--output", "{tmp}/v.txt"],
        ("v.txt", ".npy or .jsonl"),
        output="v.txt",
    ),
    Case("embed-nothing-to-do", ["embed", "--model", "{base}", "hello"], ("nothing to do", "--similarity")),
]
