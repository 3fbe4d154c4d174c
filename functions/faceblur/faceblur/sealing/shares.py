"""Key custody: the authority's private key split into n share files, any k of which
rebuild it (Shamir's secret sharing), so no one holder can disclose a face alone."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceblur.sealing.base import NONCE_BYTES, SealError, b64, canonical, unb64

SHARE_FORMAT = "faceblur-key-share"
SHARE_VERSION = 1
SHAMIR_SECRET_BYTES = 16  # what pycryptodome's Shamir splits: an AES-128 key


class ShareError(SealError, code="shares"):
    """Key shares that are malformed, too few, or do not belong together."""


def _share_binding(set_id: str, k: int, n: int) -> bytes:
    return canonical(
        {"format": SHARE_FORMAT, "version": SHARE_VERSION, "set": set_id, "k": k, "n": n}
    )


def split_key(key_file: bytes, k: int, n: int) -> list[bytes]:
    """`n` share files, any `k` of which rebuild `key_file` (the private key's PEM as stored).

    pycryptodome's Shamir splits 16-byte secrets, so the standard construction: a fresh
    AES-128 key encrypts the key file (AES-GCM), and that AES key is what is split. Each
    share file carries one share and the encrypted key file; alone it reveals nothing.
    """
    if not 2 <= k <= n <= 255:
        raise ShareError(f"need 2 <= k <= n <= 255, got k={k}, n={n}")
    secret = AESGCM.generate_key(bit_length=8 * SHAMIR_SECRET_BYTES)
    set_id = os.urandom(16).hex()
    nonce = os.urandom(NONCE_BYTES)
    encrypted = AESGCM(secret).encrypt(nonce, key_file, _share_binding(set_id, k, n))
    shares = Shamir.split(k, n, secret)
    return [
        json.dumps(
            {
                "format": SHARE_FORMAT,
                "version": SHARE_VERSION,
                "set": set_id,
                "k": k,
                "n": n,
                "index": index,
                "share": b64(share),
                "nonce": b64(nonce),
                "encrypted_key": b64(encrypted),
            },
            indent=1,
        ).encode()
        + b"\n"
        for index, share in shares
    ]


def join_shares(share_files: Sequence[bytes]) -> bytes:
    """The key file rebuilt from at least k share files of one split."""
    documents = []
    for position, data in enumerate(share_files, start=1):
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ShareError(f"share {position} is not a key share (malformed JSON)") from None
        if not isinstance(document, dict) or document.get("format") != SHARE_FORMAT:
            raise ShareError(f"share {position} is not a faceblur key share")
        if document.get("version") != SHARE_VERSION:
            raise ShareError(f"share {position} has unsupported version {document.get('version')}")
        documents.append(document)
    if not documents:
        raise ShareError("no shares given")
    first = documents[0]
    for position, document in enumerate(documents[1:], start=2):
        for name in ("set", "k", "n", "nonce", "encrypted_key"):
            if document.get(name) != first.get(name):
                raise ShareError(f"share {position} belongs to another split than share 1")
    k, n = first.get("k"), first.get("n")
    if not (isinstance(k, int) and isinstance(n, int)):
        raise ShareError("malformed share: k and n must be whole numbers")
    shares = {}
    for document in documents:
        index = document.get("index")
        if not isinstance(index, int) or not 1 <= index <= n:
            raise ShareError(f"malformed share: index {index!r}")
        share = unb64(document.get("share"), "share", ShareError)
        if len(share) != SHAMIR_SECRET_BYTES:
            raise ShareError(f"malformed share {index}: {len(share)} bytes")
        shares[index] = share
    if len(shares) < k:
        raise ShareError(f"{len(shares)} different share(s) given; this split needs {k}")
    secret = Shamir.combine(sorted(shares.items())[:k])
    nonce = unb64(first.get("nonce"), "nonce", ShareError)
    encrypted = unb64(first.get("encrypted_key"), "encrypted_key", ShareError)
    try:
        return AESGCM(secret).decrypt(nonce, encrypted, _share_binding(str(first["set"]), k, n))
    except (InvalidTag, ValueError):
        raise ShareError("the shares do not rebuild the key: one of them was altered") from None
