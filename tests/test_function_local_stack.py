"""The local stack itself: s3rver's MinIO-style webhook and the `make run` launcher."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote_plus

import pytest
import requests

from faceblur.config import load_settings
from faceblur.store.keys import content_id
from faceblur.store.s3 import Store
from stack_fixtures import (
    ROOT,
    WEBHOOK_TOKEN,
    free_port,
    interrupt_run_stack,
    run_stack_env,
    scaled_photo,
    start_local_s3,
    start_run_stack,
    stop_process,
    wait_until_empty,
)

STACK_READY_SECONDS = 240
EVENT_WAIT_SECONDS = 60
PUBLIC_S3_URL = "http://photos.example.test:9000"


class EventReceiver:
    """A loopback HTTP endpoint that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        received: list[dict] = []
        tokens: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                tokens.append(self.headers.get("Authorization", ""))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.tokens = tokens
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/async-function/faceblur"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_s3rver_posts_inbox_puts_as_minio_does(tmp_path: Path) -> None:
    receiver = EventReceiver()
    s3 = start_local_s3(tmp_path / "s3", webhook_url=receiver.url, webhook_bucket="inbox")
    try:
        client = s3.store().client
        key = "2024 trip/Zoë (1).jpg"
        for bucket, name in (("inbox", key), ("results", "x/y.jpg"), ("originals", "z.jpg")):
            client.put_object(
                bucket_name=bucket, object_name=name, data=io.BytesIO(b"data"), length=4
            )
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # would-be events for the other buckets have had time to arrive
        assert len(receiver.received) == 1
        record = receiver.received[0]["Records"][0]
        assert record["eventName"] == "s3:ObjectCreated:Put"
        assert record["s3"]["bucket"]["name"] == "inbox"
        assert record["s3"]["object"]["key"] == quote_plus(key)
        # As MinIO sends MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>: the function checks it.
        assert receiver.tokens == [f"Bearer {WEBHOOK_TOKEN}"]
    finally:
        s3.stop()
        receiver.close()


def wait_for_text(path: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace")
        if text in output:
            return
        assert process.poll() is None, output[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not printed in time:\n{path.read_text()[-3000:]}")


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("s3", "function", "frontend")}


def test_make_run_serves_everything_and_ctrl_c_stops_it(
    tmp_path: Path, ports: dict[str, int], dev_annotations: list[dict]
) -> None:
    env = run_stack_env(
        ports,
        tmp_path / "data",
        {
            # Small limits, to see the settings reach the function.
            "FACEBLUR_MAX_BYTES": "300000",
            "FACEBLUR_MAX_PIXELS": "400000",
            # Where browsers reach S3, apart from the endpoint, as in a cluster (issue 11).
            "FACEBLUR_S3_PUBLIC_URL": PUBLIC_S3_URL,
        },
    )
    log_path = tmp_path / "run.log"
    stack = start_run_stack(env, log_path)
    try:
        wait_for_text(log_path, "Ctrl-C stops everything", stack, STACK_READY_SECONDS)
        banner = log_path.read_text()
        function_url = f"http://127.0.0.1:{ports['function']}/function/faceblur"
        assert function_url in banner and "curl" in banner
        entry = next(e for e in dev_annotations if e["n_faces"] == 1 and e["faces"][0][3] > 150)
        jpeg, _ = scaled_photo(entry, 480, "JPEG")
        answer = requests.post(
            function_url, data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=300
        )
        assert answer.status_code == 200, answer.text
        too_many_pixels, _ = scaled_photo(entry, 1024, "JPEG")  # 1024 x 576 and more
        too_many_bytes = jpeg + b"\0" * 300_000
        for data, what in ((too_many_pixels, "max_pixels"), (too_many_bytes, "max_bytes")):
            refused = requests.post(
                function_url, data=data, headers={"Content-Type": "image/jpeg"}, timeout=60
            )
            assert refused.status_code == 413, (what, refused.text)
            assert refused.json()["code"] == what
        if (ROOT / "frontend" / "app.py").is_file():
            assert f"http://127.0.0.1:{ports['frontend']}/" in banner
            page = requests.get(f"http://127.0.0.1:{ports['frontend']}/", timeout=30)
            assert page.status_code == 200
            policy = page.headers["Content-Security-Policy"]
            for directive in ("img-src", "media-src"):
                (sources,) = [p.split()[1:] for p in policy.split(";") if directive in p.split()]
                assert PUBLIC_S3_URL in sources, policy
                assert f"http://127.0.0.1:{ports['s3']}" not in sources, policy

        # A photo dropped into the inbox comes out as a pair, through the webhook.
        store = Store(load_settings(env, secrets_dir=tmp_path / "no-secrets"))
        png, _ = scaled_photo(entry, 320, "PNG")
        store.client.put_object(
            bucket_name="inbox", object_name="dropped.png", data=io.BytesIO(png), length=len(png)
        )
        assert wait_until_empty(store, "inbox", EVENT_WAIT_SECONDS) == []
        assert f"{content_id(png)}.png" in store.keys("originals")
        assert any(key.startswith(content_id(png)) for key in store.keys("results"))
        # The objects are files in the data folder, which outlives the stack.
        assert list((tmp_path / "data" / "originals").iterdir())

        assert interrupt_run_stack(stack, log_path) == 0
        for port in ports.values():
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGTERM)
        stop_process(stack)
