"""The audit log kept in a bucket: one object per entry, for the command line and the service.

The chain itself (entries, hashes, verification, the signed head) is
`faceblur.sealing.audit`'s; this only lists, reads and writes the objects. The head
(PREFIX/head.json: the entry count and last hash, signed with the audit key) is written
by a writer that holds the key (the command line) and checked when a public key is given;
the service holds no audit key, so the tracks it shows are chained but not signed for
(docs/sealing.md).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from faceblur.sealing import audit
from faceblur.store.s3 import Store


class BucketAuditLog:
    """One object per entry under BUCKET/PREFIX, named by its sequence number and hash
    (append-only by convention: give the writers no delete right). Two writers racing for
    one number leave two objects for it, which `verify` reports."""

    def __init__(
        self, store: Store, bucket: str, prefix: str, public_key: Ed25519PublicKey | None = None
    ) -> None:
        self.store, self.bucket, self.public_key = store, bucket, public_key
        self.prefix = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
        self.head_key = f"{self.prefix}head.json"

    def key(self, entry: dict) -> str:
        return f"{self.prefix}{entry['seq']:010d}-{entry['hash']}.json"

    def entries(self) -> list[dict]:
        keys = [k for k in self.store.keys(self.bucket, prefix=self.prefix) if k != self.head_key]
        lines = [self.store.read(self.bucket, key).decode("utf-8", "replace") for key in keys]
        entries = audit.verify_chain(lines)
        for number, (key, entry) in enumerate(zip(keys, entries, strict=True), start=1):
            if key != self.key(entry):
                raise audit.AuditChainError(number, f"object {key} is not named by its entry")
        if self.public_key is not None:
            head = (
                self.store.read(self.bucket, self.head_key)
                if self.store.exists(self.bucket, self.head_key)
                else None
            )
            audit.verify_head(entries, head, self.public_key)
        return entries

    def append(
        self, make_entry: Callable[[dict | None], dict], key: Ed25519PrivateKey | None = None
    ) -> dict:
        """Append `make_entry(last entry)` after checking the chain (and its head, given a
        public key); with the audit key, sign the new head."""
        entries = self.entries()
        entry = make_entry(entries[-1] if entries else None)
        self.store.put(
            self.bucket, self.key(entry), audit.audit_line(entry).encode(), "application/json"
        )
        if key is not None:
            head = audit.signed_head([*entries, entry], key)
            self.store.put(self.bucket, self.head_key, head, "application/json")
        return entry
