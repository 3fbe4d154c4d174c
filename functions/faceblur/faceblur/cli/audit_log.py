"""The disclosure audit log on the command line: a file or a bucket, checked (chain and
signed head) before anything is shown or disclosed; who is on the record; `faceblur audit
verify`."""

from __future__ import annotations

import argparse
import fcntl
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from faceblur.cli.authority import (
    AUDIT_KEY_NAME,
    OPERATOR_ENVS,
    CommandError,
    read_bytes,
    read_passphrase,
    s3_store,
)
from faceblur.sealing import audit
from faceblur.sealing.base import fingerprint, sha256_hex
from faceblur.sealing.log import BucketAuditLog


def operator_name(args: argparse.Namespace) -> str:
    name = args.operator or next((os.environ[v] for v in OPERATOR_ENVS if os.environ.get(v)), "")
    if not name.strip():
        raise CommandError("who is disclosing? give --operator NAME (or set FACEBLUR_OPERATOR)")
    return name.strip()


class FileAuditLog:
    """JSON lines in one file, its signed head in LOG.head; appends hold an exclusive lock."""

    def __init__(self, path: Path, public_key: Ed25519PublicKey) -> None:
        self.path, self.public_key = path, public_key
        self.head_path = path.with_name(f"{path.name}.head")

    def _checked(self, text: str) -> list[dict]:
        entries = audit.verify_chain(text.splitlines())
        head = self.head_path.read_bytes() if self.head_path.exists() else None
        audit.verify_head(entries, head, self.public_key)
        return entries

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return self._checked("")
        return self._checked(read_bytes(self.path).decode("utf-8", "replace"))

    def append(self, make_entry: Callable[[dict | None], dict], key: Ed25519PrivateKey) -> dict:
        """Append `make_entry(last entry)` after checking the whole chain and its head under
        the lock (nothing is appended to a broken or cut log), then sign the new head."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            entries = self._checked(handle.read())
            entry = make_entry(entries[-1] if entries else None)
            handle.write(audit.audit_line(entry))
            handle.flush()
            os.fsync(handle.fileno())
            # The head replaces the old one whole (rename), still under the lock.
            partial = self.head_path.with_name(f".{self.head_path.name}.partial")
            partial.write_bytes(audit.signed_head([*entries, entry], key))
            os.replace(partial, self.head_path)
        return entry


def audit_log(where: str, public_key: Ed25519PublicKey) -> FileAuditLog | BucketAuditLog:
    if where.startswith("s3://"):
        bucket, _, prefix = where.removeprefix("s3://").partition("/")
        if not bucket:
            raise CommandError(f"{where}: expected s3://BUCKET/PREFIX/")
        return BucketAuditLog(s3_store(), bucket, prefix, public_key)
    return FileAuditLog(Path(where), public_key)


class ShowLog:
    """The audit log a video's shown tracks are written to, checked before the render."""

    def __init__(
        self,
        log: FileAuditLog | BucketAuditLog,
        key: Ed25519PrivateKey,
        operator: str,
        reason: str,
    ) -> None:
        self.log, self.key, self.operator, self.reason = log, key, operator, reason

    def record(self, source: Path, rendered: Path, tracks: list[int]) -> list[dict]:
        """One entry per track left visible in `rendered`, made from `source`: the
        source's hash as `result_sha256` (what was opened), the render's as output."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        source_hash, output_hash = sha256_hex(read_bytes(source)), sha256_hex(read_bytes(rendered))
        return [
            self.log.append(
                lambda last, track=track: audit.audit_entry(
                    last,
                    time=now,
                    operator=self.operator,
                    reason=self.reason,
                    outcome="shown",
                    result_sha256=source_hash,
                    sealed_sha256=None,
                    face=None,
                    output_sha256=output_hash,
                    track=track,
                ),
                self.key,
            )
            for track in tracks
        ]


def show_log(args: argparse.Namespace) -> ShowLog:
    """Showing a track is logged like a disclosure: --reason and --audit-log are required,
    and a broken log refuses it before anything is rendered."""
    missing = [
        flag
        for flag, value in (("--reason", args.reason), ("--audit-log", args.audit_log))
        if not value or not value.strip()
    ]
    if missing:
        raise CommandError(f"showing a track is logged: give {', '.join(missing)}")
    if args.audit_key is None:
        raise CommandError("showing a track is logged: give --audit-key (it signs the log)")
    log, key = checked_log(args, read_passphrase(args))
    return ShowLog(log, key, operator_name(args), args.reason.strip())


def checked_log(
    args: argparse.Namespace, passphrase: bytes | None
) -> tuple[FileAuditLog | BucketAuditLog, Ed25519PrivateKey]:
    """The audit log and the key that signs its head, the log checked (chain and head):
    nothing is shown or disclosed under a broken or cut log, or without the key that
    would log it."""
    key = audit.load_audit_private_key(
        read_bytes(args.audit_key or args.key.parent / AUDIT_KEY_NAME), passphrase
    )
    log = audit_log(args.audit_log, key.public_key())
    log.entries()
    return log, key


def run_audit(args: argparse.Namespace) -> int:
    public_key = audit.load_audit_public_key(read_bytes(args.audit_pub))
    log = audit_log(args.log, public_key)
    if isinstance(log, FileAuditLog) and not log.path.is_file():
        raise CommandError(f"{args.log}: no such file")
    entries = log.entries()
    last = entries[-1]["hash"] if entries else audit.AUDIT_GENESIS
    if args.last_hash and last != args.last_hash.strip().lower():
        raise audit.AuditChainError(
            len(entries), "its hash is not the recorded last hash: entries were cut from the end"
        )
    print(
        f"{args.log}: {len(entries)} entries, chain intact, head signed by audit key "
        f"{fingerprint(public_key)[:16]}; last hash {last}"
    )
    return 0
