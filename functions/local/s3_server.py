"""Start and stop the local S3 server: s3rver (npm), objects kept in a folder.

Installed by `make install` into `.local/npm/`; `functions/local/s3rver.js` registers our
credentials with it and forwards the inbox's "put" events to a webhook as MinIO would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / ".local" / "npm" / "node_modules"
LAUNCHER = Path(__file__).with_name("s3rver.js")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, process: subprocess.Popen, timeout: float, what: str
) -> None:
    """Return once `port` accepts connections; fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening")
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it lingers; only ever the process we started."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


@dataclass
class S3Server:
    process: subprocess.Popen
    address: str
    port: int
    directory: Path

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def start_s3_server(
    directory: str | Path,
    access_key: str,
    secret_key: str,
    buckets: Iterable[str],
    port: int | None = None,
    address: str = "127.0.0.1",
    webhook_url: str | None = None,
    webhook_bucket: str | None = None,
    webhook_token: str | None = None,
    upload_bucket: str | None = None,
    upload_origin: str | None = None,
    output: IO | int | None = subprocess.DEVNULL,
    ready_timeout: float = 20,
) -> S3Server:
    """Start s3rver on `address:port` (a free port when None), buckets created, and wait.

    `upload_bucket` answers browsers' cross-origin POSTs (the page's presigned upload
    forms) from `upload_origin` only, the page's origin (one `*` wildcard at most).
    `webhook_token`: sent with each event as `Authorization: Bearer <token>`, as MinIO does.
    """
    if upload_bucket and not upload_origin:
        raise ValueError("an upload bucket needs the page's origin (upload_origin)")
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "s3rver").is_dir():
        raise RuntimeError("the local S3 server is not installed: run `make install` (needs npm)")
    port = port or free_port(address)
    if port_open(address, port):
        raise RuntimeError(f"{address}:{port} is already in use: set another port")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NODE_PATH": str(NODE_MODULES),
        "S3RVER_ADDRESS": address,
        "S3RVER_PORT": str(port),
        "S3RVER_DIRECTORY": str(directory),
        "S3RVER_BUCKETS": ",".join(buckets),
        "FACEBLUR_S3_ACCESS_KEY": access_key,
        "FACEBLUR_S3_SECRET_KEY": secret_key,
    }
    if upload_bucket:
        env |= {"S3RVER_UPLOAD_BUCKET": upload_bucket, "S3RVER_UPLOAD_ORIGIN": upload_origin}
    if webhook_url and webhook_bucket:
        env |= {"S3RVER_WEBHOOK_URL": webhook_url, "S3RVER_WEBHOOK_BUCKET": webhook_bucket}
        if webhook_token:
            env["S3RVER_WEBHOOK_TOKEN"] = webhook_token
    process = subprocess.Popen(
        [node, str(LAUNCHER)], env=env, stdout=output, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(address, port, process, ready_timeout, "s3rver")
    except BaseException:
        stop_process(process)
        raise
    return S3Server(process, address, port, directory)
