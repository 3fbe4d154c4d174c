"""What every detector shares: the one detection type (`Face`), the `Detector` protocol,
the networks' raw candidates (internal to `faceblur.detection`), and the checks and
conversions around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from faceblur.geometry import Box, nms_order

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


CONTRAST_MAX_SIDE = 1024
"""`has_contrast` measures on a copy at most this wide: enough to tell a flat patch."""


@dataclass(frozen=True)
class Face:
    """One face, in a photo or a video frame: box in pixels, fused score in [0, 1],
    landmarks when known, and how far it is turned clockwise (0, 90, 180 or 270 degrees:
    where its head points).

    In a video, `track` links the same face across frames (None in a photo), and
    `detected` is false where the tracker carried the face through a frame the detector
    did not find it in (or did not look at).
    """

    box: Box
    score: float
    landmarks: dict[str, tuple[int, int]] = field(default_factory=dict)
    turn: int = 0
    track: int | None = None
    detected: bool = True


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 HxWx3 image, best first, score >= MIN_THRESHOLD."""
        ...


@dataclass
class RawCandidates:
    """A network's raw output in image coordinates (float arrays, x1 y1 x2 y2), before
    fusion and NMS turn it into `Face`s: internal to `faceblur.detection`, never returned
    by a detector."""

    boxes: np.ndarray  # (n, 4)
    scores: np.ndarray  # (n,)
    landmarks: np.ndarray  # (n, 5, 2), NaN when unknown

    @staticmethod
    def empty() -> RawCandidates:
        return RawCandidates(np.zeros((0, 4)), np.zeros(0), np.full((0, 5, 2), np.nan))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> RawCandidates:
        return RawCandidates(self.boxes[keep], self.scores[keep], self.landmarks[keep])

    def scale_back(self, scale_x: float, scale_y: float | None = None) -> RawCandidates:
        """Boxes and landmarks found on an image resized by (`scale_x`, `scale_y`), mapped
        back to the image before resizing (in place; `scale_y` defaults to `scale_x`)."""
        scale_y = scale_x if scale_y is None else scale_y
        if (scale_x, scale_y) != (1.0, 1.0) and len(self):
            self.boxes /= (scale_x, scale_y, scale_x, scale_y)
            self.landmarks /= (scale_x, scale_y)
        return self

    @staticmethod
    def concat(parts: list[RawCandidates]) -> RawCandidates:
        parts = [p for p in parts if len(p)]
        if not parts:
            return RawCandidates.empty()
        return RawCandidates(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
        )


def nms(cands: RawCandidates, iou_threshold: float) -> RawCandidates:
    """Keep the best of every group of boxes overlapping more than `iou_threshold`."""
    if len(cands) < 2:
        return cands
    return cands.select(nms_order(cands.boxes, cands.scores, iou_threshold))


def resize_to(image: np.ndarray, scale: float) -> np.ndarray:
    """The image scaled by `scale` (area filter when shrinking, bilinear when growing)."""
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def to_faces(
    boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray, width: int, height: int
) -> list[Face]:
    """Faces with integer boxes clipped to the image; empty boxes are dropped."""
    faces = []
    for box, score, marks in zip(boxes, scores, landmarks, strict=True):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        x1, x2 = min(max(x1, 0), width), min(max(x2, 0), width)
        y1, y2 = min(max(y1, 0), height), min(max(y2, 0), height)
        if x2 <= x1 or y2 <= y1:
            continue
        named = {}
        if not np.isnan(marks).any():
            named = {
                name: (
                    int(np.clip(round(float(px)), 0, width - 1)),
                    int(np.clip(round(float(py)), 0, height - 1)),
                )
                for name, (px, py) in zip(LANDMARK_NAMES, marks, strict=True)
            }
        faces.append(Face((x1, y1, x2 - x1, y2 - y1), float(np.clip(score, 0.0, 1.0)), named))
    return faces


def has_contrast(image: np.ndarray, boxes: np.ndarray, min_std: float) -> np.ndarray:
    """Which boxes hold any contrast (grey-level standard deviation >= `min_std`).

    A flat patch holds no face: CenterFace finds weak "faces" in blank frames.
    Integral images make each box O(1), on a copy at most 1024 px wide.
    """
    if not len(boxes):
        return np.zeros(0, dtype=bool)
    height, width = image.shape[:2]
    scale = min(1.0, CONTRAST_MAX_SIDE / max(height, width))
    grey = cv2.cvtColor(resize_to(image, scale), cv2.COLOR_RGB2GRAY)
    sums, squares = cv2.integral2(grey, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    small_h, small_w = grey.shape
    x1 = np.clip(np.floor(boxes[:, 0] * scale), 0, small_w - 1).astype(int)
    y1 = np.clip(np.floor(boxes[:, 1] * scale), 0, small_h - 1).astype(int)
    x2 = np.clip(np.ceil(boxes[:, 2] * scale), x1 + 1, small_w).astype(int)
    y2 = np.clip(np.ceil(boxes[:, 3] * scale), y1 + 1, small_h).astype(int)
    area = (x2 - x1) * (y2 - y1)

    def box_sum(table: np.ndarray) -> np.ndarray:
        return table[y2, x2] - table[y1, x2] - table[y2, x1] + table[y1, x1]

    mean = box_sum(sums) / area
    variance = np.maximum(box_sum(squares) / area - mean**2, 0.0)
    return np.sqrt(variance) >= min_std


def check_image(image: np.ndarray) -> None:
    """The detector's input contract: an RGB uint8 HxWx3 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("detect expects a numpy uint8 array")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"detect expects an RGB HxWx3 image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("detect expects a non-empty image")


def turn_image(image: np.ndarray, turn: int) -> np.ndarray:
    """The image turned counter-clockwise by `turn` degrees: a face turned `turn` degrees
    clockwise in `image` stands upright in the result."""
    return np.ascontiguousarray(np.rot90(image, turn // 90))
