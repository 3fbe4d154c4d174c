"""The audit log of disclosures: a hash chain of JSON lines, one per attempt to open a face
or a video's track, and one per track a reviewer left visible in a video (outcome "shown").

Each entry holds the hash of the one before it, so an entry edited, removed or reordered
breaks the chain from there on. Pure functions over entries and lines; the CLI appends the
lines to a file and reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from faceblur.sealing.base import SealError, canonical, same_digest, sha256_hex

AUDIT_GENESIS = "0" * 64  # the "previous hash" of the first entry
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

    Removing entries at the very end leaves a valid shorter chain: keep the last hash
    (`faceblur audit verify` prints it) somewhere else to catch that.
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
