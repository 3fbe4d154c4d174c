"""The audit log of disclosures: a hash chain of JSON lines, one per attempt to open a face
or a video's track, and one per track a reviewer left visible in a video (outcome "shown").

Each entry holds the hash of the one before it, so an entry edited, removed or reordered
breaks the chain from there on. A chain alone cannot show that entries were cut from its
end, nor stop whoever can write it from writing a whole new chain: each append also writes
a signed head, a separate object naming how many entries the log holds and the last one's
hash, signed with the audit key (Ed25519, the operator's, `faceblur keys new`). Whoever
lacks that key can neither cut the tail nor rewrite the chain without `verify_head`
noticing. Pure functions over entries, lines and heads; the CLI stores them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from faceblur.sealing.base import (
    SealError,
    b64,
    canonical,
    fingerprint,
    same_digest,
    sha256_hex,
    unb64,
)

AUDIT_GENESIS = "0" * 64  # the "previous hash" of the first entry
HEAD_FORMAT = "faceblur-audit-head"
HEAD_VERSION = 1
HEAD_FIELDS = ("format", "version", "entries", "last_hash", "signer", "signature")
AUDIT_FIELDS = (
    "seq",
    "time",
    "operator",
    "reason",
    "outcome",
    "result_sha256",
    "sealed_sha256",
    "face",
    "output_sha256",
    "error",
    "prev",
    "hash",
)
# A video's entries name the track too (a face of a photo has none): entries written before
# videos were sealed hold exactly AUDIT_FIELDS and stay valid.
TRACK_FIELD = "track"


class AuditChainError(SealError, code="audit_chain"):
    """The audit log's chain is broken; `entry` is the first entry (1-based) that breaks it."""

    def __init__(self, entry: int, why: str) -> None:
        super().__init__(f"audit log broken at entry {entry}: {why}", entry=entry)
        self.entry = entry


class AuditHeadError(SealError, code="audit_head"):
    """The log's signed head is missing, malformed, or not signed by the audit key given."""


class AuditCutError(SealError, code="audit_cut"):
    """The log holds fewer entries than its signed head records: its tail was cut."""

    def __init__(self, entries: int, recorded: int) -> None:
        super().__init__(
            f"the log holds {entries} entries but its signed head records {recorded}: "
            "entries were cut from the end",
            entries=entries,
            recorded=recorded,
        )


def _entry_hash(entry: dict) -> str:
    return sha256_hex(canonical({k: v for k, v in entry.items() if k != "hash"}))


def audit_entry(
    previous: dict | None,
    *,
    time: str,
    operator: str,
    reason: str,
    outcome: str,
    result_sha256: str | None,
    sealed_sha256: str | None,
    face: int | None,
    output_sha256: str | None = None,
    error: str | None = None,
    track: int | None = None,
) -> dict:
    """The next entry of the chain after `previous` (None for the first); `track` for a
    video's person (then `face` is None)."""
    entry = {
        "seq": previous["seq"] + 1 if previous else 1,
        "time": time,
        "operator": operator,
        "reason": reason,
        "outcome": outcome,
        "result_sha256": result_sha256,
        "sealed_sha256": sealed_sha256,
        "face": face,
        "output_sha256": output_sha256,
        "error": error,
        "prev": previous["hash"] if previous else AUDIT_GENESIS,
    }
    if track is not None:
        entry[TRACK_FIELD] = track
    entry["hash"] = _entry_hash(entry)
    return entry


def audit_line(entry: dict) -> str:
    """One JSON line (with its newline) as appended to the log."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"


def verify_chain(lines: Iterable[str]) -> list[dict]:
    """Every entry, checked: each is unchanged (its hash), in sequence, and follows the one
    before (its `prev`). Raises AuditChainError naming the first entry that breaks the chain.

    Removing entries at the very end leaves a valid shorter chain: `verify_head` catches
    that against the signed head.
    """
    entries: list[dict] = []
    previous_hash = AUDIT_GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AuditChainError(number, "not a JSON line") from None
        if not isinstance(entry, dict) or set(entry) - {TRACK_FIELD} != set(AUDIT_FIELDS):
            raise AuditChainError(number, "not an audit entry (fields missing or added)")
        if not isinstance(entry["hash"], str) or not same_digest(entry["hash"], _entry_hash(entry)):
            raise AuditChainError(number, "its content does not match its hash: it was edited")
        if entry["seq"] != number:
            raise AuditChainError(
                number, f"it is entry {entry['seq']!r}: entries were removed or reordered"
            )
        if not isinstance(entry["prev"], str) or not same_digest(entry["prev"], previous_hash):
            raise AuditChainError(
                number, "it does not follow the entry before it: that one was changed or replaced"
            )
        entries.append(entry)
        previous_hash = entry["hash"]
    return entries


# -- the signed head ----------------------------------------------------------------------------


def new_audit_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key that signs the log's heads."""
    return Ed25519PrivateKey.generate()


def load_audit_private_key(pem: bytes, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError as error:  # encrypted without a passphrase, or the reverse
        raise AuditHeadError(f"audit key passphrase: {error}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise AuditHeadError("not a usable audit key, or the passphrase is wrong") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditHeadError("the audit key must be an Ed25519 key (faceblur keys new)")
    return key


def load_audit_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise AuditHeadError("not a PEM public key (audit.pub)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditHeadError("the audit public key must be an Ed25519 key (audit.pub)")
    return key


def signed_head(entries: list[dict], key: Ed25519PrivateKey) -> bytes:
    """The head of a log holding `entries`: their number and the last hash, signed."""
    head = {
        "format": HEAD_FORMAT,
        "version": HEAD_VERSION,
        "entries": len(entries),
        "last_hash": entries[-1]["hash"] if entries else AUDIT_GENESIS,
        "signer": fingerprint(key),
    }
    head["signature"] = b64(key.sign(canonical(head)))
    return canonical(head) + b"\n"


def verify_head(entries: list[dict], head: bytes | None, public_key: Ed25519PublicKey) -> None:
    """Check a verified chain against its signed head: the signature is the audit key's,
    no entry was cut from the end (AuditCutError), none added past it, the last is the one
    signed for. A log with no entries needs no head yet."""
    if head is None:
        if entries:
            raise AuditHeadError("the log has no signed head: a cut tail could not be seen")
        return
    try:
        document = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AuditHeadError("the signed head is not JSON") from None
    if not isinstance(document, dict) or set(document) != set(HEAD_FIELDS):
        raise AuditHeadError("the signed head is malformed (fields missing or added)")
    if (document["format"], document["version"]) != (HEAD_FORMAT, HEAD_VERSION):
        raise AuditHeadError("the signed head is not a faceblur audit head, version 1")
    signature = unb64(document["signature"], "the head's signature", AuditHeadError)
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    try:
        public_key.verify(signature, canonical(unsigned))
    except InvalidSignature:
        raise AuditHeadError(
            "the head is not signed by this audit key: it was edited or written by another key"
        ) from None
    recorded, last_hash = document["entries"], document["last_hash"]
    if not isinstance(recorded, int) or not isinstance(last_hash, str):
        raise AuditHeadError("the signed head is malformed")
    if len(entries) < recorded:
        raise AuditCutError(len(entries), recorded)
    if len(entries) > recorded:
        raise AuditChainError(
            recorded + 1,
            "it comes after the signed head: written without the audit key, or its write "
            "was interrupted before the head",
        )
    last = entries[-1]["hash"] if entries else AUDIT_GENESIS
    if not same_digest(last, last_hash):
        raise AuditChainError(len(entries), "it is not the last entry the head was signed for")
