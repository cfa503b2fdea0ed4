"""`bertkit serve`: an HTTP JSON service over any model directory (PyTorch or ONNX export).

    POST /predict  {"inputs": [record, ...]}  ->  {"predictions": [record, ...]}
    GET  /health   ->  {"status": "ok", "task": ..., "runtime": ...}
    GET  /docs     ->  the OpenAPI page FastAPI generates

Each input record is a predict input line; the answer holds the records `bertkit predict` writes,
made by the same reader, encoder, inference loop and decoder. Why FastAPI + uvicorn: both are
maintained, FastAPI gives request validation and OpenAPI docs for free, and asyncio suits a
micro-batching queue (many waiting requests, one model).

Dynamic micro-batching: handlers put their parsed inputs on a queue; one batcher task takes the
first request, lets others join for up to --max-wait-ms (and takes at once whatever queued while
the model was busy) up to --max-batch-size inputs, and runs them as one call on a single worker
thread, the only thread that touches the model. Every batch's size is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bertkit import __version__
from bertkit.deploy.guard import TEXT_KEYS, RequestError, RequestGuard, check_fields, read_api_key, usable_fields
from bertkit.deploy.onnx_runner import OnnxRunner
from bertkit.errors import BertkitError
from bertkit.inference import Finetuned, load_finetuned, run_predictions
from bertkit.settings import PredictSettings, ServeSettings

LOG = logging.getLogger("bertkit.serve")


class PredictRequest(BaseModel):
    inputs: list[dict[str, Any]] = Field(
        description='predict input records: {"text": ...}, {"text": ..., '
        '"text_pair": ...}, {"tokens": [...]} or {"question": ..., "context": ...}',
        examples=[[{"text": "a fine film"}]],
    )


class PredictResponse(BaseModel):
    predictions: list[dict[str, Any]]


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def check_limits(records: list[dict], settings: ServeSettings) -> None:
    if not records:
        raise RequestError(422, "'inputs' is empty; send at least one input record")
    if len(records) > settings.max_inputs:
        raise RequestError(413, f"{len(records)} inputs; at most {settings.max_inputs} per request (--max-inputs)")
    for number, record in enumerate(records):
        size = sum(
            len(" ".join(map(str, value))) if isinstance(value, list) else len(str(value))
            for key, value in record.items()
            if key in TEXT_KEYS
        )
        if size > settings.max_chars:
            raise RequestError(
                413,
                f"inputs[{number}]: {size} characters of text, over the limit of "
                f"{settings.max_chars} (--max-chars); shorten or split it",
            )


def read_examples(finetuned: Finetuned, records: list[dict], settings: PredictSettings) -> list:
    """The task's examples from request records, through the task's own jsonl reader (as predict reads them)."""
    # Question records in predict files need ids; a request may leave them out.
    records = [
        {"id": str(number), **record} if "question" in record else record for number, record in enumerate(records)
    ]
    with tempfile.TemporaryDirectory(prefix="bertkit-serve-") as folder:
        path = Path(folder) / "inputs.jsonl"
        path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
        try:
            return finetuned.task.read(path, finetuned.options, labelled=False)
        except BertkitError as error:  # "inputs line 3" is the third input of the request
            raise RequestError(422, one_line(str(error).replace(str(path), "inputs"))) from None


class Batcher:
    """Collects concurrent requests into batches and runs them on the one thread that owns the model."""

    def __init__(self, finetuned: Finetuned, settings: PredictSettings, max_batch: int, max_wait_ms: float):
        self.finetuned, self.settings = finetuned, settings
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bertkit-model")
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown(wait=True)

    async def predict(self, examples: list) -> list[dict]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((examples, future))
        return await future

    async def collect(self, first: tuple) -> tuple[list[tuple], tuple | None]:
        """`first` and the requests that join it; a request that would overflow the batch is held for the next."""
        loop = asyncio.get_running_loop()
        items, count = [first], len(first[0])
        deadline = loop.time() + self.max_wait
        while count < self.max_batch:
            remaining = deadline - loop.time()
            try:
                item = (
                    self.queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self.queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if count + len(item[0]) > self.max_batch:
                return items, item
            items.append(item)
            count += len(item[0])
        return items, None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        held = None
        while True:
            first, held = held or await self.queue.get(), None
            items, held = await self.collect(first)
            examples = [example for batch, _ in items for example in batch]
            started = loop.time()
            try:
                records = await loop.run_in_executor(self.executor, self.records, examples)
            except Exception as error:  # answer every waiting request; the service goes on
                for _, future in items:
                    if not future.done():
                        future.set_exception(error)
                continue
            finally:
                LOG.info(
                    "batch of %d inputs from %d requests: %.0f ms",
                    len(examples),
                    len(items),
                    1000 * (loop.time() - started),
                )
            start = 0
            for batch, future in items:
                if not future.done():  # a client that went away leaves a cancelled future
                    future.set_result(records[start : start + len(batch)])
                start += len(batch)

    def records(self, examples: list) -> list[dict]:
        predictions = run_predictions(self.finetuned, examples, self.settings)
        return [self.finetuned.task.prediction_record(e, p) for e, p in zip(examples, predictions)]


def create_app(
    finetuned: Finetuned, settings: ServeSettings, predict_settings: PredictSettings, token: str | None = None
):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    batcher = Batcher(finetuned, predict_settings, settings.max_batch_size, settings.max_wait_ms)
    runtime = "onnx" if isinstance(finetuned.model, OnnxRunner) else "torch"
    usable = usable_fields(finetuned.task, finetuned.info)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="bertkit",
        version=__version__,
        lifespan=lifespan,
        description=f"{finetuned.task.name} model {settings.model} ({runtime})",
    )
    app.add_middleware(RequestGuard, max_body_bytes=int(settings.max_body_mb * 2**20), token=token)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": one_line(message)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, 'the body is not valid JSON; send {"inputs": [{"text": ...}, ...]}')
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
        return error(422, f'{where}: {first.get("msg", "invalid")}; send {{"inputs": [record, ...]}}')

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, exc: RequestError):
        return error(exc.status, str(exc))

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> dict:
        """The records `bertkit predict` would write for these inputs, in order."""
        check_limits(body.inputs, settings)
        check_fields(body.inputs, usable, finetuned.task.name)
        examples = read_examples(finetuned, body.inputs, predict_settings)
        try:
            return {"predictions": await batcher.predict(examples)}
        except BertkitError as failure:
            raise RequestError(422, str(failure)) from None
        except Exception as failure:  # logged in full, answered in one line
            LOG.exception("prediction failed")
            raise RequestError(500, f"prediction failed ({type(failure).__name__}); see the server log") from None

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "task": finetuned.task.name, "runtime": runtime, "labels": finetuned.labels}

    return app


def serve(settings: ServeSettings) -> None:
    """Load the model, then serve until SIGINT/SIGTERM (in-flight requests are answered first; exit 0)."""
    import uvicorn

    settings.validate()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(settings.log_level.upper())
    predict_settings = PredictSettings(
        model=settings.model,
        input=Path("-"),
        batch_size=settings.batch_size,
        runtime=settings.runtime,
        threads=settings.threads,
        allow_pickle=settings.allow_pickle,
        trust_remote_code=settings.trust_remote_code,
    )
    finetuned = load_finetuned(predict_settings)
    if isinstance(finetuned.model, OnnxRunner):
        finetuned.model.stop_spinning()
    token = read_api_key(settings.api_key_file) if settings.api_key_file else None
    app = create_app(finetuned, settings, predict_settings, token)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=settings.log_level == "debug",
            timeout_graceful_shutdown=60,
        )
    )
    # uvicorn drains on SIGTERM, then raises the signal again for the handler it found; a no-op handler
    # here makes that second delivery harmless, so a graceful stop exits 0.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    except SystemExit:  # uvicorn exits 1 when it cannot bind
        raise BertkitError(
            f"{settings.host}:{settings.port}: cannot listen there (in use, or not an address of "
            "this machine); pick another --port or --host"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
