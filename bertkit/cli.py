"""The command line: a thin layer that turns flags into a settings object and calls the library.

Each command's options are generated from its settings dataclass (``bertkit/settings.py``),
so flags, config-file keys and the library's settings can never drift apart. User mistakes
(``BertkitError``, bad flags) end in one line on stderr and exit code 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from typer.exceptions import TyperException

from bertkit import __version__
from bertkit.errors import BertkitError
from bertkit.launch import is_worker_but_not_main, launch, needs_launch
from bertkit.rundir import remember_command
from bertkit.settings import (
    EmbedSettings,
    EvaluateSettings,
    ExportSettings,
    FinetuneSettings,
    PredictSettings,
    PretrainSettings,
    ServeSettings,
    build_settings,
    field_type,
    flag,
    load_config,
    tuple_types,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    help="Pretrain BERT-style encoders and fine-tune them for classification, NLI, tagging and QA, offline.",
)


def fail(error: BertkitError, debug: bool) -> None:
    """Print a user error as one line, or re-raise it with its traceback under --debug.

    Under --num-processes only the main worker prints: the others hold the same message.
    """
    if debug:
        raise
    if not is_worker_but_not_main():
        typer.echo(f"error: {' '.join(str(error).split())}", err=True)
    raise typer.Exit(error.exit_code)


def settings_command(name: str, settings_cls: type, run: Callable[[Any], Any], doc: str) -> None:
    """Register command `name` whose options are the fields of `settings_cls`; it calls `run(settings)`."""
    fields = help_order(settings_cls)

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        given = {key: value for key, value in kwargs.items()
                 if getattr(ctx.get_parameter_source(key), "name", "") in ("COMMANDLINE", "ENVIRONMENT")}
        debug = bool(kwargs.get("debug"))
        try:
            config_path = kwargs.get("config")
            config_values = load_config(config_path) if config_path else {}
            settings = build_settings(settings_cls, config_values, given, config_path)
            settings.validate()
            if needs_launch(settings):
                raise typer.Exit(launch(name, settings))
            run(settings)
        except BertkitError as error:
            fail(error, debug)
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            raise typer.Exit(130)

    parameters = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    annotations: dict[str, Any] = {"ctx": typer.Context, "return": None}
    for f in fields:
        annotation = cli_annotation(f)
        parameters.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=cli_parameter(f),
                                            annotation=annotation))
        annotations[f.name] = annotation
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    command.__doc__ = doc
    command.__name__ = name
    app.command(name, no_args_is_help=True)(command)


def help_order(settings_cls: type) -> list[dataclasses.Field]:
    """The command's own options first, then those it shares (training, then --config/--debug)."""
    by_name = {f.name: f for f in dataclasses.fields(settings_cls)}
    ordered: dict[str, dataclasses.Field] = {}
    for cls in settings_cls.__mro__:
        for name in getattr(cls, "__annotations__", {}):
            if name in by_name and name not in ordered:
                ordered[name] = by_name[name]
    return list(ordered.values())


def cli_annotation(f: dataclasses.Field) -> Any:
    kind = field_type(f)
    if kind is list:  # list[str] fields take plain strings (e.g. sentences), other lists paths
        return Optional[list[str]] if "str" in str(f.type) else Optional[list[Path]]
    if kind is tuple:  # an option taking several values: --dump-instances 20 out.jsonl
        return Optional[tuple[tuple_types(f)]]  # type: ignore[misc]
    if kind is bool:
        return Optional[bool] if f.default is None else bool  # None: left to a preset (pretrain --recipe)
    return Optional[kind] if f.default is None else kind


def cli_parameter(f: dataclasses.Field) -> Any:
    meta = f.metadata
    default = f.default if f.default is not dataclasses.MISSING else None
    help_text = meta["help"]
    if meta.get("choices"):
        help_text += f" [choices: {', '.join(meta['choices'])}]"
    if meta.get("argument"):
        return typer.Argument(default, help=help_text, show_default=False)
    names = [flag(f.name)]
    if meta.get("short"):
        names.append(meta["short"])
    if field_type(f) is bool:
        names = [f"{flag(f.name)}/{meta.get('off') or '--no-' + f.name.replace('_', '-')}"]
    return typer.Option(default, *names, help=help_text, show_default=default not in (None, "", False))


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"bertkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Pretrain BERT-style encoders and fine-tune them for classification, NLI, tagging and QA, offline."""


def run_finetune(settings: FinetuneSettings) -> None:
    from bertkit.finetune import finetune

    finetune(settings)


def run_pretrain(settings: PretrainSettings) -> None:
    from bertkit.pretrain import pretrain

    pretrain(settings)


def run_predict(settings: PredictSettings) -> None:
    from bertkit.inference import predict_file

    predict_file(settings)


def run_evaluate(settings: EvaluateSettings) -> None:
    from bertkit.inference import evaluate_file

    evaluate_file(settings)


settings_command("finetune", FinetuneSettings, run_finetune, """Fine-tune a model on a labelled file.

```
bertkit finetune --task classification --model MODEL_DIR --train train.tsv --eval dev.tsv --output runs/sentiment
bertkit finetune --task nli --model MODEL_DIR --train pairs.tsv --eval dev.tsv --output runs/nli --epochs 2
bertkit finetune --task tagging --model MODEL_DIR --train train.conllu --eval dev.conllu --tag-field upos --output runs/pos
bertkit finetune --task qa --model MODEL_DIR --train train-v1.1.json --eval dev-v1.1.json --output runs/qa
bertkit finetune --config examples/configs/sentiment.yaml --lr 3e-5
bertkit finetune --task classification --strategy adapters --adapter-size 64 --lr 1e-3 ...
bertkit finetune --task nli --strategy lora --lora-rank 8 --layer-mix weighted --pooling mean ...
```

Strategies: full (default), frozen (head only), adapters, lora; see the README for when to pick which.

Writes OUTPUT/model (a Hugging Face model directory plus bertkit.json), metrics.json,
log.jsonl, settings.yaml and curves.png.
""")

settings_command("pretrain", PretrainSettings, run_pretrain, """Pretrain a BERT encoder on raw text: masked LM + next-sentence prediction.

```
bertkit pretrain corpus/*.txt --output runs/base --size mini --max-seq-length 128 --max-steps 20000
bertkit pretrain corpus.txt --output runs/mine --model runs/base/model --lr 1e-4
bertkit pretrain corpus.txt --output runs/peek --dump-instances 20 instances.jsonl --max-steps 0
bertkit pretrain corpus.txt --output runs/2h --size small --time-budget 2h --eval-every 500
```

Documents are blank-line separated blocks (or one per line / per file); lines are split
into sentences. Without --model or --tokenizer a WordPiece tokenizer is trained on the
corpus. Writes OUTPUT/model (loads as BertForPreTraining / BertForMaskedLM and as --model
of bertkit finetune), metrics.json, log.jsonl, settings.yaml, curves.png and cache/.
""")

settings_command("predict", PredictSettings, run_predict, """Predict labels for every input of a file, in input order.

```
bertkit predict --model runs/sentiment/model inputs.txt --output predictions.jsonl
cat inputs.txt | bertkit predict --model runs/sentiment/model - --output predictions.csv
bertkit predict --model runs/qa/model questions.jsonl --output answers.jsonl
```

For NLI, a txt input holds the two texts of a pair separated by a tab. For tagging, input is
CoNLL, CoNLL-U, jsonl tokens, or raw text lines (txt); `--output tags.conll` writes word<TAB>tag.
""")

settings_command("evaluate", EvaluateSettings, run_evaluate, """Score a fine-tuned model on a labelled file.

```
bertkit evaluate --model runs/sentiment/model test.tsv --output metrics.json
bertkit evaluate --model runs/qa/model dev-v1.1.json --output metrics.json
```

Prints the task's metrics (for classification: accuracy, macro-F1 and a per-class table; for
tagging: token accuracy and, for BIO/BIOES tags, entity precision/recall/F1 and a per-type table).
""")


def run_embed(settings: EmbedSettings) -> None:
    from bertkit.embed import embed

    embed(settings)


settings_command("embed", EmbedSettings, run_embed, """Sentence vectors or a word's contextual vectors from any model directory.

```
bertkit embed --model MODEL_DIR sentences.txt --output vectors.npy --pooling mean
bertkit embed --model MODEL_DIR --similarity --word apple "I ate an apple" "apple released a new phone" --plot apple.png
```

Vectors go to .npy or .jsonl; --similarity prints their cosine similarity matrix.
""")


def run_export(settings: ExportSettings) -> None:
    from bertkit.deploy.export import export_model

    export_model(settings)


def run_serve(settings: ServeSettings) -> None:
    from bertkit.deploy.serve import serve

    serve(settings)


settings_command("export", ExportSettings, run_export, """Export a fine-tuned model to ONNX (fp32 or int8) for ONNX Runtime.

```
bertkit export --model runs/sentiment/model --output runs/sentiment/onnx
bertkit export --model runs/sentiment/model --output runs/sentiment/onnx-int8 --quantize int8
```

Any task and strategy (LoRA is merged into the weights). The export checks itself against
PyTorch and stops if they disagree. OUTPUT holds model.onnx, config.json, the tokenizer,
bertkit.json and README.md; predict, evaluate and serve take it as --model.
""")

settings_command("serve", ServeSettings, run_serve, """Serve a model over HTTP: POST /predict, GET /health, docs at /docs.

```
bertkit serve --model runs/sentiment/onnx --port 8000
curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"inputs": [{"text": "a fine film"}]}'
```

Each input is a predict input record ({"text": ...}, {"text": ..., "text_pair": ...},
{"tokens": [...]}, {"question": ..., "context": ...}); the answer holds the records predict
writes, in order. Requests arriving together run as one batch (--max-batch-size, --max-wait-ms).
""")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `bertkit` script: bad flags also end in one line, not a usage box."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    try:
        with remember_command(args):
            code = command.main(args=args, prog_name="bertkit", standalone_mode=False)
    except TyperException as error:  # bad flags: typer's own usage errors
        context = getattr(error, "ctx", None)
        name = getattr(context, "info_name", None)
        hint = f"; see 'bertkit {name} --help'" if name and name != "bertkit" else "; see 'bertkit --help'"
        typer.echo(f"error: {' '.join(error.format_message().split())}{hint}", err=True)
        sys.exit(getattr(error, "exit_code", 2) or 2)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
