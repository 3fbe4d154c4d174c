"""Faces at any in-plane angle: the upright detector run on the photo turned as well.

CCTV cameras hang sideways, people lie down, apps strip the orientation tag: a face
turned a quarter or half round is a face the upright networks mostly miss. So:

1. the detector runs on the photo as it is (exactly what `upright_only` gives);
2. a glance (one small CenterFace pass) looks at the photo turned 90, 180 and 270
   degrees; a turn is worth a full pass when the glance sees a face there that the
   upright pass did not find as clearly (a face seen much better turned, or a little
   better in a tighter box);
3. the full detector runs on those turns only, every box and landmark is mapped back
   to the photo, and all faces merge by NMS, as the scales do; between an upright and
   a turned find of one face, near ties go to the upright one unless the turned one is
   the tighter box (`merge_faces`).

Upright photos rarely earn a full turned pass, so the feature costs them little more
than the glances. A face found turned carries its turn (`Face.turn`): its padding for
hair then goes on the side its head points to. Faces tilted between the right angles
are found as far as the networks tolerate tilt (bench/angles.py measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from faceblur.detection.base import Detector, Face, turn_image
from faceblur.geometry import iou_matrix, nms_order

TURNS = (90, 180, 270)
"""Clockwise degrees a face may be turned by in the photo, besides upright."""


class GlancingDetector(Detector, Protocol):
    def glance(self, image: np.ndarray, turn: int, max_side: int, threshold: float) -> list[Face]:
        """A cheap, rough look at `turn_image(image, turn)`: faces of one small network pass."""
        ...

    def detect_glancing(
        self, image: np.ndarray, turns: Sequence[int], max_side: int, threshold: float
    ) -> tuple[list[Face], list[list[Face]]]:
        """`detect(image)` and a `glance` at `turn_image(image, turn)` for each of `turns`,
        side by side where the detector can."""
        ...


@dataclass(frozen=True)
class AngleSettings:
    """How the glance picks turns and how turned faces merge; chosen by bench/angles.py."""

    glance_side: int = 640  # the glance sees the photo shrunk to this longest side
    glance_threshold: float = 0.5  # a glanced face below this score is no evidence
    # A turn is worth a pass when it sees a face this much better, and a turned find of a
    # face replaces the upright find only when scored this much higher (merge_faces).
    clearer: float = 1.3
    # A turned find in a tighter box than the upright one's needs less: a turn is worth a
    # pass when its glance sees a face this much better in a box smaller than the upright
    # finds of it, and such a turned find scored at least tight_sure wins near ties
    # (merge_faces). The upright pass draws a turned head's box loose.
    tight_clearer: float = 1.1
    tight_sure: float = 0.4
    merge_iou: float = 0.4  # faces of different turns overlapping more are one face
    # An upright and a turned box of one head lie at right angles, so their IoU can stay
    # under merge_iou: boxes of different turns are one face when this share of the
    # smaller box lies inside the larger.
    fuse_cover: float = 0.5


def point_back(x: float, y: float, turn: int, width: int, height: int) -> tuple[float, float]:
    """Where a point of `turn_image(image, turn)` lies in `image` (width x height)."""
    if turn == 90:
        return width - y, x
    if turn == 180:
        return width - x, height - y
    if turn == 270:
        return y, height - x
    return x, y


def face_back(face: Face, turn: int, width: int, height: int) -> Face:
    """A face found in `turn_image(image, turn)` as it lies in `image`, turned `turn` degrees.

    Landmarks keep their names: "left_eye" stays the eye that was on the left upright.
    """
    x, y, w, h = face.box
    x1, y1 = point_back(x, y, turn, width, height)
    x2, y2 = point_back(x + w, y + h, turn, width, height)
    left, top = int(round(min(x1, x2))), int(round(min(y1, y2)))
    right, bottom = int(round(max(x1, x2))), int(round(max(y1, y2)))

    def pixel_back(px: int, py: int) -> tuple[int, int]:
        # A landmark is a pixel: turn its centre, not its top-left corner.
        x, y = point_back(px + 0.5, py + 0.5, turn, width, height)
        return min(max(int(round(x - 0.5)), 0), width - 1), min(
            max(int(round(y - 0.5)), 0), height - 1
        )

    landmarks = {name: pixel_back(px, py) for name, (px, py) in face.landmarks.items()}
    return Face((left, top, right - left, bottom - top), face.score, landmarks, turn=turn)


def xyxy(faces: Sequence[Face]) -> np.ndarray:
    boxes = np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    return boxes


def merge_faces(
    faces: Sequence[Face],
    iou_threshold: float,
    clearer: float = 1.0,
    sure: float | None = None,
    cover: float = 1.0,
) -> list[Face]:
    """One face per place: the best-ranked of those overlapping more than `iou_threshold`.

    A turned find outranks an upright one only when scored `clearer` times higher: a turned
    pass also finds the upright faces, a little higher at times, in a box drawn for a
    turned head, wider than the face (one 20-px face of faces-dev lost its match so).

    Near ties go the other way when the turned find is the tighter one: scored `sure` or
    more (None: never) and smaller than the best-scored upright find of the same face
    (overlapping more than `iou_threshold`, or by more than `cover` of the smaller box, as
    `fuse_turns` joins them), it ranks at its score and that upright find at its own over
    `clearer`. The upright pass draws a turned
    head's box loose, and the padded region of a loose box blots out the neighbourhood
    rather than covering the face (six turned faces of 50 px and up of faces-dev went so
    with the 1.3x rule alone, docs/detection.md).
    """
    ranks = np.array([face.score for face in faces], dtype=np.float64)
    turned = np.array([face.turn != 0 for face in faces], dtype=bool)
    ranks[turned] /= clearer
    if sure is not None and turned.any() and not turned.all():
        # Only turned against upright boxes: a crowd's thousands of upright candidates
        # would make a full overlap matrix huge.
        boxes = xyxy(faces)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        rows, cols = np.flatnonzero(turned), np.flatnonzero(~turned)
        same_face = (iou_matrix(boxes[rows], boxes[cols]) > iou_threshold) | (
            inner_cover(boxes[rows], boxes[cols]) > cover
        )
        scores = np.array([face.score for face in faces], dtype=np.float64)
        for row, index in enumerate(rows):
            held = cols[same_face[row]]
            if not len(held) or scores[index] < sure:
                continue
            rival = held[np.argmax(scores[held])]  # the upright find it competes with
            if areas[index] < areas[rival]:
                ranks[index] = scores[index]
                ranks[rival] = scores[rival] / clearer
    return [faces[index] for index in nms_order(xyxy(faces), ranks, iou_threshold)]


def inner_cover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For boxes `a` (n, x1 y1 x2 y2) and `b` (m): the share of the smaller of each pair
    that lies inside the other, (n, m)."""
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-9)


def fuse_turns(faces: Sequence[Face], cover: float) -> list[Face]:
    """One face per head: of faces lying at different turns whose boxes overlap by more
    than `cover` of the smaller box, only the first (best-scored) is kept.

    Faces of the same turn are left alone: two people side by side stay two faces.
    """
    boxes = xyxy(faces)
    kept: list[int] = []
    for index, face in enumerate(faces):
        x1, y1, x2, y2 = boxes[index]
        area = max((x2 - x1) * (y2 - y1), 1e-9)
        for other in kept:
            if faces[other].turn == face.turn:
                continue
            ox1, oy1, ox2, oy2 = boxes[other]
            inter = max(0.0, min(x2, ox2) - max(x1, ox1)) * max(0.0, min(y2, oy2) - max(y1, oy1))
            smaller = min(area, max((ox2 - ox1) * (oy2 - oy1), 1e-9))
            if inter > cover * smaller:
                break
        else:
            kept.append(index)
    return [faces[index] for index in kept]


def seen_better_turned(
    glanced: Sequence[Face], upright: Sequence[Face], settings: AngleSettings
) -> bool:
    """Whether a glance at a turn saw a face that the upright pass found far less clearly.

    A face turned on the photo scores much higher once turned upright; an upright face
    glanced at sideways scores lower than the upright pass found it, or not at all. A
    glanced box smaller than every upright find of its face needs only `tight_clearer`:
    the upright pass drew that turned head loose.
    """
    strong = [f for f in glanced if f.score >= settings.glance_threshold]
    if not strong:
        return False
    if not upright:
        return True
    overlap = iou_matrix(xyxy(strong), xyxy(upright))
    upright_scores = np.array([f.score for f in upright])
    upright_areas = np.array([f.box[2] * f.box[3] for f in upright])
    for index, face in enumerate(strong):
        near = overlap[index] >= 0.3
        best = upright_scores[near].max() if near.any() else 0.0
        if face.score >= settings.clearer * best:
            return True
        tighter = near.any() and bool(np.all(face.box[2] * face.box[3] < upright_areas[near]))
        if tighter and face.score >= settings.tight_clearer * best:
            return True
    return False


class AnyAngleDetector:
    """The upright detector, plus full passes on the turns a glance finds worth it."""

    def __init__(self, upright: GlancingDetector, settings: AngleSettings = AngleSettings()):
        self.upright = upright
        self.settings = settings

    def turns_worth_a_pass(self, image: np.ndarray, upright_faces: Sequence[Face]) -> list[int]:
        """The turns whose glance sees a face the upright pass found far less clearly."""
        s = self.settings
        glances = [
            self.upright.glance(image, turn, s.glance_side, s.glance_threshold) for turn in TURNS
        ]
        return self.worth_a_pass(image, glances, upright_faces)

    def worth_a_pass(
        self, image: np.ndarray, glances: Sequence[Sequence[Face]], upright_faces: Sequence[Face]
    ) -> list[int]:
        """Of TURNS, glanced at in that order, those worth a full pass."""
        height, width = image.shape[:2]
        return [
            turn
            for turn, glanced in zip(TURNS, glances, strict=True)
            if seen_better_turned(
                [face_back(face, turn, width, height) for face in glanced],
                upright_faces,
                self.settings,
            )
        ]

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces at any right angle, best first, each with its turn."""
        s = self.settings
        faces, glances = self.upright.detect_glancing(
            image, TURNS, s.glance_side, s.glance_threshold
        )
        height, width = image.shape[:2]
        for turn in self.worth_a_pass(image, glances, faces):
            turned = self.upright.detect(turn_image(image, turn))
            faces = faces + [face_back(face, turn, width, height) for face in turned]
        merged = merge_faces(faces, s.merge_iou, s.clearer, s.tight_sure, s.fuse_cover)
        fused = fuse_turns(merged, s.fuse_cover)  # in merge_faces' order: upright wins ties
        return sorted(fused, key=lambda face: -face.score)


def upright(detector: Detector) -> Detector:
    """The upright-only detector inside `detector` (itself when it never turns photos)."""
    return detector.upright if isinstance(detector, AnyAngleDetector) else detector
