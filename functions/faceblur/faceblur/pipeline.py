"""The one pipeline every door uses: bytes -> decode -> detect -> anonymise -> encode -> bytes."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from faceblur.angles import upright
from faceblur.anonymise import (
    DEFAULT_CROWD_PADDING,
    DEFAULT_METHOD,
    DEFAULT_PADDING,
    DEFAULT_SHAPE,
    DEFAULT_STRENGTH,
    METHODS,
    SHAPES,
    STRENGTHS,
    anonymise,
    face_regions,
)
from faceblur.detect import DEFAULT_THRESHOLD, MIN_THRESHOLD, Box, Detector, Face
from faceblur.errors import BadRequestError
from faceblur.image import (
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    box_as_stored,
    decode,
    encode,
    size_as_stored,
)

MAX_PADDING = 2.0


@dataclass(frozen=True)
class Options:
    """What a caller may choose; the defaults are the benchmarked ones."""

    method: str = DEFAULT_METHOD
    shape: str = DEFAULT_SHAPE
    strength: str = DEFAULT_STRENGTH
    padding: float = DEFAULT_PADDING
    crowd_padding: float = DEFAULT_CROWD_PADDING
    threshold: float = DEFAULT_THRESHOLD
    upright_only: bool = False  # skip the turned passes (faceblur.angles): photos known upright


OPTION_NAMES = tuple(f.name for f in fields(Options))


def _choice(name: str, value: object, choices: Sequence[str]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise BadRequestError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return text


def _number(name: str, value: object, low: float, high: float) -> float:
    problem = BadRequestError(f"{name} must be a number from {low} to {high}; got {value!r}")
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        raise problem
    try:
        number = float(value)
    except ValueError:
        raise problem from None
    if not (math.isfinite(number) and low <= number <= high):
        raise problem
    return number


def _flag(name: str, value: object) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise BadRequestError(f"{name} must be true or false; got {value!r}")
    return text in ("true", "1", "yes", "on")


def parse_options(raw: Mapping[str, object]) -> Options:
    """Validate options from a query string, JSON body or command line (strings or typed)."""
    unknown = sorted(set(raw) - set(OPTION_NAMES))
    if unknown:
        raise BadRequestError(
            f"unknown option(s): {', '.join(unknown)}; valid options: {', '.join(OPTION_NAMES)}"
        )
    defaults = Options()
    return Options(
        method=_choice("method", raw.get("method", defaults.method), tuple(METHODS)),
        shape=_choice("shape", raw.get("shape", defaults.shape), SHAPES),
        strength=_choice("strength", raw.get("strength", defaults.strength), STRENGTHS),
        padding=_number("padding", raw.get("padding", defaults.padding), 0.0, MAX_PADDING),
        crowd_padding=_number(
            "crowd_padding", raw.get("crowd_padding", defaults.crowd_padding), 0.0, MAX_PADDING
        ),
        threshold=_number(
            "threshold", raw.get("threshold", defaults.threshold), MIN_THRESHOLD, 1.0
        ),
        upright_only=_flag("upright_only", raw.get("upright_only", defaults.upright_only)),
    )


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


@dataclass(frozen=True)
class Result:
    data: bytes
    format: str
    mime_type: str
    width: int
    height: int
    faces: list[Face]
    regions: list[Box]
    timings: dict[str, float]


def _decode_and_locate(
    data: bytes, detector: Detector, options: Options, max_pixels: int
) -> tuple[DecodedImage, list[Face], list[Box], dict[str, float]]:
    started = time.perf_counter()
    decoded = decode(data, max_pixels)
    decoded_at = time.perf_counter()
    candidates = (upright(detector) if options.upright_only else detector).detect(decoded.pixels)
    faces = [face for face in candidates if face.score >= options.threshold]
    doubtful = [face.box for face in candidates if face.score < options.threshold]
    regions = face_regions(
        [face.box for face in faces],
        options.padding,
        options.crowd_padding,
        decoded.width,
        decoded.height,
        doubtful,
        [face.turn for face in faces],
    )
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
    data = encode(decoded, pixels)
    done = time.perf_counter()
    timings = {
        **timings,
        "anonymise": anonymised_at - started,
        "encode": done - anonymised_at,
    }
    timings["total"] = sum(timings.values())
    return Result(
        data,
        decoded.format,
        decoded.mime_type,
        decoded.width,
        decoded.height,
        faces,
        regions,
        timings,
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


def faces_to_json(found: Detection | Result, as_stored: bool = False) -> list[dict]:
    """Faces as plain JSON types, with the region each one's anonymisation covers.

    Boxes are on the upright image (as in every result); `as_stored` maps them to the
    pixels of an input file as stored, before its EXIF orientation.
    """
    orientation = found.orientation if as_stored and isinstance(found, Detection) else 1

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
