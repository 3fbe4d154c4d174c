"""Where a method paints: the regions' masks (box or ellipse, with a soft fade inside),
clipped to the photo, and the outline rule the page draws with.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from faceblur.geometry import Box, padded_region
from faceblur.options import SHAPES, check_choice

# Soft methods fade into the photo across this outer share of the mask's radius. The fade
# lies inside the mask, so the outside stays identical, and at the default padding it ends
# before the detected box: every pixel of the box itself is fully replaced.
FEATHER = 0.07


# A region on the image's border is the part of a head the frame shows. Its outline is
# the oval inscribed in the box, except that each half of it towards a border the box
# touches reaches this many times farther (the part of the head the photo cut off), cut
# by the photo. The half away from the border is the inscribed oval's own, so a face cut
# by the frame is covered as fully as by the old squared-off shape (bench/recall.py's
# honest covered, measured on the dev set), and at the border the oval still spans 87 %
# of the box. It is shaped like a head, never a straight-sided column: four quarter
# ellipses meeting with one tangent; the whole image as one region is all of it. The
# web page draws the same outline (frontend/static/app.js, templates/_outline.html).
BORDER_STRETCH = 2.0


def outline_oval(box: Box, width: int, height: int) -> tuple[float, ...]:
    """The outline a region's mask is cut from: its centre and its four half-radii,
    (cx, cy, left, right, top, bottom), each quarter an ellipse (e.g. the upper-right one
    has radii right and top), cut by the image."""
    x, y, w, h = box
    left = w / 2 * (BORDER_STRETCH if x <= 0 else 1.0)
    right = w / 2 * (BORDER_STRETCH if x + w >= width else 1.0)
    top = h / 2 * (BORDER_STRETCH if y <= 0 else 1.0)
    bottom = h / 2 * (BORDER_STRETCH if y + h >= height else 1.0)
    return x + w / 2, y + h / 2, left, right, top, bottom


Samples = tuple[np.ndarray, np.ndarray]
"""Where a smooth layer is evaluated: x of each column and y of each row, in image pixels
(a pixel's centre is at +0.5); a coarse grid's cell centres, or a box's own pixels."""


def pixel_centres(box: Box) -> Samples:
    """The centres of a box's own pixels, as `Samples`."""
    x, y, w, h = box
    return x + np.arange(w) + 0.5, y + np.arange(h) + 0.5


def _oval_coordinates(
    box: Box, width: int, height: int, at: Samples | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The box's pixel centres (or the points `at`) across (columns) and down (rows) of
    its outline, each in units of the half-radius on its side: the outline is where their
    hypot is 1."""
    cx, cy, left, right, top, bottom = outline_oval(box, width, height)
    xs, ys = pixel_centres(box) if at is None else at
    cols = xs - cx
    rows = ys - cy
    cols = cols / np.where(cols < 0, max(left, 1e-9), max(right, 1e-9))
    rows = rows / np.where(rows < 0, max(top, 1e-9), max(bottom, 1e-9))
    return cols, rows


def _region_radius(box: Box, width: int, height: int, shape: str, at: Samples | None) -> np.ndarray:
    """Over the box's pixels (or the points `at`): how far out each lies, 1 on the mask's
    edge (the outline for an ellipse, the box's sides for a box)."""
    x, y, w, h = box
    if shape == "ellipse":
        cols, rows = _oval_coordinates(box, width, height, at)
        return np.hypot(cols[None, :], rows[:, None])
    xs, ys = pixel_centres(box) if at is None else at
    cols = (xs - x - w / 2) / (w / 2)
    rows = (ys - y - h / 2) / (h / 2)
    if x <= 0:
        cols = np.where(cols < 0, 0.0, cols)
    if x + w >= width:
        cols = np.where(cols > 0, 0.0, cols)
    if y <= 0:
        rows = np.where(rows < 0, 0.0, rows)
    if y + h >= height:
        rows = np.where(rows > 0, 0.0, rows)
    return np.maximum(np.abs(cols)[None, :], np.abs(rows)[:, None])


def _region_weights(
    box: Box, width: int, height: int, shape: str, feather: float, at: Samples | None = None
) -> np.ndarray:
    """Float weights in [0, 1] over the box's pixels (or the points `at`): 0 outside the
    shape, 1 deep inside.

    Ellipse: the oval inscribed in the box, stretched past the image's border where the
    box touches it (`outline_oval`). Box: the whole box; a side on the image's
    border does not fade (nothing lies beyond it).
    """
    radius = _region_radius(box, width, height, shape, at)
    inside = radius <= 1.0
    if feather <= 0:
        return inside.astype(np.float32)
    return np.where(inside, np.clip((1.0 - radius) / feather, 0.0, 1.0), 0.0).astype(np.float32)


@lru_cache(maxsize=256)
def region_inside(box: Box, width: int, height: int, shape: str) -> np.ndarray:
    """Which of the box's pixels its mask holds (bool, read-only): where `_region_weights`
    is above 0. Remembered: a frame's mask and its tones ask for the same boxes."""
    inside = _region_radius(box, width, height, shape, None) <= 1.0
    inside.flags.writeable = False
    return inside


def region_mask(height: int, width: int, regions: Sequence[Box], shape: str) -> np.ndarray:
    """Boolean height x width mask of every pixel that `anonymise` may change."""
    shape = check_choice("shape", shape, SHAPES)
    mask = np.zeros((height, width), dtype=bool)
    for box in regions:
        x, y, w, h = (int(v) for v in _clipped(box, width, height))
        if w and h:
            mask[y : y + h, x : x + w] |= region_inside((x, y, w, h), width, height, shape)
    return mask


def _clipped(box: Box, width: int, height: int) -> Box:
    """A region clipped to the image (callers normally pass padded_region's output)."""
    return padded_region(box, 0.0, width, height)


def _clipped_regions(regions: Sequence[Box], width: int, height: int) -> list[Box]:
    return [_clipped(box, width, height) for box in regions]
