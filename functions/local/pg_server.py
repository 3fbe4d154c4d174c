"""Start and stop a throwaway PostgreSQL server on 127.0.0.1 (Debian's `postgresql`).

The Makefile installs the package; tests start a server of their own on a free port,
its data in a fresh folder, as they start the S3 server. PostgreSQL refuses to run as
root: when we are root (CI), the server runs as the unprivileged `postgres` user the
package creates, through `runuser`.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from s3_server import free_port, stop_process, wait_for_port

READY_TIMEOUT_SECONDS = 60
SERVICE_USER = "postgres"


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SERVICE_USER, "--", *command]


@dataclass
class PostgresServer:
    process: subprocess.Popen
    directory: Path
    port: int
    password: str
    bin_dir: Path

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the `postgres` database (psycopg 3)."""
        return f"postgresql+psycopg://faceblur:{self.password}@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=faceblur password={self.password}"
        with psycopg.connect(f"{dsn} dbname=postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(
                [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast"]
            ),
            capture_output=True,
            timeout=30,
        )
        stop_process(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def data(self) -> Path:
        return self.directory / "data"


def start_postgres() -> PostgresServer:
    """A new server with a `faceblur` superuser (password auth), listening on loopback."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (the Makefile installs `postgresql`)")
    directory = Path(tempfile.mkdtemp(prefix="faceblur-pg-"))
    password = secrets.token_hex(16)
    (directory / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(directory, SERVICE_USER)
        shutil.chown(directory / "pwfile", SERVICE_USER)
    data = directory / "data"
    subprocess.run(
        _as_server_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "faceblur",
                "--pwfile",
                str(directory / "pwfile"),
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    process = subprocess.Popen(
        _as_server_user(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={directory}",
                "-c",
                "fsync=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "server.log", "wb"),  # noqa: SIM115 - the server keeps it
    )
    server = PostgresServer(process, directory, port, password, bin_dir)
    try:
        wait_for_port("127.0.0.1", port, process, READY_TIMEOUT_SECONDS, "postgres")
    except RuntimeError:
        server.stop()
        raise
    return server
