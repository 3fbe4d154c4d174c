"""What every part of sealing shares: its base error, the canonical JSON its bindings and
hashes are computed over, strict base64, and constant-time digest comparison."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from faceblur.errors import FaceblurError

NONCE_BYTES = 12  # AES-GCM's standard nonce; each key encrypts exactly one message


class SealError(FaceblurError, status=400, code="seal"):
    """Anything that stops a seal, a disclosure, a key or a log from being used."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(document: object) -> bytes:
    """The one byte spelling of a JSON document that bindings and hashes are taken over."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str, error: type[SealError]) -> bytes:
    """Bytes from canonical base64 only; `error` names what is wrong with `what`."""
    if not isinstance(text, str):
        raise error(f"{what} is not base64 text")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{what} is not valid base64") from None
    if b64(data) != text:  # unused low bits set: another spelling of the same bytes
        raise error(f"{what} is not canonical base64")
    return data


def same_digest(a: str, b: str) -> bool:
    """Constant-time equality of two hex digests or fingerprints."""
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))
