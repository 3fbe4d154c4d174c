"""What `faceblur keys | disclose | audit` share: the authority's file names, the commands'
error, files written once and read, the private keys' passphrase and the S3 store."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from faceblur.config import ConfigError, load_settings
from faceblur.errors import FaceblurError
from faceblur.store.s3 import Store

KEY_NAME = "authority.key"
PUBLIC_NAME = "authority.pub"
# The audit key signs the audit log's head (faceblur.sealing.audit): the operator's, kept
# beside the authority key; audit.pub is what `faceblur audit verify` checks with.
AUDIT_KEY_NAME = "audit.key"
AUDIT_PUBLIC_NAME = "audit.pub"
PASSPHRASE_ENV = "FACEBLUR_KEY_PASSPHRASE"
OPERATOR_ENVS = ("FACEBLUR_OPERATOR", "USER", "LOGNAME")


class CommandError(FaceblurError, code="command"):
    """A problem with the command's files or arguments, reported without a traceback."""


def write_new(path: Path, data: bytes, private: bool = False) -> None:
    """Write a file that must not exist yet (mode 600 for private material)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        descriptor = os.open(path, flags, 0o600 if private else 0o644)
    except FileExistsError:
        raise CommandError(f"{path} exists already; not overwriting it") from None
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def read_bytes(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror or error}") from None


def read_passphrase(args: argparse.Namespace) -> bytes | None:
    if args.passphrase_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise CommandError("--passphrase-stdin: no passphrase on stdin")
        return line.encode()
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def s3_store():
    """The S3 store from the FACEBLUR_S3_* settings."""
    try:
        return Store(load_settings())
    except ConfigError as error:
        raise CommandError(f"S3 settings: {error}") from None
