"""The local runner gives a handler the python3-http-debian template's contract."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions" / "local"))

from template_runner import create_app  # noqa: E402

ASYNC_WAIT_SECONDS = 10


def app_returning(answer: object, seen: list | None = None):
    def handle(event, context):
        if seen is not None:
            seen.append((event, context))
        return answer

    return create_app(handle, "demo").test_client()


def test_event_carries_the_request_as_the_template_builds_it() -> None:
    seen: list = []
    client = app_returning({"body": {"ok": True}}, seen)
    client.post("/function/demo/sub/path?x=1&y=2", data=b"\x00bytes", headers={"X-A": "b"})
    event, context = seen[0]
    assert event.body == b"\x00bytes"
    assert event.method == "POST"
    assert event.path == "/sub/path"
    assert event.query.to_dict() == {"x": "1", "y": "2"}
    assert event.headers.get("X-A") == "b"
    assert context.hostname


@pytest.mark.parametrize(
    ("answer", "status", "body", "content_type"),
    [
        ({"statusCode": 201, "body": {"a": 1}}, 201, b'{"a":1}\n', "application/json"),
        ({"body": "text"}, 200, b"text", "text/html; charset=utf-8"),
        # The template str()s any other body: bytes come back mangled, as there.
        ({"body": b"\x89PNG"}, 200, b"b'\\x89PNG'", "text/html; charset=utf-8"),
        (
            {"body": b"\x89PNG", "headers": {"Content-type": "application/octet-stream"}},
            200,
            b"\x89PNG",
            "application/octet-stream",
        ),
        ((b"\xff\xd8raw", 200, {"Content-Type": "image/jpeg"}), 200, b"\xff\xd8raw", "image/jpeg"),
        (None, 200, b"", "text/html; charset=utf-8"),
        ({"statusCode": 204}, 204, b"", "text/html; charset=utf-8"),
    ],
)
def test_answers_are_shaped_as_the_template_shapes_them(answer, status, body, content_type):
    response = app_returning(answer).post("/function/demo", data=b"x")
    assert response.status_code == status
    assert response.data == body
    assert response.headers["Content-Type"] == content_type


def test_async_route_answers_202_at_once_and_runs_calls_one_at_a_time() -> None:
    running, overlaps, finished = [0], [], []
    lock = threading.Lock()

    def handle(event, context):
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
            finished.append(event.body)
        return {"body": {"done": True}}

    client = create_app(handle, "demo").test_client()
    started = time.monotonic()
    ids = []
    for number in range(3):
        response = client.post("/async-function/demo", data=str(number).encode())
        assert response.status_code == 202
        ids.append(response.headers["X-Call-Id"])
    assert time.monotonic() - started < 0.5  # not waiting for the calls
    assert len(set(ids)) == 3
    deadline = time.monotonic() + ASYNC_WAIT_SECONDS
    while len(finished) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert finished == [b"0", b"1", b"2"]
    assert max(overlaps) == 1


def test_unknown_function_is_not_found() -> None:
    assert app_returning({"body": "x"}).get("/function/other").status_code == 404


def test_async_result_is_posted_to_the_callback_url() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[dict, bytes]] = []

    class Callback(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer = {"statusCode": 201, "body": {"n": 1}}
        allowed = {f"127.0.0.1:{server.server_port}"}  # a port of its own: listed with it
        client = create_app(lambda e, c: answer, "demo", allowed).test_client()
        response = client.post(
            "/async-function/demo",
            data=b"x",
            headers={"X-Callback-Url": f"http://127.0.0.1:{server.server_port}/done"},
        )
        deadline = time.monotonic() + ASYNC_WAIT_SECONDS
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        headers, body = received[0]
        assert headers["X-Call-Id"] == response.headers["X-Call-Id"]
        assert headers["X-Function-Status"] == "201"
        assert body == b'{"n":1}\n'
    finally:
        server.shutdown()
        server.server_close()
