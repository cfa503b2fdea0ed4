"""`bertkit serve`: a real server in a subprocess on a free port, real HTTP requests.

Protects: /predict answers with the records `bertkit predict` writes (exported and PyTorch
directories, text and QA records), /health and the OpenAPI docs, bad requests get a 4xx with a
one-line JSON error and the server carries on, concurrent requests run as one batch (read from
the logged batch sizes), and SIGTERM answers the request in flight and exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, free_port
from deploy_runs import assert_same_records, export, finetune, invoke, read_jsonl


def request(
    port: int, path: str, body: bytes | dict | None = None, timeout: float = 30, headers: dict | None = None
) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    call = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        headers={**({"content-type": "application/json"} if data is not None else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


class Server:
    def __init__(self, model: Path, log: Path, *options: str):
        self.port, self.log = free_port(), log
        self.stream = open(log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bertkit", "serve", "--model", str(model), "--port", str(self.port), *options],
            cwd=ROOT,
            stdout=self.stream,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, log.read_text()
            try:
                if request(self.port, "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"server did not start: {log.read_text()}")

    def batch_sizes(self) -> list[int]:
        return [
            int(line.split("batch of ")[1].split()[0])
            for line in self.log.read_text().splitlines()
            if "batch of " in line
        ]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.stream.close()
        return code


@contextmanager
def running(model: Path, log: Path, *options: str):
    server = Server(model, log, *options)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    model = finetune(tiny_model, root / "run", "classification")
    return export(model, root / "onnx", "--quantize", "int8")


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    with running(
        exported,
        log,
        *("--max-wait-ms", "300", "--max-inputs", "50", "--max-chars", "500", "--threads", "1"),
        *("--max-body-mb", "0.05"),
    ) as started:
        yield started


def test_predict_answers_what_the_predict_command_writes(server, exported, tmp_path):
    inputs = EXAMPLES / "sentiment" / "inputs.txt"
    assert invoke("predict", "--model", exported, inputs, "--output", tmp_path / "p.jsonl")[0] == 0
    expected = read_jsonl(tmp_path / "p.jsonl")
    texts = [line.strip() for line in inputs.read_text().splitlines() if line.strip()]
    status, answer = request(server.port, "/predict", {"inputs": [{"text": text} for text in texts]})
    assert status == 200, answer
    assert_same_records(answer["predictions"], expected, tolerance=1e-5)


def test_health_and_openapi_docs(server):
    status, health = request(server.port, "/health")
    assert status == 200 and health["status"] == "ok" and health["runtime"] == "onnx"
    assert health["task"] == "classification"
    assert request(server.port, "/docs")[0] == 200
    status, spec = request(server.port, "/openapi.json")
    assert status == 200 and "/predict" in spec["paths"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b'{"inputs": [{"text": "a fine film"}', 400, "not valid JSON"),
        ({"input": [{"text": "x"}]}, 422, "inputs"),
        ({"inputs": [3]}, 422, "dictionary"),
        ({"inputs": []}, 422, "empty"),
        ({"inputs": [{"txt": "a fine film"}]}, 422, "no text column"),
        ({"inputs": [{"text": "fine"}, {"text": "  "}]}, 422, "inputs line 2"),
        ({"inputs": [{"text": "long " * 200}]}, 413, "--max-chars"),
        ({"inputs": [{"text": "x"}] * 51}, 413, "--max-inputs"),
        ({"inputs": [{"text": "fine"}, {"text": 5}]}, 422, "inputs[1].text: expected text, found int"),
        ({"inputs": [{"text": None}]}, 422, "inputs[0].text: expected text, found null"),
        (b'{"inputs": [{"text": NaN}]}', 422, "inputs[0].text: NaN is not JSON"),
        (b'{"inputs": [{"text": "ok"}, {"text": "ok", "id": -Infinity}]}', 422, "inputs[1].id: -Infinity is not JSON"),
        ({"inputs": [{"text": "a fine film", "text_pair": "and more"}]}, 422, "does not use 'text_pair'"),
        ({"inputs": [{"text": 1, "text_pair": 2}]}, 422, "inputs[0]."),
        ({"inputs": [{"tokens": ["a", "fine", "film"]}]}, 422, "inputs[0].tokens: this classification model"),
    ],
    ids=[
        *("malformed", "no-inputs", "not-a-record", "empty", "no-text", "empty-text", "too-long", "too-many"),
        *("number", "null", "nan", "infinity", "pair-to-single", "numbers-pair", "tokens-to-text"),
    ],
)
def test_bad_requests_get_a_4xx_and_one_json_line(server, body, status, words):
    got, answer = request(server.port, "/predict", body)
    assert got == status, answer
    assert isinstance(answer, dict) and list(answer) == ["error"] and words in answer["error"]
    assert "\n" not in answer["error"]
    assert request(server.port, "/health")[0] == 200  # still serving


def test_concurrent_requests_are_batched(server):
    before = len(server.batch_sizes())
    barrier, answers = threading.Barrier(8), []

    def client(number: int) -> None:
        barrier.wait()
        answers.append(request(server.port, "/predict", {"inputs": [{"text": f"film number {number} was fine"}]}))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [200] * 8
    sizes = server.batch_sizes()[before:]
    assert sum(sizes) == 8 and max(sizes) > 1, sizes


def test_a_pytorch_qa_model_is_served(tiny_model, tmp_path):
    model = finetune(tiny_model, tmp_path / "qa", "qa")
    records = read_jsonl(EXAMPLES / "qa" / "questions.jsonl")[:3]
    assert (
        invoke("predict", "--model", model, EXAMPLES / "qa" / "questions.jsonl", "--output", tmp_path / "p.jsonl")[0]
        == 0
    )
    expected = read_jsonl(tmp_path / "p.jsonl")[:3]
    with running(model, tmp_path / "server.log", "--threads", "1") as started:
        status, health = request(started.port, "/health")
        assert health["runtime"] == "torch"
        status, answer = request(started.port, "/predict", {"inputs": records})
    assert status == 200, answer
    assert_same_records(answer["predictions"], expected, tolerance=1e-5)


def test_sigterm_answers_the_request_in_flight_and_exits_0(exported, tmp_path):
    server = Server(exported, tmp_path / "server.log", "--max-wait-ms", "1500", "--threads", "1")
    answers = []
    client = threading.Thread(
        target=lambda: answers.append(request(server.port, "/predict", {"inputs": [{"text": "a fine film"}]}))
    )
    client.start()
    time.sleep(0.5)  # the request now waits in the batcher for others to join it
    code = server.stop()
    client.join(timeout=30)
    assert code == 0, server.log.read_text()
    assert answers and answers[0][0] == 200, answers
    assert answers[0][1]["predictions"][0]["text"] == "a fine film"


def raw_exchange(port: int, head: bytes, chunks=()) -> str:
    """Send `head` and `chunks` on a raw connection, then read the answer until the server closes it."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(head)
        for chunk in chunks:
            connection.sendall(chunk)
        answer = b""
        while part := connection.recv(65536):
            answer += part
    return answer.decode()


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    """Content-Length says 100 MB and none of it is sent: the answer comes from the header alone."""
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    answer = raw_exchange(server.port, head)
    assert answer.startswith("HTTP/1.1 413") and "--max-body-mb" in answer, answer
    assert request(server.port, "/health")[0] == 200


def test_a_chunked_body_is_counted_as_it_streams(server):
    """No Content-Length: 7 chunks of 8 KB cross the 0.05 MB limit, and the body's end is never sent."""
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"2000\r\n" + b" " * 8192 + b"\r\n"
    answer = raw_exchange(server.port, head, [chunk] * 7)
    assert answer.startswith("HTTP/1.1 413") and "--max-body-mb" in answer, answer


def test_a_token_guards_every_path_but_health(exported, tmp_path):
    key = tmp_path / "key"
    key.write_text("s3cret-token-of-some-length\n")
    with running(exported, tmp_path / "server.log", "--api-key-file", str(key), "--threads", "1") as started:
        body = {"inputs": [{"text": "a fine film"}]}
        assert request(started.port, "/health")[0] == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token-of-some-length"}):
            status, answer = request(started.port, "/predict", body, headers=headers)
            assert status == 401 and "Authorization: Bearer" in answer["error"], answer
        assert request(started.port, "/docs")[0] == 401
        good = {"Authorization": "Bearer s3cret-token-of-some-length"}
        assert request(started.port, "/predict", body, headers=good)[0] == 200


def test_a_public_host_needs_a_token_or_no_auth(exported, tmp_path):
    from bertkit.settings import ServeSettings

    code, text = invoke("serve", "--model", exported, "--host", "0.0.0.0")
    assert code == 2 and "--api-key-file" in text and "--no-auth" in text and len(text.strip().splitlines()) == 1
    ServeSettings(model=str(exported), host="0.0.0.0", auth=False).validate()
    ServeSettings(model=str(exported), host="::1").validate()  # loopback
    (tmp_path / "short").write_text("abc\n")
    code, text = invoke("serve", "--model", exported, "--api-key-file", tmp_path / "short")
    assert code == 2 and "at least 16 characters" in text


@pytest.mark.parametrize(
    "first, line, words",
    [
        ('{"text": "a fine film"}', '{"text": NaN}', "NaN is not a JSON value"),
        ('{"text": "a fine film"}', '{"text": 5}', "is not text but int"),
        ('{"text": "a", "text_pair": "b"}', '{"text": "ok", "text_pair": 2.5}', "('text_pair') is not text but float"),
        ("", '{"text": "ok", "text_pair": "and more"}', "fine-tuned on single texts"),
    ],
)
def test_jsonl_predict_inputs_are_strict(exported, tmp_path, first, line, words):
    """Line 2 is the bad one (the pair case has a blank line 1: a pair in some records only is another error).
    The model was fine-tuned on single texts: its bertkit.json says text_pairs false."""
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(first + "\n" + line + "\n")
    code, text = invoke("predict", "--model", exported, inputs, "--output", tmp_path / "out.jsonl")
    assert code == 2 and f"{inputs} line 2" in text and words in text and len(text.strip().splitlines()) == 1, text
