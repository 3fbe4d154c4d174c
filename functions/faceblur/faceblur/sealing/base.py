"""What every part of sealing shares: its base error, the canonical JSON its bindings and
hashes are computed over, strict base64, constant-time digest comparison, and the PEM
spelling of its keys (the authority's X25519 key, the audit log's Ed25519 key)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from faceblur.errors import FaceblurError

PrivateKey = X25519PrivateKey | Ed25519PrivateKey
PublicKey = X25519PublicKey | Ed25519PublicKey

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


def private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the passphrase (OpenSSL's best available encryption)
    when one is given; the commands ask for one unless told --insecure-no-passphrase."""
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: PrivateKey | PublicKey) -> str:
    """SHA-256 of the raw public key: names the key a file is sealed for or signed with."""
    public = key.public_key() if isinstance(key, PrivateKey) else key
    return sha256_hex(
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
