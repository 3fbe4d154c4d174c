"""Sealed originals: each face's original pixels kept for an authority, one disclosed at a time.

What the public result shows keeps nothing of the faces. Beside it, a sealed file holds,
for each anonymised region, its original pixels encrypted with AES-256-GCM under a fresh
random key; that key is wrapped for the authority's X25519 public key with HPKE (RFC 9180,
base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM), as `cryptography`
implements it. Only the holder of the private key can open a face; the service that seals
needs the public key alone.

Binding: every face's AEAD associated data is the canonical JSON of the file's format and
version, the authority's key fingerprint, the SHA-256 of the result file, its size, the
list of all regions and the face's index; its wrapped key's HPKE `info` adds a digest of
every face's nonce and ciphertext. Moving a sealed file beside another result, changing a
region, or swapping two faces' records makes decryption fail; opening one face unwraps
(and drops) every face's key, so a change anywhere in the file is refused.

What this cannot do: anyone holding the public key can seal, so a whole sealed file forged
from scratch for a result verifies. That the pixels are the true original rests on who
may write the sealed object (the private originals bucket: the function alone), and on the
sealed file's hash recorded in each audit entry; a sealer signature would need a private
key in the service, which the design rules out.

A face's sealed pixels are its region minus the other faces' regions (those are zero), and
disclosure pastes exactly those pixels: opening one face reveals nothing of a neighbour
whose region overlaps it.

Sealed file, version 1: UTF-8 JSON
    {"format": "faceblur-sealed", "version": 1, "suite": SUITE_NAME,
     "authority": "<sha256 hex of the raw public key>", "result_sha256": "<hex>",
     "width": W, "height": H,
     "faces": [{"index": 0, "region": [x, y, w, h], "wrapped_key": "<base64 HPKE enc||ct>",
                "nonce": "<base64 12 bytes>", "ciphertext": "<base64 AES-GCM(pixels)>"}]}
where pixels are the region's h x w x 3 RGB bytes (row-major) of the upright image,
zlib-compressed before encryption (a region's size is public anyway; compressing keeps the
sealed file near the size of a PNG of the faces rather than several times the photo's).

The authority's keys are here too. The audit log of disclosures is `faceblur.sealing.audit`,
key custody (Shamir k-of-n shares) `faceblur.sealing.shares`: pure functions over lines and
bytes, as this is; reading and writing files is the CLI's job.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceblur.geometry import Box, padded_region
from faceblur.media.image import DEFAULT_MAX_PIXELS, decode, encode
from faceblur.sealing.base import (
    NONCE_BYTES,
    SealError,
    b64,
    canonical,
    same_digest,
    sha256_hex,
    unb64,
)

# The authority's keys are written as every sealing key is (callers and tests use seal.*).
from faceblur.sealing.base import fingerprint as fingerprint
from faceblur.sealing.base import private_key_pem as private_key_pem
from faceblur.sealing.base import public_key_pem as public_key_pem

FORMAT = "faceblur-sealed"
VERSION = 1
SUITE_NAME = "HPKE-base/DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-256-GCM+AES-256-GCM"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


# -- errors -----------------------------------------------------------------------------------


class WrongKeyError(SealError, code="wrong_key"):
    """The private key (or its passphrase) is not the one the file was sealed for."""


class ResultMismatchError(SealError, code="result_mismatch"):
    """The result is not the one the sealed file was made for (altered, or another one)."""


class TamperedSealError(SealError, code="tampered"):
    """The sealed file is malformed or fails authentication: it was altered."""


# -- keys -------------------------------------------------------------------------------------


def new_authority_key() -> X25519PrivateKey:
    """A fresh X25519 key pair (from the OS's secure random source, via OpenSSL)."""
    return X25519PrivateKey.generate()


def load_public_key(pem: bytes | str) -> X25519PublicKey:
    """An authority's public key from PEM; SealError for anything else (a private key too)."""
    data = pem.encode() if isinstance(pem, str) else pem
    if b"PRIVATE KEY" in data:
        raise SealError("this is a private key: sealing needs only the authority's public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SealError("not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise SealError("the authority key must be an X25519 key (faceblur keys new)")
    return key


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> X25519PrivateKey:
    """The authority's private key from PEM; WrongKeyError for a wrong or missing passphrase."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError as error:  # encrypted without a passphrase, or a passphrase for a clear key
        raise WrongKeyError(f"private key passphrase: {error}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise WrongKeyError("not a usable private key, or the passphrase is wrong") from None
    if not isinstance(key, X25519PrivateKey):
        raise WrongKeyError("the authority key must be an X25519 key (faceblur keys new)")
    return key


# -- the sealed file --------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedFace:
    index: int
    region: Box
    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class Sealed:
    authority: str
    result_sha256: str
    width: int
    height: int
    faces: tuple[SealedFace, ...]

    def binding(self, index: int) -> bytes:
        """The data each face's encryption is bound to (AEAD associated data, HPKE info)."""
        return canonical(
            {
                "format": FORMAT,
                "version": VERSION,
                "suite": SUITE_NAME,
                "authority": self.authority,
                "result_sha256": self.result_sha256,
                "width": self.width,
                "height": self.height,
                "regions": [list(face.region) for face in self.faces],
                "face": index,
            }
        )

    def key_binding(self, index: int) -> bytes:
        """What each face's wrapped key is bound to (HPKE info): its binding plus a digest
        of every face's nonce and ciphertext, so a change to any face's pixels shows when
        any face is opened."""
        contents = [[b64(f.nonce), sha256_hex(f.ciphertext)] for f in self.faces]
        return self.binding(index) + b"\n" + canonical(contents)


def own_pixels(regions: Sequence[Box], index: int) -> np.ndarray:
    """Boolean mask over region `index`: True where no other region covers the pixel."""
    x, y, w, h = regions[index]
    mask = np.ones((h, w), dtype=bool)
    for other, (ox, oy, ow, oh) in enumerate(regions):
        if other == index:
            continue
        x0, y0 = max(x, ox), max(y, oy)
        x1, y1 = min(x + w, ox + ow), min(y + h, oy + oh)
        if x0 < x1 and y0 < y1:
            mask[y0 - y : y1 - y, x0 - x : x1 - x] = False
    return mask


def seal_pixels(
    original: np.ndarray,
    regions: Sequence[Box],
    result: bytes,
    public_key: X25519PublicKey,
) -> bytes:
    """The sealed file for `result`: each region's pixels of `original` (upright RGB uint8)."""
    height, width = original.shape[:2]
    # No padding: the regions are already the anonymised ones; this only clips them.
    clipped = tuple(padded_region(region, 0.0, width, height) for region in regions)
    skeleton = Sealed(
        authority=fingerprint(public_key),
        result_sha256=sha256_hex(result),
        width=width,
        height=height,
        faces=tuple(SealedFace(i, region, b"", b"", b"") for i, region in enumerate(clipped)),
    )
    # How many regions cover each pixel, counted once: a face's own pixels are those only
    # it covers (own_pixels), found without comparing every region with every other.
    coverage = np.zeros((height, width), dtype=np.uint16)
    for x, y, w, h in clipped:
        coverage[y : y + h, x : x + w] += 1
    # Pixels first, then the keys: each wrapped key is bound to every face's ciphertext.
    keys, encrypted = [], []
    for index, (x, y, w, h) in enumerate(clipped):
        crop = original[y : y + h, x : x + w, :3].copy()
        crop[coverage[y : y + h, x : x + w] != 1] = 0
        face_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(face_key).encrypt(
            nonce, zlib.compress(crop.tobytes()), skeleton.binding(index)
        )
        keys.append(face_key)
        encrypted.append(SealedFace(index, (x, y, w, h), b"", nonce, ciphertext))
    skeleton = dataclasses.replace(skeleton, faces=tuple(encrypted))
    faces = [
        {
            "index": face.index,
            "region": list(face.region),
            "wrapped_key": b64(
                _SUITE.encrypt(face_key, public_key, info=skeleton.key_binding(face.index))
            ),
            "nonce": b64(face.nonce),
            "ciphertext": b64(face.ciphertext),
        }
        for face, face_key in zip(encrypted, keys, strict=True)
    ]
    document = {
        "format": FORMAT,
        "version": VERSION,
        "suite": SUITE_NAME,
        "authority": skeleton.authority,
        "result_sha256": skeleton.result_sha256,
        "width": width,
        "height": height,
        "faces": faces,
    }
    return json.dumps(document, indent=1).encode() + b"\n"


def seal_original(
    original: bytes,
    result: bytes,
    regions: Sequence[Box],
    public_key: X25519PublicKey | bytes | str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Seal the regions of the photo `original` (file bytes) for the anonymised `result`.

    `regions` are on the upright image, as the pipeline's PhotoResult gives them.
    """
    if not isinstance(public_key, X25519PublicKey):
        public_key = load_public_key(public_key)
    return seal_pixels(decode(original, max_pixels).pixels, regions, result, public_key)


def seal_for_store(
    public_key_pem: str | None,
    original: bytes,
    result: bytes,
    regions: Sequence[Box],
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes | None:
    """The service's sealing step: what the originals bucket stores instead of `original`
    (Store.put_pair(sealed=...)), or None when no sealing key is configured."""
    if public_key_pem is None:
        return None
    return seal_original(original, result, regions, public_key_pem, max_pixels)


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TamperedSealError(f"malformed sealed file: {what} must be a whole number")
    return value


def read_sealed(data: bytes) -> Sealed:
    """Parse and check the structure of a sealed file (not yet its authenticity)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TamperedSealError("not a sealed file: malformed JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TamperedSealError(f'not a sealed file: no "format": {FORMAT!r}')
    if document.get("version") != VERSION or document.get("suite") != SUITE_NAME:
        raise TamperedSealError(
            f"sealed file version {document.get('version')!r} / suite {document.get('suite')!r}"
            f" is not the supported {VERSION} / {SUITE_NAME}"
        )
    authority, digest = document.get("authority"), document.get("result_sha256")
    if not (isinstance(authority, str) and isinstance(digest, str)):
        raise TamperedSealError("malformed sealed file: authority and result_sha256 are text")
    width, height = _int(document.get("width"), "width"), _int(document.get("height"), "height")
    records = document.get("faces")
    if not isinstance(records, list):
        raise TamperedSealError("malformed sealed file: faces must be a list")
    faces = []
    for position, record in enumerate(records):
        if not isinstance(record, dict) or record.get("index") != position:
            raise TamperedSealError(f"malformed sealed file: face record {position} out of place")
        region = record.get("region")
        if not isinstance(region, list) or len(region) != 4:
            raise TamperedSealError(f"malformed sealed file: face {position} region")
        x, y, w, h = (_int(v, f"face {position} region") for v in region)
        if x + w > width or y + h > height:
            raise TamperedSealError(f"malformed sealed file: face {position} outside the image")
        faces.append(
            SealedFace(
                index=position,
                region=(x, y, w, h),
                wrapped_key=unb64(record.get("wrapped_key"), "wrapped_key", TamperedSealError),
                nonce=unb64(record.get("nonce"), "nonce", TamperedSealError),
                ciphertext=unb64(record.get("ciphertext"), "ciphertext", TamperedSealError),
            )
        )
    return Sealed(authority, digest, width, height, tuple(faces))


# -- disclosure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disclosure:
    png: bytes  # the result with face `index` restored, lossless
    index: int
    region: Box
    output_sha256: str


def open_face(sealed: Sealed, index: int, private_key: X25519PrivateKey) -> np.ndarray:
    """Face `index`'s original pixels (h x w x 3), after checking key and authenticity."""
    if not same_digest(fingerprint(private_key), sealed.authority):
        raise WrongKeyError("the private key is not the authority key this file was sealed for")
    if not 0 <= index < len(sealed.faces):
        raise SealError(
            f"no face {index}: the sealed file holds {len(sealed.faces)} face(s)"
            + (f", 0 to {len(sealed.faces) - 1}" if sealed.faces else "")
        )
    # Every face's key is unwrapped (and dropped) to check the whole file; only face
    # `index`'s pixels are decrypted.
    for other in sealed.faces:
        try:
            face_key = _SUITE.decrypt(
                other.wrapped_key, private_key, info=sealed.key_binding(other.index)
            )
        except (InvalidTag, ValueError):
            raise TamperedSealError(
                f"face {other.index}'s key fails authentication: the sealed file was altered"
            ) from None
        if other.index == index:
            wanted_key = face_key
    face = sealed.faces[index]
    try:
        plain = AESGCM(wanted_key).decrypt(face.nonce, face.ciphertext, sealed.binding(index))
    except (InvalidTag, ValueError):
        raise TamperedSealError(
            f"face {index} fails authentication: the sealed file was altered"
        ) from None
    _, _, w, h = face.region
    # Authenticated above, so these bytes are the sealer's: still, never inflate past the size.
    inflater = zlib.decompressobj()
    try:
        plain = inflater.decompress(plain, w * h * 3)
    except zlib.error:
        raise TamperedSealError(f"face {index}: its pixels do not decompress") from None
    if len(plain) != w * h * 3 or inflater.unconsumed_tail:
        raise TamperedSealError(f"face {index} holds {len(plain)} bytes, not {w}x{h}x3")
    return np.frombuffer(plain, dtype=np.uint8).reshape(h, w, 3)


def disclose(
    result: bytes,
    sealed_file: bytes,
    index: int,
    private_key: X25519PrivateKey,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Disclosure:
    """The result with face `index` restored from the seal; every other pixel as in the result.

    Written as PNG whatever the result's format: lossless, so the restored face is exactly
    the original's decoded pixels and the rest exactly the result's decoded pixels.
    """
    sealed = read_sealed(sealed_file)
    if not same_digest(sha256_hex(result), sealed.result_sha256):
        raise ResultMismatchError(
            "the result does not match the sealed file: it was altered, or the sealed file "
            "belongs to another result"
        )
    pixels = open_face(sealed, index, private_key)
    decoded = decode(result, max_pixels)
    if (decoded.width, decoded.height) != (sealed.width, sealed.height):
        raise ResultMismatchError("the result's size differs from the sealed file's")
    x, y, w, h = sealed.faces[index].region
    restored = decoded.pixels.copy()
    mask = own_pixels([face.region for face in sealed.faces], index)
    restored[y : y + h, x : x + w][mask] = pixels[mask]
    lossless = dataclasses.replace(decoded, format="PNG", palette=None, transparent_index=None)
    png = encode(lossless, restored)
    return Disclosure(
        png=png,
        index=index,
        region=(x, y, w, h),
        output_sha256=sha256_hex(png),
    )
