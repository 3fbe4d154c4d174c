"""Sealed videos: each track's original pixels across the clip under a key of its own.

A video's sealed file is what `faceblur.sealing.seal` is for a photo, with a track in the
place of a face: the pixels of every region hidden for a track, frame after frame, are
zlib-compressed and encrypted with AES-256-GCM under the track's own random key, in
chunks of at most CHUNK_FRAMES frames (each with a fresh nonce); the key is wrapped for
the authority with the photo seal's HPKE suite. Opening one track restores that person
across the clip and nothing of anyone else: a region's pixels covered by another
region of the same frame are zero, as in a photo.

The file is written while the clip is rendered and read a line at a time, so neither
grows memory with the clip's length (but for the boxes, a few numbers per face-frame):

    {"format": "faceblur-sealed-video", "version": 1, "suite": ..., "authority": ...,
     "width": W, "height": H}                                 (frames as displayed)
    {"track": T, "chunk": i, "boxes": [[frame, x, y, w, h], ...], "nonce": ..., "ciphertext": ...}
    ...
    {"result_sha256": ..., "tracks": [{"track": T, "chunks": n, "digest": ...,
                                       "wrapped_key": ...}]}

Binding: a chunk's associated data is the header, its track, its number and its boxes;
a track's wrapped key's HPKE `info` is the header, the result's SHA-256, the track, its
number of chunks and a digest of every chunk of the track (boxes, nonce, ciphertext).
Opening one track unwraps (and drops) every track's key, so a change anywhere is refused,
as is the file beside another result.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import av
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from faceblur.geometry import Box
from faceblur.media.container import Orientation, open_input, probe, read_frames, written_beside
from faceblur.media.track import TrackedFrame
from faceblur.sealing.base import (
    NONCE_BYTES,
    SealError,
    b64,
    canonical,
    same_digest,
    sha256_hex,
    unb64,
)
from faceblur.sealing.seal import (
    _SUITE,
    SUITE_NAME,
    ResultMismatchError,
    TamperedSealError,
    WrongKeyError,
    fingerprint,
    own_pixels,
)

FORMAT = "faceblur-sealed-video"
VERSION = 1
CHUNK_FRAMES = 64  # frames of one track encrypted together: memory stays bounded
MAX_LINE_BYTES = 256 * 1024 * 1024  # a chunk line longer than this is not ours


def is_sealed_video(first_line: bytes) -> bool:
    """Whether a sealed file's first line is a video's header."""
    try:
        return json.loads(first_line).get("format") == FORMAT
    except (ValueError, AttributeError):
        return False


@dataclass
class _Chunk:
    boxes: list[list[int]] = field(default_factory=list)
    pixels: zlib._Compress = field(default_factory=zlib.compressobj)
    compressed: list[bytes] = field(default_factory=list)


@dataclass
class _TrackState:
    key: bytes
    number: int = 0  # chunks written
    digest: list[list[str]] = field(default_factory=list)
    chunk: _Chunk = field(default_factory=_Chunk)


def seal_size(source: Path) -> tuple[int, int]:
    """The width and height of a clip's frames as displayed: what its seal holds."""
    info = probe(source)
    turned = Orientation.from_matrix(info.display_matrix).turns % 2
    return (info.height, info.width) if turned else (info.width, info.height)


class TrackSealer:
    """Write a video's sealed file while it is rendered.

    `add` is a `faceblur.media.video.FrameObserver`: every frame as displayed, its tracked
    faces and their regions. `finish(result)` once the result is written; `out` is
    closed by the caller.
    """

    def __init__(
        self, out: IO[bytes], public_key: X25519PublicKey, width: int, height: int
    ) -> None:
        self.out = out
        self.public_key = public_key
        self.header = {
            "format": FORMAT,
            "version": VERSION,
            "suite": SUITE_NAME,
            "authority": fingerprint(public_key),
            "width": width,
            "height": height,
        }
        self.tracks: dict[int, _TrackState] = {}
        self._write(self.header)

    def _write(self, document: dict) -> None:
        self.out.write(json.dumps(document, separators=(",", ":")).encode() + b"\n")

    def add(self, shown: np.ndarray, tracked: TrackedFrame, regions: list[Box]) -> None:
        boxes = [tuple(int(v) for v in region) for region in regions]
        for number, (face, (x, y, w, h)) in enumerate(zip(tracked.faces, boxes, strict=True)):
            if w <= 0 or h <= 0:
                continue
            state = self.tracks.get(face.track)
            if state is None:
                state = self.tracks[face.track] = _TrackState(AESGCM.generate_key(bit_length=256))
            crop = shown[y : y + h, x : x + w, :3].copy()
            crop[~own_pixels(boxes, number)] = 0
            chunk = state.chunk
            chunk.boxes.append([tracked.index, x, y, w, h])
            chunk.compressed.append(chunk.pixels.compress(crop.tobytes()))
            if len(chunk.boxes) >= CHUNK_FRAMES:
                self._flush(face.track, state)

    def _flush(self, track: int, state: _TrackState) -> None:
        chunk = state.chunk
        if not chunk.boxes:
            return
        data = b"".join(chunk.compressed) + chunk.pixels.flush()
        nonce = os.urandom(NONCE_BYTES)
        aad = _chunk_binding(self.header, track, state.number, chunk.boxes)
        ciphertext = AESGCM(state.key).encrypt(nonce, data, aad)
        line = {
            "track": track,
            "chunk": state.number,
            "boxes": chunk.boxes,
            "nonce": b64(nonce),
            "ciphertext": b64(ciphertext),
        }
        state.digest.append(_chunk_digest(line))
        self._write(line)
        state.number += 1
        state.chunk = _Chunk()

    def finish(self, result_sha256: str) -> None:
        """The last chunks and every track's wrapped key, bound to the result's hash."""
        for track, state in sorted(self.tracks.items()):
            self._flush(track, state)
        keys = []
        for track, state in sorted(self.tracks.items()):
            info = _key_binding(self.header, result_sha256, track, state.number, state.digest)
            wrapped = _SUITE.encrypt(state.key, self.public_key, info=info)
            keys.append(
                {
                    "track": track,
                    "chunks": state.number,
                    "digest": sha256_hex(canonical(state.digest)),
                    "wrapped_key": b64(wrapped),
                }
            )
            state.key = b""
        self._write({"result_sha256": result_sha256, "tracks": keys})


def _chunk_binding(header: dict, track: int, number: int, boxes: list[list[int]]) -> bytes:
    return canonical({**header, "track": track, "chunk": number, "boxes": boxes})


def _chunk_digest(line: dict) -> list[str]:
    return [
        sha256_hex(canonical(line["boxes"])),
        line["nonce"],
        sha256_hex(line["ciphertext"].encode()),
    ]


def _key_binding(
    header: dict, result_sha256: str, track: int, chunks: int, digest: list[list[str]]
) -> bytes:
    return canonical(
        {
            **header,
            "result_sha256": result_sha256,
            "track": track,
            "chunks": chunks,
            "digest": sha256_hex(canonical(digest)),
        }
    )


# -- reading --------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[dict]:
    with path.open("rb") as handle:
        for raw in iter(lambda: handle.readline(MAX_LINE_BYTES), b""):
            try:
                document = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise TamperedSealError("not a sealed video: malformed JSON line") from None
            if not isinstance(document, dict):
                raise TamperedSealError("not a sealed video: a line is not an object")
            yield document


@dataclass(frozen=True)
class SealedVideo:
    """A sealed video's header, its tracks (number, chunks, wrapped key) and every box."""

    path: Path
    header: dict
    result_sha256: str
    tracks: dict[int, dict]
    boxes: dict[int, list[tuple[int, Box]]]  # frame -> (track, box) of every sealed region

    @property
    def width(self) -> int:
        return self.header["width"]

    @property
    def height(self) -> int:
        return self.header["height"]


def read_sealed_video(path: Path) -> SealedVideo:
    """Parse a sealed video and check its structure (not yet its authenticity)."""
    lines = _lines(path)
    header = next(lines, None)
    if header is None or header.get("format") != FORMAT:
        raise TamperedSealError(f'not a sealed video: no "format": {FORMAT!r}')
    if header.get("version") != VERSION or header.get("suite") != SUITE_NAME:
        raise TamperedSealError("sealed video version or suite not supported")
    if set(header) != {"format", "version", "suite", "authority", "width", "height"}:
        raise TamperedSealError("malformed sealed video header")
    digests: dict[int, list[list[str]]] = {}
    boxes: dict[int, list[tuple[int, Box]]] = {}
    final = None
    for line in lines:
        if final is not None:
            raise TamperedSealError("malformed sealed video: lines after its keys")
        if "result_sha256" in line:
            final = line
            continue
        track, number = line.get("track"), line.get("chunk")
        seen = digests.setdefault(track, [])
        if not isinstance(track, int) or number != len(seen):
            raise TamperedSealError(f"malformed sealed video: chunk of track {track} out of place")
        try:
            for frame, x, y, w, h in line["boxes"]:
                boxes.setdefault(int(frame), []).append((track, (int(x), int(y), int(w), int(h))))
            seen.append(_chunk_digest(line))
        except (KeyError, TypeError, ValueError):
            raise TamperedSealError("malformed sealed video: a chunk's boxes") from None
    if final is None or not isinstance(final.get("tracks"), list):
        raise TamperedSealError("sealed video cut short: no keys at its end")
    tracks = {}
    for record in final["tracks"]:
        track = record.get("track") if isinstance(record, dict) else None
        if track not in digests or record.get("chunks") != len(digests[track]):
            raise TamperedSealError(f"malformed sealed video: track {track}'s chunks")
        tracks[track] = {**record, "digest_list": digests[track]}
    if set(tracks) != set(digests):
        raise TamperedSealError("malformed sealed video: a track has no key")
    return SealedVideo(path, header, str(final.get("result_sha256")), tracks, boxes)


def open_track(
    sealed: SealedVideo, track: int, result_sha256: str, private_key: X25519PrivateKey
) -> Iterator[tuple[int, Box, np.ndarray, np.ndarray]]:
    """(frame, region, its original pixels, own-pixel mask) of track `track`, frame by
    frame, after checking the key, the result and every track's key."""
    if not same_digest(fingerprint(private_key), sealed.header["authority"]):
        raise WrongKeyError("the private key is not the authority key this file was sealed for")
    if not same_digest(result_sha256, sealed.result_sha256):
        raise ResultMismatchError(
            "the result does not match the sealed file: it was altered, or the sealed file "
            "belongs to another result"
        )
    if track not in sealed.tracks:
        raise SealError(f"no track {track}: the sealed file holds {sorted(sealed.tracks)}")
    wanted = b""
    for ident, record in sealed.tracks.items():
        info = _key_binding(
            sealed.header, sealed.result_sha256, ident, record["chunks"], record["digest_list"]
        )
        try:
            key = _SUITE.decrypt(
                unb64(record.get("wrapped_key"), "wrapped_key", TamperedSealError),
                private_key,
                info=info,
            )
        except (InvalidTag, ValueError):
            raise TamperedSealError(
                f"track {ident}'s key fails authentication: the sealed file was altered"
            ) from None
        if ident == track:
            wanted = key
    for line in _lines(sealed.path):
        if line.get("track") != track or "chunk" not in line:
            continue
        aad = _chunk_binding(sealed.header, track, line["chunk"], line["boxes"])
        try:
            plain = AESGCM(wanted).decrypt(
                unb64(line["nonce"], "nonce", TamperedSealError),
                unb64(line["ciphertext"], "ciphertext", TamperedSealError),
                aad,
            )
        except (InvalidTag, ValueError):
            raise TamperedSealError(
                f"track {track} chunk {line['chunk']} fails authentication"
            ) from None
        inflater = zlib.decompressobj()
        for frame, x, y, w, h in line["boxes"]:
            size = w * h * 3
            pixels = inflater.decompress(inflater.unconsumed_tail or plain, size)
            plain = b""
            if len(pixels) != size:
                raise TamperedSealError(f"track {track}: frame {frame}'s pixels are short")
            others = [box for ident, box in sealed.boxes.get(frame, []) if ident != track]
            mask = own_pixels([(x, y, w, h), *others], 0)
            yield frame, (x, y, w, h), np.frombuffer(pixels, np.uint8).reshape(h, w, 3), mask


# -- disclosure -------------------------------------------------------------------------------

DISCLOSURE_SUFFIX = ".mkv"  # FFV1 in Matroska: lossless, so the restored pixels are exact


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def disclose_track(
    result: Path, sealed_path: Path, track: int, private_key: X25519PrivateKey, output: Path
) -> str:
    """Write `output` (FFV1 in MKV, lossless, frames as displayed, no audio): the result
    with track `track` restored in every frame it was sealed in, every other pixel as the
    result's decoded frame. Its SHA-256; on any error nothing is left under `output`."""
    sealed = read_sealed_video(sealed_path)
    restored = open_track(sealed, track, file_sha256(result), private_key)
    pending = next(restored, None)
    info = probe(result)
    orientation = Orientation.from_matrix(info.display_matrix)
    container = open_input(result)
    try:
        with (
            written_beside(output, f"{result.name}: truncated or damaged video") as partial,
            av.open(str(partial), mode="w", format="matroska") as out,
        ):
            stream = out.add_stream("ffv1", rate=info.rate)
            stream.width, stream.height = sealed.width, sealed.height
            stream.pix_fmt = "bgr0"  # RGB, lossless both ways
            for index, decoded in enumerate(read_frames(container, orientation, lambda p: None)):
                frame = decoded.shown
                if frame.shape[:2] != (sealed.height, sealed.width):
                    raise ResultMismatchError("the result's size differs from the sealed file's")
                while pending is not None and pending[0] == index:
                    _, (x, y, w, h), pixels, mask = pending
                    frame = frame.copy() if frame is decoded.shown else frame
                    frame[y : y + h, x : x + w][mask] = pixels[mask]
                    pending = next(restored, None)
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                picture.pts = index
                out.mux(stream.encode(picture))
            out.mux(stream.encode(None))
            if pending is not None:
                raise ResultMismatchError("the sealed file names frames the result does not have")
    finally:
        container.close()
    return file_sha256(output)
