"""The one pipeline every door uses: bytes -> decode -> detect -> anonymise -> encode -> bytes.

Its outcomes are about a photo, not a detection (a detection is a `Face`): `PhotoFaces`
are the faces found in one photo and the regions that hide them, `PhotoResult` adds the
anonymised image.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TypeVar

from faceblur.anonymise import anonymise
from faceblur.detection.angles import upright
from faceblur.detection.base import Detector, Face
from faceblur.detection.fusion import DetectorSettings
from faceblur.geometry import Box, padded_region
from faceblur.media.image import DEFAULT_MAX_PIXELS, DecodedImage, decode, encode
from faceblur.options import Options, Region, check_regions_inside
from faceblur.orientation import box_as_shown, box_as_stored, size_as_stored, whole_pixels


@dataclass(frozen=True)
class PhotoFaces:
    """The faces found in one photo and the regions the options would anonymise."""

    width: int
    height: int
    faces: list[Face]
    regions: list[Box]  # one per face: its box grown by the padding
    timings: dict[str, float] = field(default_factory=dict)
    orientation: int = 1  # EXIF orientation of the input: boxes are on the upright pixels
    given: list[Box] = field(default_factory=list)  # the caller's own regions, as drawn

    @property
    def anonymised(self) -> list[Box]:
        """Every region anonymised: each found face's, then the caller's."""
        return [*self.regions, *self.given]

    @property
    def size_as_stored(self) -> tuple[int, int]:
        return size_as_stored(self.width, self.height, self.orientation)


@dataclass(frozen=True, kw_only=True)
class PhotoResult(PhotoFaces):
    """A photo's faces and regions with its anonymised image, encoded in the input's format.

    A subtype rather than one merged type: faces located alone have no image, and an
    optional `data` would say otherwise.
    """

    data: bytes
    format: str
    mime_type: str


def _given_boxes(regions: Sequence[Region], decoded: DecodedImage, as_stored: bool) -> list[Box]:
    """The caller's regions as whole pixels of the upright image, each checked to fit it,
    each once: a region given again would only be rendered (and sealed) again.

    `as_stored`: the regions are on the file's pixels before its EXIF orientation, as
    `faceblur detect` prints them; they are checked there and turned upright.
    """
    orientation = decoded.orientation if as_stored else 1
    width, height = size_as_stored(decoded.width, decoded.height, orientation)
    check_regions_inside(regions, width, height)
    boxes = [box_as_shown(whole_pixels(region), width, height, orientation) for region in regions]
    # Only the same box is merged: one box around overlapping ones would move the shape's
    # edge and its fade, and could leave part of a drawn region less hidden.
    return list(dict.fromkeys(boxes))


def _decode_and_locate(
    data: bytes, detector: Detector | None, options: Options, max_pixels: int, as_stored: bool
) -> tuple[DecodedImage, PhotoFaces, dict[str, float]]:
    started = time.perf_counter()
    decoded = decode(data, max_pixels)
    given = _given_boxes(options.regions, decoded, as_stored)
    decoded_at = time.perf_counter()
    faces = []
    if options.detect and detector is not None:
        chosen = upright(detector) if options.upright_only else detector
        found = chosen.detect(decoded.pixels)
        faces = [face for face in found if face.score >= options.threshold]
    regions = [
        padded_region(face.box, options.padding, decoded.width, decoded.height, face.turn)
        for face in faces
    ]
    timings = {"decode": decoded_at - started, "detect": time.perf_counter() - decoded_at}
    located = PhotoFaces(
        decoded.width, decoded.height, faces, regions, {}, decoded.orientation, given
    )
    return decoded, located, timings


def locate_faces(
    data: bytes,
    detector: Detector,
    options: Options = Options(),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PhotoFaces:
    """Decode and detect only: what `faceblur detect` reports."""
    _, found, timings = _decode_and_locate(data, detector, options, max_pixels, False)
    timings["total"] = sum(timings.values())
    return replace(found, timings=timings)


Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

PHOTOS_AT_ONCE = DetectorSettings.images_at_once
"""Photos of a batch in work at once: as many as the detector takes at a time."""


def side_by_side(
    items: Iterable[Item], work: Callable[[Item], Outcome], at_once: int = PHOTOS_AT_ONCE
) -> Iterator[tuple[Item, Future[Outcome]]]:
    """Each item with the future of `work(item)`, in the items' order, `at_once` items in
    work at a time: a batch's next photo decodes and goes through the networks while this
    one ends (`faceblur detect` and `blur`, and the benches that time them).

    An item's error is its future's (`future.result()` raises it), so one bad photo stops
    nothing else. Memory stays bounded: at most `at_once` items started and not yet handed
    over, plus the one the caller holds.
    """
    if at_once < 1:
        raise ValueError(f"at_once must be at least 1, got {at_once}")
    pending: deque[tuple[Item, Future[Outcome]]] = deque()
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="faceblur-photo") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(work, item)))
                if len(pending) >= at_once:
                    yield pending.popleft()
            while pending:
                yield pending.popleft()
        finally:  # the caller stopped early: start nothing more
            for _, future in pending:
                future.cancel()


def locate_each(
    paths: Iterable[Path],
    detector: Detector,
    options: Options = Options(),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[tuple[Path, Future[PhotoFaces]]]:
    """`locate_faces` on each photo file, in order, side by side (`side_by_side`): what
    `faceblur detect` runs on a batch, and bench/speed.py times."""
    return side_by_side(
        paths, lambda path: locate_faces(path.read_bytes(), detector, options, max_pixels)
    )


def _anonymised(
    decoded: DecodedImage, found: PhotoFaces, options: Options, timings: dict[str, float]
) -> PhotoResult:
    started = time.perf_counter()
    pixels = anonymise(
        decoded.pixels, found.anonymised, options.method, options.shape, options.strength
    )
    anonymised_at = time.perf_counter()
    data = encode(decoded, pixels, found.anonymised)
    done = time.perf_counter()
    timings = {
        **timings,
        "anonymise": anonymised_at - started,
        "encode": done - anonymised_at,
    }
    timings["total"] = sum(timings.values())
    # Every field of the faces carries over, so a field added to them cannot be dropped.
    located = {f.name: getattr(found, f.name) for f in fields(PhotoFaces) if f.name != "timings"}
    return PhotoResult(
        **located,
        timings=timings,
        data=data,
        format=decoded.format,
        mime_type=decoded.mime_type,
    )


def anonymise_image(
    data: bytes,
    detector: Detector | None,
    options: Options = Options(),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    regions_as_stored: bool = False,
) -> PhotoResult:
    """Every face found in `data` (when `options.detect`) and every region in
    `options.regions` anonymised, encoded in the input's format without metadata.

    `detector` may be None only when `options.detect` is false. `regions_as_stored`: the
    regions are in pixels of the file as stored, as `faceblur detect` prints them.
    """
    if options.detect and detector is None:
        raise ValueError("detection asked for without a detector")
    decoded, found, timings = _decode_and_locate(
        data, detector, options, max_pixels, regions_as_stored
    )
    return _anonymised(decoded, found, options, timings)


def anonymise_whole_image(
    data: bytes, options: Options = Options(), max_pixels: int = DEFAULT_MAX_PIXELS
) -> PhotoResult:
    """The whole frame as one face region, no detection: for photos that are a face already."""
    started = time.perf_counter()
    decoded = decode(data, max_pixels)
    timings = {"decode": time.perf_counter() - started}
    whole: Box = (0, 0, decoded.width, decoded.height)
    found = PhotoFaces(decoded.width, decoded.height, [], [], {}, decoded.orientation, [whole])
    return _anonymised(decoded, found, options, timings)


HEAD_STEP = {0: (0, -1), 90: (1, 0), 180: (0, 1), 270: (-1, 0)}
"""One pixel from a face's centre towards the top of its head, per `Face.turn`."""


def faces_to_json(found: PhotoFaces, as_stored: bool = False) -> list[dict]:
    """Faces as plain JSON types, with the region each one's anonymisation covers.

    Boxes are on the upright image (as in every result); `as_stored` maps them to the
    pixels of an input file as stored, before its EXIF orientation. `turn` says which way
    each face lies there: clockwise degrees (0, 90, 180, 270) to where its head points.
    """
    orientation = found.orientation if as_stored else 1

    def plain(box: Box) -> list[int]:
        return [int(v) for v in box_as_stored(box, found.width, found.height, orientation)]

    def turn(face: Face) -> int:
        # Follow the way the head points (a step from the box's centre) into the pixels
        # the boxes are given in: an EXIF turn or mirror turns or mirrors it too.
        x, y, w, h = face.box
        cx, cy = x + w // 2, y + h // 2
        dx, dy = HEAD_STEP[face.turn]
        (x0, y0), (x1, y1) = (
            plain((px, py, 0, 0))[:2] for px, py in ((cx, cy), (cx + dx, cy + dy))
        )
        return next(t for t, step in HEAD_STEP.items() if step == (x1 - x0, y1 - y0))

    return [
        {
            "box": plain(face.box),
            "region": plain(region),
            "score": round(float(face.score), 4),
            "turn": turn(face),
            "landmarks": {name: plain((x, y, 0, 0))[:2] for name, (x, y) in face.landmarks.items()},
        }
        for face, region in zip(found.faces, found.regions, strict=True)
    ]


def regions_to_json(found: PhotoFaces) -> list[list[int]]:
    """Every anonymised region on the upright image, found and given: what a client edits
    and sends back as `regions` with `detect=false`."""
    return [[int(v) for v in box] for box in found.anonymised]
