"""The local stack for tests: a real S3 server and the function, both on loopback.

Loaded by `pytest_plugins = ["stack_fixtures"]` in conftest.py. Session fixtures:

- `s3_server` -> `LocalS3`: s3rver (npm) on a free 127.0.0.1 port, objects in a
  temporary folder, buckets inbox/originals/results created. Attributes: `env` (the
  FACEBLUR_* variables pointing at it, credentials included: merge into a subprocess's
  environment), `settings` (a `faceblur.config.Settings` built from `env`), `endpoint`
  ("127.0.0.1:PORT"), `store()` (a `faceblur.storage.Store`), `snapshot()` (every key of
  every bucket), `empty_buckets()`.
- `s3` -> `LocalS3` (a per-test fixture): `s3_server` with its buckets emptied first.
- `function_server` -> str: base URL ("http://127.0.0.1:PORT") of the template runner
  serving functions/faceblur/handler.py against `s3_server`, in a subprocess, model
  loaded. The function is at `f"{function_server}/function/faceblur"`, the async route at
  `f"{function_server}/async-function/faceblur"`.

`WEBHOOK_TOKEN`: the token every function these fixtures start takes bucket events with
(FACEBLUR_WEBHOOK_TOKEN), and that s3rver's webhook sends; `webhook_headers()` for a test
that posts an event as MinIO does.

Helpers: `start_local_s3(folder)` and `start_function(s3, log_path, extra_env)` for tests
that need a server of their own (e.g. to stop it; both return objects with `stop()`),
`run_stack_env(ports, data, extra_env)` and `start_run_stack(env, log_path)` (the whole
`make run` stack), `running_frontend(env, log_path, ready_seconds)` (the page under
waitress, a context manager yielding its URL),
`workers_behind_one_route(folder, count, extra_env)` (several function processes behind
one async route, `RoundRobin`, with an s3rver whose inbox events go to it),
`CuttingProxy` (cuts the line to the S3 server at a chosen request), `scaled_photo(entry)`
(a faces-dev photo made small, with its boxes).
"""

from __future__ import annotations

import http.server
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from s3_server import S3Server, free_port, start_s3_server, stop_process

from data import COMPOSED, FACES_DEV, composed_picture
from faceblur.config import LOOPBACK_CREDENTIALS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "functions" / "local"
HANDLER = ROOT / "functions" / "faceblur" / "handler.py"


# One per test session, as `make run` makes one per run.
WEBHOOK_TOKEN = secrets.token_hex(32)


def webhook_headers() -> dict[str, str]:
    """The headers MinIO's webhook target sends with a bucket event (its auth token)."""
    return {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}


FUNCTION_READY_TIMEOUT_SECONDS = 180  # TensorFlow import and model build on a busy 2-core box


def scaled_photo(
    entry: dict, width: int = 480, fmt: str = "PNG"
) -> tuple[bytes, list[tuple[int, ...]]]:
    """A faces-dev (or composed: tests/data.py) photo scaled to `width` px in `fmt`, with its
    true boxes scaled alike."""
    import io

    from PIL import Image

    source = FACES_DEV / entry["image"] if COMPOSED not in entry else None
    with Image.open(source) if source else Image.fromarray(composed_picture(entry)) as image:
        scale = width / image.width
        small = image.convert("RGB").resize((width, round(image.height * scale)))
    buffer = io.BytesIO()
    small.save(buffer, format=fmt)
    boxes = [tuple(round(v * scale) for v in face) for face in entry["faces"]]
    return buffer.getvalue(), boxes


@dataclass
class LocalS3:
    server: S3Server
    env: dict[str, str]
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        self.settings = load_settings(self.env, secrets_dir="/nonexistent")

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def buckets(self) -> tuple[str, str, str]:
        s = self.settings
        return (s.bucket_inbox, s.bucket_originals, s.bucket_results)

    def store(self):
        from faceblur.store.s3 import Store

        return Store(self.settings)

    def snapshot(self) -> dict[str, list[str]]:
        store = self.store()
        return {bucket: store.keys(bucket) for bucket in self.buckets}

    def empty_buckets(self) -> None:
        store = self.store()
        for bucket in self.buckets:
            for key in store.keys(bucket):
                store.remove(bucket, key)

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        """Start again on the same port and folder: the objects survive."""
        self.server.stop()
        self.server = _start(self.server.directory, self.server.port)


def wait_until_empty(store, bucket: str, seconds: float) -> list[str]:
    """The keys left in `bucket` once it is empty or `seconds` have gone by: the function
    removes an inbox copy a moment after its result (and a job's done status) is there."""
    deadline = time.monotonic() + seconds
    while store.keys(bucket) and time.monotonic() < deadline:
        time.sleep(0.5)
    return store.keys(bucket)


def _start(directory: Path, port: int | None = None, **kwargs) -> S3Server:
    access_key, secret_key = LOOPBACK_CREDENTIALS
    if kwargs.get("webhook_url"):
        kwargs.setdefault("webhook_token", WEBHOOK_TOKEN)
    return start_s3_server(
        directory,
        access_key=access_key,
        secret_key=secret_key,
        buckets=("inbox", "originals", "results"),
        port=port,
        upload_bucket="inbox",
        # The tests' pages listen on any free loopback port.
        upload_origin="http://127.0.0.1:*",
        **kwargs,
    )


def start_local_s3(directory: Path, **kwargs) -> LocalS3:
    """A fresh s3rver in `directory` with the three buckets; caller stops it."""
    server = _start(directory, **kwargs)
    access_key, secret_key = LOOPBACK_CREDENTIALS
    env = {
        "FACEBLUR_S3_ENDPOINT": server.endpoint,
        "FACEBLUR_S3_SECURE": "false",
        "FACEBLUR_S3_ACCESS_KEY": access_key,
        "FACEBLUR_S3_SECRET_KEY": secret_key,
        "FACEBLUR_BUCKET_INBOX": "inbox",
        "FACEBLUR_BUCKET_ORIGINALS": "originals",
        "FACEBLUR_BUCKET_RESULTS": "results",
    }
    return LocalS3(server, env)


@dataclass
class FunctionProcess:
    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_function(
    s3: LocalS3, log_path: Path, extra_env: dict[str, str] | None = None, port: int | None = None
) -> FunctionProcess:
    """The runner serving the handler against `s3` (on `port`, else a free one: a port
    chosen first lets s3rver's webhook name it); returns once the model is loaded."""
    port = port or free_port()
    env = {**os.environ, **s3.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("FACEBLUR_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
    command = [
        sys.executable,
        str(LOCAL / "template_runner.py"),
        "--handler",
        str(HANDLER),
        "--port",
        str(port),
    ]
    log = log_path.open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    log.close()
    url = f"http://127.0.0.1:{port}"
    running = FunctionProcess(process, url, log_path)
    deadline = time.monotonic() + FUNCTION_READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"function runner exited early:\n{running.log()[-3000:]}")
        try:
            info = requests.get(f"{url}/function/faceblur", timeout=5).json()
            if info.get("model_loaded"):
                return running
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    running.stop()
    raise RuntimeError(f"function not ready in time:\n{running.log()[-3000:]}")


def run_stack_env(
    ports: dict[str, int], data: Path, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of `make run` on the given "s3"/"function"/"frontend" ports, with
    its data under `data` and no S3 credentials (the stack uses its loopback ones)."""
    env = {
        **os.environ,
        "FACEBLUR_S3_ENDPOINT": f"127.0.0.1:{ports['s3']}",
        "FACEBLUR_GATEWAY_URL": f"http://127.0.0.1:{ports['function']}",
        "FACEBLUR_FRONTEND_PORT": str(ports["frontend"]),
        "FACEBLUR_LOCAL_DATA": str(data),
        "FACEBLUR_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        **(extra_env or {}),
    }
    for name in ("FACEBLUR_S3_ACCESS_KEY", "FACEBLUR_S3_SECRET_KEY"):
        env.pop(name, None)
    return env


def start_run_stack(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`make run` (functions/local/run_stack.py) with `env`, output to `log_path`;
    returns at once, before anything is ready."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, str(LOCAL / "run_stack.py")],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal gives `make run`
        )


def interrupt_run_stack(stack: subprocess.Popen, log_path: Path, timeout: float = 60) -> int:
    """Ctrl-C to `make run`'s whole process group; its exit code, or a failure that
    shows what the stack printed when it did not stop in time."""
    os.killpg(stack.pid, signal.SIGINT)  # what Ctrl-C does to the foreground group
    try:
        return stack.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        children = subprocess.run(
            ["ps", "-o", "pid,stat,etime,args", "--ppid", str(stack.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        raise AssertionError(
            f"still running {timeout} s after Ctrl-C; children:\n{children}\n"
            f"log:\n{log_path.read_text(errors='replace')[-3000:]}"
        ) from None


@contextmanager
def running_frontend(env: dict[str, str], log_path: Path, ready_seconds: float) -> Iterator[str]:
    """The frontend under waitress, as in its container, with `env`, output to `log_path`;
    yields its base URL once /healthz answers and stops it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "waitress", "--listen", f"127.0.0.1:{port}"]
    command += ["--call", "frontend.app:create_app"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_seconds
        while True:
            if process.poll() is not None:
                pytest.fail(f"frontend exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"frontend not up in time:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process(process)


class RoundRobin(http.server.ThreadingHTTPServer):
    """The gateway's async route in front of several function processes: each call goes
    to the next one (the queue worker hands calls to whichever replica is free)."""

    def __init__(self, port: int) -> None:
        self.targets: list[str] = []
        self.next_target = itertools.count()
        super().__init__(("127.0.0.1", port), _Forward)


class _Forward(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        server: RoundRobin = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        target = server.targets[next(server.next_target) % len(server.targets)]
        headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
        if self.headers.get("Authorization"):  # the webhook token, passed on as the gateway does
            headers["Authorization"] = self.headers["Authorization"]
        answer = requests.post(f"{target}{self.path}", data=body, headers=headers, timeout=10)
        self.send_response(answer.status_code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def workers_behind_one_route(
    folder: Path, count: int, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[LocalS3, list[FunctionProcess]]]:
    """`count` function processes behind one async route (`RoundRobin`), with an s3rver
    whose inbox events go to that route, as MinIO's go to the gateway: a video put into
    the inbox is planned by one worker and its segments' calls shared among them all."""
    gateway_port = free_port()
    gateway = RoundRobin(gateway_port)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    s3 = start_local_s3(
        folder / "s3", webhook_url=f"{gateway_url}/async-function/faceblur", webhook_bucket="inbox"
    )
    env = {"FACEBLUR_GATEWAY_URL": gateway_url, **(extra_env or {})}
    workers: list[FunctionProcess] = []
    try:
        for number in range(count):
            workers.append(start_function(s3, folder / f"worker{number}.log", env))
        gateway.targets = [worker.url for worker in workers]
        yield s3, workers
    finally:
        for worker in workers:
            worker.stop()
        gateway.shutdown()
        s3.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    s3 = start_local_s3(tmp_path_factory.mktemp("s3-data"))
    try:
        yield s3
    finally:
        s3.stop()


@pytest.fixture
def s3(s3_server: LocalS3) -> LocalS3:
    """`s3_server` with its buckets emptied first: each test starts from a clean store."""
    s3_server.empty_buckets()
    return s3_server


@pytest.fixture(scope="session")
def function_server(s3_server: LocalS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    function = start_function(s3_server, tmp_path_factory.mktemp("function") / "runner.log")
    try:
        yield function.url
    finally:
        function.stop()


class CuttingProxy:
    """A TCP proxy in front of the S3 server that can play the server going down.

    `cut_on(marker)`: forward as usual until a request starting with `marker` (e.g.
    b"PUT /results/") arrives, then drop it and refuse every later connection, as a
    server that died at that moment would; `restore()` forwards again. The storage
    behind it is the real server: nothing is faked, only the network is cut.
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.target_port = host, target_port
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.marker: bytes | None = None
        self.let_through = 0
        self.down = False
        self.cut_requests = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def cut_on(self, marker: bytes, let_through: int = 0) -> None:
        """Cut at the first request starting with `marker` after `let_through` of them."""
        self.marker, self.down, self.let_through = marker, False, let_through

    def restore(self) -> None:
        self.marker, self.down = None, False

    def close(self) -> None:
        self._closed.set()
        self.listener.close()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source, destination, from_client: bool) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if from_client and self.marker is not None and chunk.startswith(self.marker):
                    if self.let_through > 0:
                        self.let_through -= 1
                    else:
                        self.down = True
                if from_client and self.down:
                    self.cut_requests += 1
                    break
                destination.sendall(chunk)
        except OSError:
            pass
        finally:
            source.close()
            destination.close()
