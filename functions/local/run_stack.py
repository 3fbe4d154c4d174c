"""`make run`: the whole local stack on one machine, stopped cleanly by Ctrl-C.

- S3: s3rver on FACEBLUR_S3_ENDPOINT (127.0.0.1:9000), objects under FACEBLUR_LOCAL_DATA
  (.local/s3-data, kept across runs), buckets created; "put" events of the inbox are
  POSTed to the function's async route, as MinIO's webhook would, with the webhook token
  (FACEBLUR_WEBHOOK_TOKEN, else one made for this run) that the function checks.
- Function: the template runner on FACEBLUR_GATEWAY_URL's host and port (127.0.0.1:8080),
  under /function/faceblur and /async-function/faceblur.
- Frontend (when frontend/app.py exists): waitress on 127.0.0.1:FACEBLUR_FRONTEND_PORT
  (5000), with a secret key generated for this run.

If the S3 server dies, the function and the page stay up and answer 503 while the runner
starts it again (a few times, waiting longer each time) and says so.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests
from s3_server import ROOT, S3Server, port_open, start_s3_server, stop_process, wait_for_port

from faceblur.accounts import load_account_settings
from faceblur.config import is_loopback_endpoint, load_settings

MODEL_TIMEOUT_SECONDS = 300
# Waits before each restart of a dead S3 server; after the last, the runner stops trying
# (the function and the page keep answering 503). A server up this long has recovered.
S3_RESTART_DELAYS_SECONDS = (2, 4, 8, 16, 30)
S3_STABLE_SECONDS = 60
# Accounts off means no sign-in and no key: whoever reaches a port may send, see and delete
# everything. Only on loopback, unless the operator says so with this variable set to "yes".
OPEN_ANYWAY = "FACEBLUR_OPEN_WITHOUT_ACCOUNTS"
OPEN_WARNING = (
    "Accounts are off (FACEBLUR_AUTH): the page, the function and the S3 server are open to "
    "anyone who can reach their ports: every photo, result and key-free call."
)


def say(message: str) -> None:
    print(f"[make run] {message}", file=sys.stderr, flush=True)


class SupervisedS3:
    """The S3 server, started again when it dies, a bounded number of times in a row."""

    def __init__(self, start: Callable[[], S3Server]) -> None:
        self._start = start
        self.server: S3Server | None = start()
        self._started_at = time.monotonic()
        self._failures = 0
        self._next_try: float | None = None
        self.gave_up = False

    def watch(self) -> None:
        """Called every half second by the main loop."""
        now = time.monotonic()
        if self.gave_up:
            return
        if self.server is not None and self.server.process.poll() is None:
            if now - self._started_at > S3_STABLE_SECONDS:
                self._failures = 0
            return
        if self._next_try is None:
            self._schedule_restart(now)
        elif now >= self._next_try:
            self._next_try = None
            self._failures += 1
            try:
                self.server = self._start()
            except RuntimeError as error:
                self.server = None
                say(f"the S3 server did not start again: {error}")
                return
            self._started_at = now
            say(f"the S3 server is back on {self.server.endpoint}")

    def _schedule_restart(self, now: float) -> None:
        code = self.server.process.returncode if self.server else None
        self.server = None
        if self._failures >= len(S3_RESTART_DELAYS_SECONDS):
            self.gave_up = True
            say(
                f"the S3 server failed {self._failures} times in a row; not starting it "
                "again. The function and the page answer 503 until you restart `make run`."
            )
            return
        delay = S3_RESTART_DELAYS_SECONDS[self._failures]
        stopped = f"stopped (exit code {code})" if code is not None else "is not running"
        say(
            f"the S3 server {stopped}; the function and the page answer 503 until it is "
            f"back. Restarting it in {delay} s "
            f"(attempt {self._failures + 1} of {len(S3_RESTART_DELAYS_SECONDS)})."
        )
        self._next_try = now + delay

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def open_binds_refused(
    hosts: list[str], accounts_on: bool, environ: dict[str, str] | os._Environ
) -> str | None:
    """Why the stack must not start: accounts off on an address beyond this machine and
    nobody said so. None when it may start."""
    if accounts_on or environ.get(OPEN_ANYWAY, "").lower() == "yes":
        return None
    exposed = [host for host in hosts if not is_loopback_endpoint(host)]
    if not exposed:
        return None
    return (
        f"refusing to listen on {', '.join(exposed)} with accounts off: {OPEN_WARNING} "
        f"Turn accounts on (FACEBLUR_AUTH=on), listen on 127.0.0.1, or set {OPEN_ANYWAY}=yes."
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    settings = load_settings()
    s3_host, _, s3_port = settings.s3_endpoint.rpartition(":")
    gateway = urlsplit(settings.gateway_url)
    function_host, function_port = gateway.hostname or "127.0.0.1", gateway.port or 8080
    frontend_port = int(os.environ.get("FACEBLUR_FRONTEND_PORT", "5000"))
    data_dir = Path(os.environ.get("FACEBLUR_LOCAL_DATA", ROOT / ".local" / "s3-data"))
    name = settings.function_name
    function_url = f"{settings.gateway_url}/function/{name}"
    accounts_on = load_account_settings().enabled
    refused = open_binds_refused([s3_host, function_host], accounts_on, os.environ)
    if refused:
        print(refused, file=sys.stderr)
        return 2

    for host, port, what in (
        (function_host, function_port, "function"),
        ("127.0.0.1", frontend_port, "frontend"),
    ):
        if port_open(host, port):
            print(f"{host}:{port} ({what}) is already in use; set another port", file=sys.stderr)
            return 1

    env = {
        **os.environ,
        "FACEBLUR_S3_ACCESS_KEY": settings.s3_access_key,
        "FACEBLUR_S3_SECRET_KEY": settings.s3_secret_key,
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        # With FACEBLUR_AUTH=on the page calls the function for its signed-in person
        # with this token; one per run unless given.
        "FACEBLUR_INTERNAL_TOKEN": os.environ.get("FACEBLUR_INTERNAL_TOKEN")
        or secrets.token_hex(32),
        # What the S3 server's events carry and the function checks; one per run unless given.
        "FACEBLUR_WEBHOOK_TOKEN": os.environ.get("FACEBLUR_WEBHOOK_TOKEN") or secrets.token_hex(32),
    }
    children: list[tuple[str, subprocess.Popen]] = []
    s3: SupervisedS3 | None = None
    # Ctrl-C reaches every child of the terminal's process group; SIGTERM only us. Both
    # handled here, as a shell running us in the background starts us with Ctrl-C ignored
    # (and so our children): we then stop each child ourselves (SIGTERM, then SIGKILL).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        s3 = SupervisedS3(
            lambda: start_s3_server(
                data_dir,
                access_key=settings.s3_access_key,
                secret_key=settings.s3_secret_key,
                buckets=(
                    settings.bucket_inbox,
                    settings.bucket_originals,
                    settings.bucket_results,
                ),
                port=int(s3_port),
                address=s3_host,
                webhook_url=f"{settings.gateway_url}/async-function/{name}",
                webhook_bucket=settings.bucket_inbox,
                webhook_token=env["FACEBLUR_WEBHOOK_TOKEN"],
                upload_bucket=settings.bucket_inbox,
                upload_origin=f"http://127.0.0.1:{frontend_port}",
                output=None,
            )
        )

        runner = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("template_runner.py")),
                "--handler",
                str(ROOT / "functions" / "faceblur" / "handler.py"),
                "--name",
                name,
                "--host",
                function_host,
                "--port",
                str(function_port),
            ],
            env=env,
            cwd=ROOT,
        )
        children.append(("function", runner))
        wait_for_port(function_host, function_port, runner, 120, "function runner")
        print("waiting for the face detector to load ...", flush=True)
        deadline = time.monotonic() + MODEL_TIMEOUT_SECONDS
        while not requests.get(function_url, timeout=30).json().get("model_loaded"):
            if time.monotonic() > deadline or runner.poll() is not None:
                print("the function did not load its model; see its log above", file=sys.stderr)
                return 1
            time.sleep(1)

        frontend_url = None
        if (ROOT / "frontend" / "app.py").is_file():
            frontend = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("waitress-serve")),
                    f"--listen=127.0.0.1:{frontend_port}",
                    "--call",
                    "frontend.app:create_app",
                ],
                env={**env, "FACEBLUR_FRONTEND_SECRET_KEY": secrets.token_hex(32)},
                cwd=ROOT,
            )
            children.append(("frontend", frontend))
            wait_for_port("127.0.0.1", frontend_port, frontend, 120, "frontend")
            frontend_url = f"http://127.0.0.1:{frontend_port}/"

        print_banner(settings, function_url, frontend_url, data_dir, accounts_on)
        while True:
            for label, process in children:
                if process.poll() is not None:
                    print(f"{label} exited with code {process.returncode}", file=sys.stderr)
                    return 1
            s3.watch()
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        for _, process in reversed(children):
            stop_process(process)
        if s3 is not None:
            s3.stop()


def print_banner(
    settings, function_url: str, frontend_url: str | None, data_dir: Path, accounts_on: bool
) -> None:
    endpoint = settings.s3_endpoint
    lines = [
        "",
        "faceblur is running (Ctrl-C stops everything):",
        f"  function   {function_url}   (GET: info; POST: a photo)",
        f"  async      {settings.gateway_url}/async-function/{settings.function_name}",
        f"  S3         http://{endpoint}   buckets {settings.bucket_inbox}, "
        f"{settings.bucket_originals}, {settings.bucket_results}; data in {data_dir}",
    ]
    if frontend_url:
        lines.append(f"  web page   {frontend_url}")
    lines += [
        "",
        "Try it:",
        f"  curl -s -H 'Content-Type: image/jpeg' --data-binary @photo.jpg {function_url}",
        f"  curl -s -H 'Accept: image/*' -F image=@photo.jpg '{function_url}?method=pixelate'"
        " -o anonymised.jpg",
        "A photo put into the inbox bucket is processed as a MinIO event would have it;",
        f"the buckets are folders under {data_dir} (see README, HTTP function).",
        "",
    ]
    if not accounts_on:
        lines += [OPEN_WARNING, ""]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
