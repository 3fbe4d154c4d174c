"""Serve an OpenFaaS python3-http(-debian) handler locally, behind the gateway's routes.

It gives `handle(event, context)` exactly what the template's `index.py` gives it
(`event.body` bytes, `.headers`, `.method`, `.query`, `.path`; `context.hostname`) and
turns its return value into a response the same way: a dict's dict body becomes JSON,
any other body goes through `str()` unless the dict's `Content-type` header is
`application/octet-stream`; a non-dict return goes to Flask as it is.

Routes, as the OpenFaaS gateway exposes a function:
- `/function/NAME` and `/function/NAME/<path>`: synchronous calls (the path after the
  name is what the function sees, as behind the gateway);
- `POST /async-function/NAME`: 202 with `X-Call-Id` at once; calls run in the
  background one at a time, like the CE queue worker, and their result is POSTed to
  `X-Callback-Url` when given, if its host is one of FACEBLUR_CALLBACK_HOSTS (empty:
  none) on a port it allows (80/443, or the one listed as host:port): otherwise a
  caller could make the runner post to services behind it. A callback to any other
  host or port is refused with 400 before the call is queued.

Run: `python functions/local/template_runner.py --handler functions/faceblur/handler.py`
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import queue
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import requests
from flask import Flask, Response, jsonify, request
from waitress import serve
from werkzeug.datastructures import Headers, MultiDict

from faceblur.api.callbacks import CALLBACK_CODE, callback_refusal
from faceblur.config import parse_hosts

METHODS = ["GET", "PUT", "POST", "PATCH", "DELETE"]
# The python-flask-template release stack.yml pins; `format_response` below reads its
# template/python3-http-debian/index.py.
TEMPLATE_REF = "0.4.0"
CALLBACK_TIMEOUT_SECONDS = 10


@dataclass
class Event:
    """What the template's `Event` carries (there it reads the Flask request)."""

    body: bytes
    headers: Headers
    method: str
    query: MultiDict
    path: str


class Context:
    def __init__(self) -> None:
        self.hostname = os.getenv("HOSTNAME", "localhost")


def format_response(res: object) -> object:
    """The template's `format_response`, rule for rule."""
    if res is None:
        return ("", 200)
    if type(res) is not dict:
        return res
    status = res.get("statusCode", 200)
    headers = res.get("headers", [])
    content_type = headers.get("Content-type", "") if isinstance(headers, dict) else ""
    if content_type == "application/octet-stream":
        body = res["body"]
    elif "body" not in res:
        body = ""
    elif type(res["body"]) is dict:
        body = jsonify(res["body"])
    else:
        body = str(res["body"])
    if isinstance(headers, dict):
        headers = list(headers.items())
    return (body, status, headers)


def load_handler(path: str | Path) -> ModuleType:
    """Import a handler file as the template does (`from function import handler`)."""
    path = Path(path).resolve()
    spec = importlib.util.spec_from_file_location("handler", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def create_app(
    handle: Callable[[Event, Context], object],
    function_name: str,
    callback_hosts: Collection[str] = frozenset(),
) -> Flask:
    app = Flask(__name__)
    calls: queue.Queue[tuple[str, Event, str | None]] = queue.Queue()

    def current_event(path: str) -> Event:
        return Event(
            body=request.get_data(),
            headers=Headers(request.headers),
            method=request.method,
            query=MultiDict(request.args),
            path="/" + path,
        )

    def call_function(path: str = "") -> object:
        return format_response(handle(current_event(path), Context()))

    def queue_worker() -> None:
        # One call at a time, in order, like the CE queue worker's default.
        with app.app_context():
            while True:
                call_id, event, callback_url = calls.get()
                try:
                    with app.test_request_context():
                        response = app.make_response(format_response(handle(event, Context())))
                    status, body = response.status_code, response.get_data()
                    content_type = response.headers.get("Content-Type", "")
                except Exception:
                    traceback.print_exc()
                    status, body, content_type = 500, b"", ""
                print(f"async call {call_id}: {status}", file=sys.stderr, flush=True)
                if callback_url:
                    try:
                        requests.post(
                            callback_url,
                            data=body,
                            headers={
                                "X-Call-Id": call_id,
                                "X-Function-Status": str(status),
                                "Content-Type": content_type,
                            },
                            timeout=CALLBACK_TIMEOUT_SECONDS,
                        )
                    except requests.RequestException as error:
                        print(f"callback for {call_id} failed: {error}", file=sys.stderr)
                calls.task_done()

    threading.Thread(target=queue_worker, name="queue-worker", daemon=True).start()

    base = f"/function/{function_name}"
    app.add_url_rule(base, "call", call_function, methods=METHODS, strict_slashes=False)
    app.add_url_rule(f"{base}/<path:path>", "call_path", call_function, methods=METHODS)

    @app.post(f"/async-function/{function_name}")
    def call_async() -> Response | tuple[Response, int]:
        callback_url = request.headers.get("X-Callback-Url")
        refusal = callback_refusal(callback_url, callback_hosts) if callback_url else None
        if refusal:
            return jsonify(error=refusal, code=CALLBACK_CODE), 400
        call_id = str(uuid.uuid4())
        calls.put((call_id, current_event(""), callback_url))
        response = Response("", status=202)
        response.headers["X-Call-Id"] = call_id
        return response

    @app.get("/healthz")
    def health() -> str:
        return "OK"

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handler", required=True, help="path of the handler.py to serve")
    parser.add_argument("--name", default=os.getenv("FACEBLUR_FUNCTION_NAME", "faceblur"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--threads", type=int, default=8, help="concurrent synchronous calls")
    parser.add_argument(
        "--callback-hosts",
        default=os.getenv("FACEBLUR_CALLBACK_HOSTS", ""),
        help="comma-separated hosts (80/443) or host:port X-Callback-Url may name "
        "(default: FACEBLUR_CALLBACK_HOSTS)",
    )
    args = parser.parse_args(argv)
    handler = load_handler(args.handler)
    app = create_app(handler.handle, args.name, parse_hosts(args.callback_hosts))
    print(
        f"function {args.name} on http://{args.host}:{args.port}/function/{args.name}", flush=True
    )
    serve(app, host=args.host, port=args.port, threads=args.threads, ident=None)


if __name__ == "__main__":
    main()
