"""What every method shares: the `Method` interface, a render's `Job`, a video's
per-track memory (`SteadyTones`), and pasting a painted patch through its mask.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from faceblur.anonymise.masks import FEATHER, _region_weights
from faceblur.geometry import Box
from faceblur.options import DEFAULT_SHAPE, DEFAULT_STRENGTH

Crown = np.ndarray | None  # a head's crown colour (faceblur.anonymise.head); None: generic


class SteadyTones:
    """A video's memory of each track's look, so a hidden face keeps its colour and shape.

    One secret offset and one head drawing (a seed) per track, drawn when the track first
    shows, and the measured mean colour followed slowly (a share `follow` of the way each
    frame): the fill neither jumps with every new draw nor drifts with the detector's box.
    A track's crown (`faceblur.anonymise.head.crowd_crowns`) is the one it first showed:
    a crowd's neighbours come and go, and a crown that changed with them would flicker.
    Frames must be given in order; one object per video (or per segment of a split one).

    `seed`: the draws come from it and the track's number alone, not from the caller's
    generator, so the same segment of a video hidden by any worker paints the same
    pixels (one secret per job; the number says which detection started the track:
    `faceblur.media.video`, `faceblur.media.segments`).

    A segment of a split video hands a face on to the next segment, which knows it by
    another number, through `handed_on` (`faceblur.media.video`).
    """

    def __init__(self, follow: float = 0.1, seed: Sequence[int] | None = None) -> None:
        self.follow = follow
        self.seed = tuple(seed) if seed is not None else None
        self._tracks: dict[int, tuple[np.ndarray, np.ndarray, int, Crown]] = {}
        self._handed: dict[int, tuple[np.ndarray, int]] = {}  # draws of `handed_on` numbers
        # On a `handed_on` view only: track -> the number the next segment knows it by.
        self._handing: dict[int, int] | None = None

    def tone(
        self,
        track: int,
        measured: np.ndarray,
        draw: Callable[[np.random.Generator | None], tuple[np.ndarray, int]],
        crown: Crown = None,
    ) -> tuple[np.ndarray, int, Crown]:
        """The tone to paint for `track` this frame, its head's seed and its crown; `draw(rng)`
        gives a new (offset, seed) for a track not seen before, from `rng` (None: the
        caller's); `crown` is this frame's, kept for a track not seen before."""
        if self._handing is not None and track in self._tracks:
            return self._looked_again(track, draw, crown)
        if track not in self._tracks:
            offset, seed = draw(self._generator(track))
            self._tracks[track] = (measured.astype(np.float64), offset, seed, crown)
        else:
            mean, offset, seed, crown = self._tracks[track]
            self._tracks[track] = (mean + self.follow * (measured - mean), offset, seed, crown)
        mean, offset, seed, crown = self._tracks[track]
        return mean + offset, seed, crown

    def handed_on(self, numbers: dict[int, int]) -> SteadyTones:
        """This frame's tones looked at again, no mean followed: each track in `numbers`
        with the offset and head the number it maps to draws (the number the next
        segment knows the face by) and this frame's crown (the one that track keeps from
        its first frame, at the border), at the track's own mean; every other track as it is.
        Call after this frame's `tone`s; a frame painted both ways is cross-faded."""
        view = copy.copy(self)  # the very same tables: what the view draws, this one keeps
        view._handing = dict(numbers)
        return view

    def _looked_again(
        self,
        track: int,
        draw: Callable[[np.random.Generator | None], tuple[np.ndarray, int]],
        crown: Crown,
    ) -> tuple[np.ndarray, int, Crown]:
        mean, offset, seed, kept = self._tracks[track]
        other = self._handing.get(track) if self._handing is not None else None
        if other is None:
            return mean + offset, seed, kept
        if other not in self._handed:
            self._handed[other] = draw(self._generator(other))
        offset, seed = self._handed[other]
        # The next segment's track starts here: it keeps the crown this frame shows.
        return mean + offset, seed, crown

    def _generator(self, track: int) -> np.random.Generator | None:
        if self.seed is None:
            return None
        # Hide edits have ids below zero (faceblur.media.video); a seed takes none.
        return np.random.default_rng([*self.seed, 2 * abs(track) + (track < 0)])


@dataclass(frozen=True)
class Job:
    """How to paint: what the caller chose, the random draw, and for video its memory."""

    shape: str = DEFAULT_SHAPE
    strength: str = DEFAULT_STRENGTH
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    # The photo's own fine grain on painted fills; off for video (fresh grain every frame
    # boils; see `anonymise`).
    grain: bool = True
    # Video: the track id of each region, and the tones remembered across frames.
    tracks: Sequence[int] | None = None
    steady: SteadyTones | None = None


class Method(Protocol):
    """One anonymisation method."""

    randomised: bool  # a fresh secure draw per call: two calls give different pixels

    def render(self, image: np.ndarray, regions: Sequence[Box], job: Job) -> np.ndarray:
        """A new image like `image`, changed only inside `region_mask(..., regions, shape)`;
        `regions` are clipped to the image; `image` is never modified."""
        ...


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _paste_each(
    image: np.ndarray,
    regions: Sequence[Box],
    job: Job,
    feather: bool,
    render_patch: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Each region's box rendered from its own pixels and pasted through its mask, one
    region after the other (a later one renders from what the earlier left)."""
    result = image.copy()
    height, width = image.shape[:2]
    for x, y, w, h in regions:
        if not (w and h):
            continue
        weights = _region_weights(
            (x, y, w, h), width, height, job.shape, FEATHER if feather else 0.0
        )[..., None]
        current = result[y : y + h, x : x + w]
        rendered = render_patch(current.copy()).astype(np.float32)
        blended = rendered * weights + current.astype(np.float32) * (1.0 - weights)
        # Where the weight is 0 keep the exact old bytes (no float round trip).
        result[y : y + h, x : x + w] = np.where(
            weights > 0, np.clip(blended.round(), 0, 255).astype(np.uint8), current
        )
    return result
