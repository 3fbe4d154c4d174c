"""The audit log kept in a bucket: one object per entry, for the command line and the service.

The chain itself (entries, hashes, verification) is `faceblur.sealing.audit`'s; this only
lists, reads and writes the objects.
"""

from __future__ import annotations

from collections.abc import Callable

from faceblur.sealing import audit
from faceblur.store.s3 import Store


class BucketAuditLog:
    """One object per entry under BUCKET/PREFIX, named by its sequence number and hash
    (append-only by convention: give the writers no delete right). Two writers racing for
    one number leave two objects for it, which `verify` reports."""

    def __init__(self, store: Store, bucket: str, prefix: str) -> None:
        self.store, self.bucket = store, bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"

    def key(self, entry: dict) -> str:
        return f"{self.prefix}{entry['seq']:010d}-{entry['hash']}.json"

    def entries(self) -> list[dict]:
        keys = self.store.keys(self.bucket, prefix=self.prefix)
        lines = [self.store.read(self.bucket, key).decode("utf-8", "replace") for key in keys]
        entries = audit.verify_chain(lines)
        for number, (key, entry) in enumerate(zip(keys, entries, strict=True), start=1):
            if key != self.key(entry):
                raise audit.AuditChainError(number, f"object {key} is not named by its entry")
        return entries

    def append(self, make_entry: Callable[[dict | None], dict]) -> dict:
        entries = self.entries()
        entry = make_entry(entries[-1] if entries else None)
        self.store.put(
            self.bucket, self.key(entry), audit.audit_line(entry).encode(), "application/json"
        )
        return entry
