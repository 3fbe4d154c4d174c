"""Where a method paints: the regions' masks (box or ellipse, with a soft fade inside),
clipped to the photo, and the outline rule the page draws with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceblur.geometry import Box, padded_region
from faceblur.options import SHAPES, check_choice

# Soft methods fade into the photo across this outer share of the mask's radius. The fade
# lies inside the mask, so the outside stays identical, and at the default padding it ends
# before the detected box: every pixel of the box itself is fully replaced.
FEATHER = 0.07


# A region on the image's border is the part of a head the frame shows: its oval is that
# of the box continued past the border by this share of its size (the part the photo
# cut off), clipped to the photo. At the border it still spans 94 % of the box, so a face
# cut by the frame is covered up to the edge, and it is shaped like a head, never a
# straight-sided column; the whole image as one region is all of it. The web page draws
# its outlines with the same rule (frontend/static/app.js, templates/_outline.html).
BORDER_REACH = 0.5


def outline_ellipse(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """Centre and radii (cx, cy, rx, ry) of the ellipse a region's mask is cut from."""
    x, y, w, h = box
    left = x - BORDER_REACH * w if x <= 0 else x
    right = x + w + BORDER_REACH * w if x + w >= width else x + w
    top = y - BORDER_REACH * h if y <= 0 else y
    bottom = y + h + BORDER_REACH * h if y + h >= height else y + h
    return (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2


def _ellipse_coordinates(box: Box, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The box's pixel centres on -1..1 across (columns) and down (rows) of its ellipse."""
    x, y, w, h = box
    cx, cy, rx, ry = outline_ellipse(box, width, height)
    cols = (x + np.arange(w) + 0.5 - cx) / max(rx, 1e-9)
    rows = (y + np.arange(h) + 0.5 - cy) / max(ry, 1e-9)
    return cols, rows


def _region_weights(box: Box, width: int, height: int, shape: str, feather: float) -> np.ndarray:
    """Float weights in [0, 1] over the box's pixels: 0 outside the shape, 1 deep inside.

    Ellipse: the ellipse inscribed in the box, continued past the image's border where
    the box touches it (`outline_ellipse`). Box: the whole box; a side on the image's
    border does not fade (nothing lies beyond it).
    """
    x, y, w, h = box
    if shape == "ellipse":
        cols, rows = _ellipse_coordinates(box, width, height)
        radius = np.hypot(cols[None, :], rows[:, None])
    else:
        cols = (np.arange(w) + 0.5 - w / 2) / (w / 2)
        rows = (np.arange(h) + 0.5 - h / 2) / (h / 2)
        if x <= 0:
            cols = np.where(cols < 0, 0.0, cols)
        if x + w >= width:
            cols = np.where(cols > 0, 0.0, cols)
        if y <= 0:
            rows = np.where(rows < 0, 0.0, rows)
        if y + h >= height:
            rows = np.where(rows > 0, 0.0, rows)
        radius = np.maximum(np.abs(cols)[None, :], np.abs(rows)[:, None])
    inside = radius <= 1.0
    if feather <= 0:
        return inside.astype(np.float32)
    return np.where(inside, np.clip((1.0 - radius) / feather, 0.0, 1.0), 0.0).astype(np.float32)


def region_mask(height: int, width: int, regions: Sequence[Box], shape: str) -> np.ndarray:
    """Boolean height x width mask of every pixel that `anonymise` may change."""
    shape = check_choice("shape", shape, SHAPES)
    mask = np.zeros((height, width), dtype=bool)
    for box in regions:
        x, y, w, h = _clipped(box, width, height)
        if w and h:
            mask[y : y + h, x : x + w] |= _region_weights((x, y, w, h), width, height, shape, 0) > 0
    return mask


def _clipped(box: Box, width: int, height: int) -> Box:
    """A region clipped to the image (callers normally pass padded_region's output)."""
    return padded_region(box, 0.0, width, height)


def _clipped_regions(regions: Sequence[Box], width: int, height: int) -> list[Box]:
    return [_clipped(box, width, height) for box in regions]
