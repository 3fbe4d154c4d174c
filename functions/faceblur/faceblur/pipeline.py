"""The one pipeline every door uses: bytes -> decode -> detect -> anonymise -> encode -> bytes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from faceblur.anonymise import anonymise, padded_region
from faceblur.detect import Box, Detector, Face
from faceblur.image import (
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    box_as_stored,
    decode,
    encode,
    size_as_stored,
)
from faceblur.options import Options


@dataclass(frozen=True)
class Detection:
    """Faces found in one image and the regions the options would anonymise."""

    width: int
    height: int
    faces: list[Face]
    regions: list[Box]
    timings: dict[str, float] = field(default_factory=dict)
    orientation: int = 1  # EXIF orientation of the input: boxes are on the upright pixels

    @property
    def size_as_stored(self) -> tuple[int, int]:
        return size_as_stored(self.width, self.height, self.orientation)


@dataclass(frozen=True, kw_only=True)
class Result(Detection):
    """A detection with its anonymised image, encoded in the input's format.

    A subtype rather than one merged type: a detection alone has no image, and an
    optional `data` would say otherwise.
    """

    data: bytes
    format: str
    mime_type: str


def _decode_and_locate(
    data: bytes, detector: Detector, options: Options, max_pixels: int
) -> tuple[DecodedImage, list[Face], list[Box], dict[str, float]]:
    started = time.perf_counter()
    decoded = decode(data, max_pixels)
    decoded_at = time.perf_counter()
    faces = [face for face in detector.detect(decoded.pixels) if face.score >= options.threshold]
    regions = [
        padded_region(face.box, options.padding, decoded.width, decoded.height) for face in faces
    ]
    timings = {"decode": decoded_at - started, "detect": time.perf_counter() - decoded_at}
    return decoded, faces, regions, timings


def locate_faces(
    data: bytes,
    detector: Detector,
    options: Options = Options(),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Detection:
    """Decode and detect only: what `faceblur detect` reports."""
    decoded, faces, regions, timings = _decode_and_locate(data, detector, options, max_pixels)
    timings["total"] = sum(timings.values())
    return Detection(decoded.width, decoded.height, faces, regions, timings, decoded.orientation)


def _anonymised(
    decoded: DecodedImage,
    faces: list[Face],
    regions: list[Box],
    options: Options,
    timings: dict[str, float],
) -> Result:
    started = time.perf_counter()
    pixels = anonymise(decoded.pixels, regions, options.method, options.shape, options.strength)
    anonymised_at = time.perf_counter()
    data = encode(decoded, pixels, regions)
    done = time.perf_counter()
    timings = {
        **timings,
        "anonymise": anonymised_at - started,
        "encode": done - anonymised_at,
    }
    timings["total"] = sum(timings.values())
    return Result(
        width=decoded.width,
        height=decoded.height,
        faces=faces,
        regions=regions,
        timings=timings,
        orientation=decoded.orientation,
        data=data,
        format=decoded.format,
        mime_type=decoded.mime_type,
    )


def anonymise_image(
    data: bytes,
    detector: Detector,
    options: Options = Options(),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Result:
    """Every face found in `data` anonymised, encoded in the input's format without metadata."""
    decoded, faces, regions, timings = _decode_and_locate(data, detector, options, max_pixels)
    return _anonymised(decoded, faces, regions, options, timings)


def anonymise_whole_image(
    data: bytes, options: Options = Options(), max_pixels: int = DEFAULT_MAX_PIXELS
) -> Result:
    """The whole frame as one face region, no detection: for photos that are a face already."""
    started = time.perf_counter()
    decoded = decode(data, max_pixels)
    timings = {"decode": time.perf_counter() - started}
    whole: Box = (0, 0, decoded.width, decoded.height)
    return _anonymised(decoded, [], [whole], options, timings)


def faces_to_json(found: Detection, as_stored: bool = False) -> list[dict]:
    """Faces as plain JSON types, with the region each one's anonymisation covers.

    Boxes are on the upright image (as in every result); `as_stored` maps them to the
    pixels of an input file as stored, before its EXIF orientation.
    """
    orientation = found.orientation if as_stored else 1

    def plain(box: Box) -> list[int]:
        return [int(v) for v in box_as_stored(box, found.width, found.height, orientation)]

    return [
        {
            "box": plain(face.box),
            "region": plain(region),
            "score": round(float(face.score), 4),
            "landmarks": {name: plain((x, y, 0, 0))[:2] for name, (x, y) in face.landmarks.items()},
        }
        for face, region in zip(found.faces, found.regions, strict=True)
    ]
