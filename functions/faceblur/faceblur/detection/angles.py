"""Faces at any in-plane angle: the upright detector run on the photo turned as well.

CCTV cameras hang sideways, people lie down, apps strip the orientation tag: a face
turned a quarter or half round is a face the upright networks mostly miss. So:

1. the detector runs on the photo as it is (exactly what `upright_only` gives);
2. a glance (one small CenterFace pass) looks at the photo turned 90, 180 and 270
   degrees; a turn is worth a full pass when the glance sees a face there that the
   upright pass did not find as clearly (a face seen much better turned);
3. the full detector runs on those turns only, every box and landmark is mapped back
   to the photo, and all faces merge by NMS, best score first, as the scales do.

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
    def glance(self, image: np.ndarray, max_side: int, threshold: float) -> list[Face]:
        """A cheap, rough look: faces of one small network pass."""
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


def merge_faces(faces: Sequence[Face], iou_threshold: float, clearer: float = 1.0) -> list[Face]:
    """One face per place: the best-ranked of those overlapping more than `iou_threshold`.

    A turned find outranks an upright one only when scored `clearer` times higher: a turned
    pass also finds the upright faces, a little higher at times, in a box drawn for a
    turned head, wider than the face (one 20-px face of faces-dev lost its match so).
    """
    ranks = np.array([f.score / (clearer if f.turn else 1.0) for f in faces], dtype=np.float64)
    return [faces[index] for index in nms_order(xyxy(faces), ranks, iou_threshold)]


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
    glanced at sideways scores lower than the upright pass found it, or not at all.
    """
    strong = [f for f in glanced if f.score >= settings.glance_threshold]
    if not strong:
        return False
    if not upright:
        return True
    overlap = iou_matrix(xyxy(strong), xyxy(upright))
    upright_scores = np.array([f.score for f in upright])
    for index, face in enumerate(strong):
        near = upright_scores[overlap[index] >= 0.3]
        best = near.max() if len(near) else 0.0
        if face.score >= settings.clearer * best:
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
            self.upright.glance(turn_image(image, turn), s.glance_side, s.glance_threshold)
            for turn in TURNS
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
        merged = merge_faces(faces, s.merge_iou, s.clearer)
        fused = fuse_turns(merged, s.fuse_cover)  # in merge_faces' order: upright wins ties
        return sorted(fused, key=lambda face: -face.score)


def upright(detector: Detector) -> Detector:
    """The upright-only detector inside `detector` (itself when it never turns photos)."""
    return detector.upright if isinstance(detector, AnyAngleDetector) else detector
