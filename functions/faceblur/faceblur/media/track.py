"""Link face detections across video frames so that no frame lets a face slip through.

Pure: arrays in, faces out. A video frame is a photo with a track id: the tracker answers
with the detector's own `Face`s, each given its `track` (and keeping its `turn`, so a
turned face is padded as in a photo), plus faces carried through frames where it was
not found (`detected` false). A detector misses a face now and then (motion blur, a
turned head, a frame skipped on purpose to save time); a frame in which a face is
visible is a leak even if every other frame hides it. So the tracker covers more, never
less:

* between detections a face is carried along the picture's motion (feature points
  followed by optical flow: its own points when it has some, else the camera's pan,
  zoom and shake); found again, the drift is spread over the frames in between;
* a detection above the threshold always starts or continues a track, however short;
* a weaker one (down to the detector's floor) only continues a track that exists;
* every track is extended `extend` frames before its first detection (followed back
  through the motion) and carried `max_gap` frames after its last one;
* box centres follow a line fitted over a few frames and sizes their largest, and the
  region always holds the frame's own box, so regions neither jitter nor slip off;
* nothing carries across a scene cut (a cheap histogram difference finds them).

The tracker answers with a delay of `Tracker.lag` frames: what it says about a frame is
final once that many later frames were pushed, which is what filling gaps and extending
tracks backwards need. The caller holds at most that many frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import cv2
import numpy as np

from faceblur.detection.base import Face
from faceblur.geometry import iou_matrix


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
class TrackedFrame:
    """One frame's faces, final: each with its `track`, in track order."""

    index: int
    faces: list[Face]


@dataclass
class _Track:
    ident: int
    last: int  # frame index of the last detection
    current: np.ndarray  # x, y, w, h (float) in the latest frame pushed: detected or carried
    face: Face  # the last detection: its score and turn go with the frames it is carried to


@dataclass(frozen=True)
class _Placed:
    """A track's unsmoothed box in one frame (float: carrying moves it by fractions), with
    the detection it comes from; `detected`: found in this very frame."""

    box: tuple[float, ...]
    face: Face
    detected: bool


# --------------------------------------------------------------------------- motion

MOTION_SIDE = 480  # px: motion is measured on a copy at most this wide
MIN_POINTS = 4  # feature points inside a box needed to follow it on its own


@dataclass(frozen=True)
class Motion:
    """How the picture moved from one frame to the next: tracked feature points and the
    similarity transform (shift, zoom, turn) that fits most of them."""

    before: np.ndarray  # (n, 2) points in the earlier frame
    after: np.ndarray  # (n, 2) where they are in the later one
    matrix: np.ndarray  # 2x3, earlier -> later

    @staticmethod
    def still() -> Motion:
        return Motion(np.zeros((0, 2)), np.zeros((0, 2)), np.eye(2, 3))

    def move(self, box: np.ndarray) -> np.ndarray:
        """Where `box` went: with the points inside it (a face moving on its own), or with
        the whole picture where too few points lie inside it."""
        return _moved(box, self.before, self.after, self.matrix)

    def move_back(self, box: np.ndarray) -> np.ndarray:
        """Where `box` came from (the inverse of `move`)."""
        return _moved(box, self.after, self.before, cv2.invertAffineTransform(self.matrix))


def _moved(box: np.ndarray, src: np.ndarray, dst: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    x, y, w, h = box
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    inside = (src[:, 0] >= x) & (src[:, 0] <= x + w) & (src[:, 1] >= y) & (src[:, 1] <= y + h)
    if inside.sum() >= MIN_POINTS:
        cx, cy = np.array([x + w / 2, y + h / 2]) + np.median(dst[inside] - src[inside], axis=0)
    else:
        cx, cy = matrix @ np.array([x + w / 2, y + h / 2, 1.0])
    w, h = w * scale, h * scale
    return np.array([cx - w / 2, cy - h / 2, w, h])


def motion_grey(frame: np.ndarray) -> np.ndarray:
    """The small grey copy of an RGB frame that `motion_between` compares."""
    scale = min(1.0, MOTION_SIDE / frame.shape[1])
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


def motion_between(earlier: np.ndarray, later: np.ndarray, frame_width: int) -> Motion:
    """The motion between two `motion_grey` copies, in pixels of frames `frame_width` wide.

    Corners followed by pyramidal Lucas-Kanade optical flow, a few milliseconds a frame.
    """
    scale = frame_width / earlier.shape[1]
    corners = cv2.goodFeaturesToTrack(earlier, maxCorners=500, qualityLevel=0.01, minDistance=5)
    if corners is None or len(corners) < MIN_POINTS:
        return Motion.still()
    found, status, _ = cv2.calcOpticalFlowPyrLK(earlier, later, corners, None)
    ok = status.ravel() == 1
    before, after = corners[ok].reshape(-1, 2), found[ok].reshape(-1, 2)
    if len(before) < MIN_POINTS:
        return Motion.still()
    matrix, _ = cv2.estimateAffinePartial2D(before, after, method=cv2.RANSAC)
    if matrix is None:
        matrix = np.eye(2, 3)
    matrix = matrix.copy()
    matrix[:, 2] *= scale
    return Motion(before * scale, after * scale, matrix)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    corners = np.array([a, b], dtype=np.float64)
    corners[:, 2:] += corners[:, :2]
    return float(iou_matrix(corners[:1], corners[1:])[0, 0])


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


def _smoothed(index: int, nearby: list[tuple[int, tuple[float, ...]]]) -> tuple[float, ...]:
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
        self._boxes: dict[int, dict[int, _Placed]] = {}
        self._pending: deque[int] = deque()
        self._motions: dict[int, Motion] = {}  # frame -> motion since the one before

    # -- input ------------------------------------------------------------------------

    def push(
        self, faces: list[Face] | None, cut: bool = False, motion: Motion | None = None
    ) -> list[TrackedFrame]:
        """Record frame `n`'s detections (`n` counts pushes); return the frames now final.

        `motion` is how the picture moved since the previous frame (None: not at all).
        """
        index = self._next_index
        self._next_index += 1
        self._boxes[index] = {}
        self._pending.append(index)
        motion = motion or Motion.still()
        self._motions[index] = motion
        if cut:
            self._active = []
            self._scene_start = index
        for track in self._active:
            track.current = motion.move(track.current)
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
                track = self._best_match(box, unmatched)
                if track is not None:
                    unmatched.remove(track)
                    self._continue(track, index, box, face)
                elif may_start:
                    self._start(index, box, face)

    def _best_match(self, box: np.ndarray, tracks: list[_Track]) -> _Track | None:
        s = self.settings
        best, best_key = None, None
        for track in tracks:
            overlap = _iou(box, track.current)
            distance = _centre_distance(box, track.current)
            if overlap < s.match_iou and distance > s.match_distance:
                continue
            key = (overlap, -distance)
            if best_key is None or key > best_key:
                best, best_key = track, key
        return best

    def _start(self, index: int, box: np.ndarray, face: Face) -> None:
        track = _Track(self._next_ident, index, box, face)
        self._next_ident += 1
        self._active.append(track)
        self._put(index, track, box, face, detected=True)
        # Before its first detection the face was most likely there already, unseen:
        # followed back through the picture's motion, to the start of the scene at most.
        earlier_box = box
        for earlier in range(
            index - 1, max(self._scene_start, index - self.settings.extend) - 1, -1
        ):
            earlier_box = self._motions.get(earlier + 1, Motion.still()).move_back(earlier_box)
            self._put(earlier, track, earlier_box, face, detected=False)

    def _continue(self, track: _Track, index: int, box: np.ndarray, face: Face) -> None:
        gap = index - track.last
        if gap > 1:
            # The frames in between were carried along the picture's motion; what that
            # drifted from the face, found again, is spread over them.
            drift = box - track.current
            for step in range(1, gap):
                carried = self._boxes.get(track.last + step, {}).get(track.ident)
                if carried is not None and not carried.detected:
                    corrected = np.asarray(carried.box) + drift * (step / gap)
                    self._put(track.last + step, track, corrected, face, detected=False)
        track.current, track.last, track.face = box, index, face
        self._put(index, track, box, face, detected=True)

    def _carry(self, index: int) -> None:
        """Carry every track not seen in this frame, or end it once it was missed too long."""
        alive = []
        for track in self._active:
            missed = index - track.last
            if missed > self.settings.max_gap:
                continue
            if missed:
                self._put(index, track, track.current, track.face, detected=False)
            alive.append(track)
        self._active = alive

    def _put(self, index: int, track: _Track, box: np.ndarray, face: Face, detected: bool) -> None:
        frame = self._boxes.get(index)
        if frame is None or (index not in self._pending):
            return  # already final: it kept what it had
        previous = frame.get(track.ident)
        if previous is not None and previous.detected and not detected:
            return
        frame[track.ident] = _Placed(tuple(float(v) for v in box), face, detected)

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
            # Landmarks belong to the frame they were found in; a carried face has none.
            faces.append(
                replace(
                    own.face,
                    box=(x1, y1, x2 - x1, y2 - y1),
                    landmarks=own.face.landmarks if own.detected else {},
                    track=ident,
                    detected=own.detected,
                )
            )
        for old in [i for i in self._boxes if i < index - radius]:
            del self._boxes[old]
            self._motions.pop(old, None)
        return TrackedFrame(index, faces)
