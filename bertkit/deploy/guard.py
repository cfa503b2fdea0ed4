"""What `bertkit serve` checks before a request reaches the model: who sent it, how large it is, and that
it is strict JSON whose input records hold only text the model can use.

`RequestGuard` is plain ASGI middleware in front of the FastAPI app: every path but /health needs
`Authorization: Bearer TOKEN` when a token is set; a body larger than --max-body-mb is refused with 413
from its Content-Length, or while it streams in, before it is read whole; and a body holding NaN or
Infinity (which Python's json accepts but RFC 8259 does not) is a 422 naming where. `check_fields` then
refuses text that is not a string and fields the model cannot use.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

from bertkit.errors import BertkitError

TEXT_KEYS = ("text", "text_pair", "question", "context", "tokens")
OPEN_PATHS = ("/health",)  # answered without a token: load balancers probe it


class RequestError(Exception):
    """A bad request: its HTTP status and one line saying what to fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def read_api_key(path: Path) -> str:
    """The token in --api-key-file (its first line), or a one-line error."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip().splitlines()
    except OSError as error:
        raise BertkitError(f"--api-key-file {path}: cannot read it ({error.strerror or error})") from None
    if not token or len(token[0].strip()) < 16:
        raise BertkitError(f"--api-key-file {path}: holds no token of at least 16 characters; write one on line 1")
    return token[0].strip()


class NotJson:
    """What the strict parse leaves where a NaN, Infinity or -Infinity stood, so its place can be named."""

    def __init__(self, name: str):
        self.name = name


def not_json_place(value: Any, place: str = "body") -> tuple[str, str] | None:
    """(where, which constant) of the first NotJson in a parsed body, e.g. ("inputs[2].text", "NaN")."""
    if isinstance(value, NotJson):
        return place, value.name
    if isinstance(value, dict):
        items = ((f"{place}.{key}" if place != "body" else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{place}[{number}]", item) for number, item in enumerate(value))
    else:
        return None
    for where, item in items:
        found = not_json_place(item, where)
        if found:
            return found
    return None


def check_strict_json(body: bytes) -> None:
    """Raise a 422 RequestError naming the place of a constant JSON has not; invalid JSON is left to the app."""
    try:
        parsed = json.loads(body, parse_constant=NotJson)
    except ValueError:
        return
    found = not_json_place(parsed)
    if found:
        where, name = found
        raise RequestError(422, f"{where}: {name} is not JSON (RFC 8259 has no NaN or Infinity); send a string")


def usable_fields(task, info: dict) -> set[str]:
    """The text fields a model reads: those of the task's own input record, plus text_pair for a
    sentence-level model fine-tuned on pairs (or one saved before bertkit recorded that)."""
    fields = set(task.input_record(0, "a", "b")) & set(TEXT_KEYS)
    if "text" in fields and info.get("text_pairs", True):
        fields.add("text_pair")
    return fields


def check_fields(records: list[dict], usable: set[str], task_name: str) -> None:
    """Refuse (422) text that is not a string (tokens: a list of strings) and fields the model cannot use."""
    for number, record in enumerate(records):
        for key, value in record.items():
            if key not in TEXT_KEYS:
                continue  # ids and the caller's own fields pass through
            where = f"inputs[{number}].{key}"
            if key not in usable:
                raise RequestError(
                    422, f"{where}: this {task_name} model does not use '{key}'; send {', '.join(sorted(usable))}"
                )
            if key == "tokens":
                if not isinstance(value, list) or not all(isinstance(token, str) for token in value):
                    raise RequestError(422, f"{where}: expected a list of strings; send the words as strings")
            elif not isinstance(value, str):
                kind = "null" if value is None else type(value).__name__
                raise RequestError(422, f"{where}: expected text, found {kind}; send a JSON string")


def refuse_unused_pairs(examples, info: dict) -> None:
    """predict's inputs: a second text for a model fine-tuned on single texts would be encoded as a pair the
    model never saw; a one-line error naming the first such record."""
    if info.get("text_pairs") is not False:
        return
    paired = next((e for e in examples if getattr(e, "text_pair", None) is not None), None)
    if paired is not None:
        raise BertkitError(
            f"{paired.where}: a second text for a model fine-tuned on single texts; drop the 'text_pair' field "
            "(or its column), or use a model fine-tuned on pairs"
        )


class RequestGuard:
    """ASGI middleware: the token, the body limit and strict JSON (see the module docstring)."""

    def __init__(self, app, max_body_bytes: int, token: str | None):
        self.app, self.max_body, self.token = app, max_body_bytes, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            self.authorize(scope)
            if scope["method"] not in ("POST", "PUT", "PATCH"):
                return await self.app(scope, receive, send)
            body = await self.read_body(scope, receive)
            check_strict_json(body)
        except RequestError as refusal:
            return await self.refuse(refusal, scope, receive, send)
        return await self.app(scope, replay(body, receive), send)

    def authorize(self, scope) -> None:
        if self.token is None or scope["path"] in OPEN_PATHS:
            return
        sent = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
            raise RequestError(401, "missing or wrong token; send the header 'Authorization: Bearer TOKEN'")

    async def read_body(self, scope, receive) -> bytes:
        limit = f"at most {self.max_body / 2**20:g} MB per request (--max-body-mb); send fewer or shorter inputs"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise RequestError(413, f"a body of {int(declared):,} bytes; {limit}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:  # counted as it streams: a chunked body without Content-Length too
                raise RequestError(413, f"a body over {self.max_body:,} bytes; {limit}")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def refuse(self, refusal: RequestError, scope, receive, send) -> None:
        from starlette.responses import JSONResponse

        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else {}
        if refusal.status == 413:
            headers["Connection"] = "close"  # the rest of the body is not read
        response = JSONResponse({"error": str(refusal)}, status_code=refusal.status, headers=headers)
        await response(scope, receive, send)


def replay(body: bytes, receive):
    """A `receive` that hands the app the body already read, then waits on the real one (disconnects)."""
    sent = False

    async def receive_again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
