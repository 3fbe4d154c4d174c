"""Reviewing a video: its tracks as data, and the reviewer's edits applied to the render.

Pure, frame by frame, like `faceblur.media.track`: nothing here opens a file.

* `TrackLog` gathers what `faceblur tracks` prints: each track's first and last frame and
  the region hidden for it in every frame, in pixels of the video as stored (the same
  numbers `--edits` takes), with the largest one's pixels as a thumbnail for a reviewer.
* `HideFollower` places each hide edit in every frame of its range: given where it is in
  its first frame, it is moved with the content under it (feature points followed by
  optical flow, as the tracker carries a face between detections: its own points when it
  has some, else the picture's motion, which is none for a still camera: held in place),
  and held in place across a scene cut.

Boxes move between the frame as displayed (where faces are found and hidden) and as
stored (what a person's tools and the JSON show) by `faceblur.orientation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from faceblur.geometry import Box, padded_region
from faceblur.media.container import Orientation
from faceblur.media.track import (
    MIN_POINTS,
    Motion,
    TrackedFrame,
    motion_between,
    motion_grey,
    scene_distance,
    scene_signature,
)
from faceblur.options import HideEdit, VideoEdits
from faceblur.orientation import box_as_shown, box_as_stored, size_as_stored, whole_pixels

# -------------------------------------------------------------------------- tracks


@dataclass
class TrackRecord:
    """One track over a clip; `boxes`: [frame, x, y, w, h] in stored pixels, every frame
    in which it is hidden."""

    track: int
    boxes: list[list[int]] = field(default_factory=list)
    thumbnail: np.ndarray | None = None  # RGB pixels of its largest region, as displayed
    largest: int = -1  # that region's area

    def to_json(self) -> dict:
        return {
            "track": self.track,
            "first": self.boxes[0][0],
            "last": self.boxes[-1][0],
            "frames": len(self.boxes),
            "boxes": self.boxes,
        }


class TrackLog:
    """Every track of a clip, gathered one tracked frame at a time.

    Memory grows with the number of faces times frames (the boxes themselves, what is
    asked for), never with pixels: one thumbnail per track is kept, when asked.
    """

    def __init__(self, orientation: Orientation, thumbnails: bool = False) -> None:
        self.orientation = orientation
        self.thumbnails = thumbnails
        self.tracks: dict[int, TrackRecord] = {}

    def add(self, shown: np.ndarray, tracked: TrackedFrame, regions: list[Box]) -> None:
        """One frame (as displayed) with its tracked faces and the region hidden for each."""
        height, width = shown.shape[:2]
        for face, region in zip(tracked.faces, regions, strict=True):
            if region[2] <= 0 or region[3] <= 0:
                continue  # wholly outside the frame: nothing hidden there
            record = self.tracks.setdefault(face.track, TrackRecord(face.track))
            stored = box_as_stored(region, width, height, self.orientation.number)
            record.boxes.append([tracked.index, *(int(v) for v in stored)])
            x, y, w, h = (int(v) for v in region)
            if self.thumbnails and w * h > record.largest:
                record.largest = w * h
                record.thumbnail = shown[y : y + h, x : x + w].copy()

    def records(self) -> list[TrackRecord]:
        return [self.tracks[ident] for ident in sorted(self.tracks)]


def thumbnail_png(pixels: np.ndarray) -> bytes:
    """A thumbnail's RGB pixels as PNG bytes."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("a thumbnail could not be encoded")
    return encoded.tobytes()


# -------------------------------------------------------------------------- hide edits


@dataclass
class _Placed:
    edit: int  # its position among the edits
    box: np.ndarray  # x, y, w, h (float) in the frame as displayed
    template: np.ndarray  # the grey pixels under it in the frame it was placed in


MATCH_SCORE = 0.5  # normalised correlation a template match needs to be believed
MIN_TEMPLATE_SIDE = 8  # px: smaller boxes follow the optical flow alone


def _crop(grey: np.ndarray, box: np.ndarray) -> np.ndarray:
    height, width = grey.shape
    x, y, w, h = padded_region(tuple(box), 0.0, width, height)
    return grey[y : y + h, x : x + w]


def _follow(box: np.ndarray, motion: Motion, template: np.ndarray, grey: np.ndarray):
    """Where `box` went: the optical flow's guess (the points inside it, keeping its size;
    else the picture's motion), refined by matching what was under it (its template)
    around that guess, when the match is clear."""
    x, y, w, h = box
    inside = (
        (motion.before[:, 0] >= x)
        & (motion.before[:, 0] <= x + w)
        & (motion.before[:, 1] >= y)
        & (motion.before[:, 1] <= y + h)
    )
    if inside.sum() >= MIN_POINTS:
        shift = np.median(motion.after[inside] - motion.before[inside], axis=0)
        guess = np.array([x + shift[0], y + shift[1], w, h])
    else:
        guess = motion.move(box)
    th, tw = template.shape
    if min(th, tw) < MIN_TEMPLATE_SIDE or (th, tw) != (int(h), int(w)):
        return guess
    margin = max(tw, th) // 2
    height, width = grey.shape
    left, top = max(int(guess[0]) - margin, 0), max(int(guess[1]) - margin, 0)
    right = min(int(guess[0]) + tw + margin, width)
    bottom = min(int(guess[1]) + th + margin, height)
    window = grey[top:bottom, left:right]
    if window.shape[0] < th or window.shape[1] < tw:
        return guess
    scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    if not best >= MATCH_SCORE:
        return guess
    return np.array([left + bx, top + by, guess[2], guess[3]], dtype=np.float64)


class HideFollower:
    """Where each hide edit is in each frame, found as frames are pushed in order.

    `push(frame)` on the thread that decodes, before the frame is hidden; `regions(index)`
    afterwards (once per frame: it forgets the frame's answer).
    """

    def __init__(
        self, edits: tuple[HideEdit, ...], orientation: Orientation, cut_threshold: float = 0.5
    ) -> None:
        self.edits = edits
        self.orientation = orientation
        self.cut_threshold = cut_threshold
        self._index = -1
        self._grey: np.ndarray | None = None
        self._signature: np.ndarray | None = None
        self._placed: dict[int, _Placed] = {}  # edit number -> where it is now
        self._answers: dict[int, list[tuple[int, Box]]] = {}

    def _active(self, index: int) -> list[int]:
        return [n for n, edit in enumerate(self.edits) if edit.first <= index <= edit.last]

    def push(self, frame: np.ndarray) -> None:
        """The next frame as displayed (RGB)."""
        self._index += 1
        index = self._index
        active = self._active(index)
        if not active:
            self._grey = self._signature = None
            self._placed.clear()
            return
        height, width = frame.shape[:2]
        grey, signature = motion_grey(frame), scene_signature(frame)
        motion = Motion.still()
        same_scene = self._signature is not None and (
            scene_distance(self._signature, signature) <= self.cut_threshold
        )
        if self._grey is not None and same_scene:
            motion = motion_between(self._grey, grey, width)
        self._grey, self._signature = grey, signature
        orientation = self.orientation.number
        stored_w, stored_h = size_as_stored(width, height, orientation)
        full_grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        placed: dict[int, _Placed] = {}
        for number in active:
            edit = self.edits[number]
            before = self._placed.get(number)
            if before is None or edit.first == index:
                start = box_as_shown(whole_pixels(edit.region), stored_w, stored_h, orientation)
                box = np.asarray(start, dtype=np.float64)
            else:
                box = _follow(before.box, motion, before.template, full_grey)
            placed[number] = _Placed(number, box, _crop(full_grey, box).copy())
        self._placed = placed
        self._answers[index] = [
            (number, padded_region(tuple(place.box), 0.0, width, height))
            for number, place in placed.items()
        ]

    def regions(self, index: int) -> list[tuple[int, Box]]:
        """(edit number, region as displayed) of every hide edit in frame `index`."""
        return self._answers.pop(index, [])


def follower_for(edits: VideoEdits | None, orientation: Orientation) -> HideFollower | None:
    """A follower for the edits' hide regions; None when there is none to follow."""
    if edits is None or not edits.hide:
        return None
    return HideFollower(edits.hide, orientation)
