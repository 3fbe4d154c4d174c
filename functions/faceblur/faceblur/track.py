"""Link face detections across video frames so that no frame lets a face slip through.

Pure: boxes in, boxes out, no pixels but a small scene signature. A detector misses a
face now and then (motion blur, a turned head, a frame skipped on purpose to save time);
a frame in which a face is visible is a leak even if every other frame hides it. So the
tracker covers more, never less:

* a detection above the threshold always starts or continues a track, however short;
* a weaker one (down to the detector's floor) only continues a track that exists;
* a track missed for a few frames is filled: interpolated when it is found again,
  carried on at its last speed while it is not;
* every track is extended `extend` frames before its first detection, and carried
  `max_gap` frames after its last one (at its speed for `extend` frames, then held);
* box centres are averaged and sizes maxed over a few frames, so regions do not jitter
  and never shrink for one frame;
* nothing carries across a scene cut (a cheap histogram difference finds them).

The tracker answers with a delay of `Tracker.lag` frames: what it says about a frame is
final once that many later frames were pushed, which is what filling gaps and extending
tracks backwards need. The caller holds at most that many frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from faceblur.detect import Box, Face


@dataclass(frozen=True)
class TrackSettings:
    """How detections become tracks; defaults chosen by bench/video.py."""

    threshold: float = 0.25  # a detection at least this sure starts a track
    match_iou: float = 0.2  # a detection continues a track when it overlaps it this much ...
    match_distance: float = 0.6  # ... or its centre is within this many box sizes of it
    max_gap: int = 12  # frames a track is carried without a detection before it ends
    extend: int = 4  # frames covered before the first detection
    smooth: int = 2  # centres averaged over +-this many frames, sizes maxed over them
    cut_threshold: float = 0.5  # histogram distance (0..1) above which a scene cut is found


@dataclass(frozen=True)
class TrackedBox:
    """One face in one frame: which track it belongs to and whether it was detected there."""

    track: int
    box: Box
    score: float
    detected: bool


@dataclass(frozen=True)
class TrackedFrame:
    index: int
    faces: list[TrackedBox]


@dataclass
class _Track:
    ident: int
    first: int  # frame index of the first detection
    last: int  # frame index of the last detection
    box: np.ndarray  # x, y, w, h (float) at `last`
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # per frame
    score: float = 0.0

    def predicted(self, index: int) -> np.ndarray:
        return self.box + self.velocity * (index - self.last)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between centres in units of the larger box's size."""
    dx = (a[0] + a[2] / 2) - (b[0] + b[2] / 2)
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    size = max(a[2], a[3], b[2], b[3], 1.0)
    return float(np.hypot(dx, dy) / size)


def scene_signature(frame: np.ndarray) -> np.ndarray:
    """A normalised hue-saturation histogram of a small copy of an RGB frame."""
    small = cv2.resize(frame, (64, 36), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
    return hist / max(float(hist.sum()), 1.0)


def scene_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two signatures: 0 the same, 1 nothing in common."""
    return float(
        cv2.compareHist(a.astype(np.float32), b.astype(np.float32), cv2.HISTCMP_BHATTACHARYYA)
    )


def _smoothed(index: int, nearby: list[tuple[int, Box]]) -> tuple[float, ...]:
    """The box at `index` from its neighbours: centres on a straight line fitted through
    theirs (steady motion is followed exactly, jitter averaged out), size their largest."""
    frames = np.array([i for i, _ in nearby], dtype=np.float64)
    boxes = np.asarray([box for _, box in nearby], dtype=np.float64)
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    if len(nearby) > 1:
        slope, intercept = np.polyfit(frames, centres, 1)
        centre = slope * index + intercept
    else:
        centre = centres[0]
    width, height = boxes[:, 2].max(), boxes[:, 3].max()
    return (centre[0] - width / 2, centre[1] - height / 2, width, height)


class Tracker:
    """Push one frame's detections at a time; take back final tracked frames, `lag` late.

    `push(faces)` with `faces=None` means the frame was not looked at (detection skipped):
    tracks are carried through it without counting it as a miss.
    """

    def __init__(self, settings: TrackSettings = TrackSettings()) -> None:
        self.settings = settings
        self.lag = max(settings.max_gap, settings.extend) + settings.smooth + 1
        self._next_index = 0
        self._next_ident = 0
        self._scene_start = 0
        self._active: list[_Track] = []
        # Unsmoothed boxes of frames not yet final, plus the `smooth` frames before them.
        self._boxes: dict[int, dict[int, TrackedBox]] = {}
        self._pending: deque[int] = deque()

    # -- input ------------------------------------------------------------------------

    def push(self, faces: list[Face] | None, cut: bool = False) -> list[TrackedFrame]:
        """Record frame `n`'s detections (`n` counts pushes); return the frames now final."""
        index = self._next_index
        self._next_index += 1
        self._boxes[index] = {}
        self._pending.append(index)
        if cut:
            self._active = []
            self._scene_start = index
        if faces is not None:
            self._observe(index, faces)
        self._carry(index)
        ready = []
        while self._pending and self._pending[0] <= index - self.lag:
            ready.append(self._finalise(self._pending.popleft()))
        return ready

    def finish(self) -> list[TrackedFrame]:
        """Every frame not yet returned (call once, after the last push)."""
        ready = [self._finalise(i) for i in self._pending]
        self._pending.clear()
        return ready

    # -- linking ----------------------------------------------------------------------

    def _observe(self, index: int, faces: list[Face]) -> None:
        s = self.settings
        strong = sorted((f for f in faces if f.score >= s.threshold), key=lambda f: -f.score)
        weak = sorted((f for f in faces if f.score < s.threshold), key=lambda f: -f.score)
        unmatched = list(self._active)
        # Strong detections first, so a weak one never takes a track a strong one continues.
        for group, may_start in ((strong, True), (weak, False)):
            for face in group:
                box = np.asarray(face.box, dtype=np.float64)
                track = self._best_match(box, unmatched, index)
                if track is not None:
                    unmatched.remove(track)
                    self._continue(track, index, box, face.score)
                elif may_start:
                    self._start(index, box, face.score)

    def _best_match(self, box: np.ndarray, tracks: list[_Track], index: int) -> _Track | None:
        s = self.settings
        best, best_key = None, None
        for track in tracks:
            guess = track.predicted(index)
            overlap = _iou(box, guess)
            distance = _centre_distance(box, guess)
            if overlap < s.match_iou and distance > s.match_distance:
                continue
            key = (overlap, -distance)
            if best_key is None or key > best_key:
                best, best_key = track, key
        return best

    def _start(self, index: int, box: np.ndarray, score: float) -> None:
        track = _Track(self._next_ident, index, index, box, score=score)
        self._next_ident += 1
        self._active.append(track)
        self._put(index, track, box, score, detected=True)
        # Before its first detection the face was most likely there already, unseen.
        for earlier in range(max(self._scene_start, index - self.settings.extend), index):
            self._put(earlier, track, box, score, detected=False)

    def _continue(self, track: _Track, index: int, box: np.ndarray, score: float) -> None:
        gap = index - track.last
        if gap > 1:  # fill the frames in between by interpolation (overwrites the carried box)
            for step in range(1, gap):
                between = track.box + (box - track.box) * (step / gap)
                self._put(track.last + step, track, between, score, detected=False)
        new_velocity = (box - track.box) / gap
        track.velocity = (
            0.5 * track.velocity + 0.5 * new_velocity if track.last > track.first else new_velocity
        )
        track.box, track.last, track.score = box, index, score
        self._put(index, track, box, score, detected=True)

    def _carry(self, index: int) -> None:
        """Carry every track not seen in this frame, or end it once it was missed too long."""
        s = self.settings
        alive = []
        for track in self._active:
            missed = index - track.last
            if missed == 0:
                alive.append(track)
                continue
            if missed > s.max_gap:
                continue
            # A missed face keeps moving: carried at its speed, held once beyond `extend`.
            steps = min(missed, s.extend)
            guess = track.box + track.velocity * steps
            self._put(index, track, guess, track.score, detected=False)
            alive.append(track)
        self._active = alive

    def _put(
        self, index: int, track: _Track, box: np.ndarray, score: float, detected: bool
    ) -> None:
        frame = self._boxes.get(index)
        if frame is None or (index not in self._pending):
            return  # already final: it kept what it had
        previous = frame.get(track.ident)
        if previous is not None and previous.detected and not detected:
            return
        frame[track.ident] = TrackedBox(track.ident, tuple(float(v) for v in box), score, detected)

    # -- output -----------------------------------------------------------------------

    def _finalise(self, index: int) -> TrackedFrame:
        radius = self.settings.smooth
        faces = []
        for ident, own in sorted(self._boxes[index].items()):
            nearby = [
                (i, self._boxes[i][ident].box)
                for i in range(index - radius, index + radius + 1)
                if i in self._boxes and ident in self._boxes[i]
            ]
            smoothed = _smoothed(index, nearby)
            # The region covers the frame's own box as well: smoothing may steady a region,
            # never pull it off the face (a shaking camera moves faces for real).
            x1 = min(smoothed[0], own.box[0])
            y1 = min(smoothed[1], own.box[1])
            x2 = max(smoothed[0] + smoothed[2], own.box[0] + own.box[2])
            y2 = max(smoothed[1] + smoothed[3], own.box[1] + own.box[3])
            x1, y1, x2, y2 = (
                int(np.floor(x1)),
                int(np.floor(y1)),
                int(np.ceil(x2)),
                int(np.ceil(y2)),
            )
            faces.append(TrackedBox(ident, (x1, y1, x2 - x1, y2 - y1), own.score, own.detected))
        for old in [i for i in self._boxes if i < index - radius]:
            del self._boxes[old]
        return TrackedFrame(index, faces)
