"""The generic head `haze` paints over each face, and the one colour it reads of the face:
where the head sits in a region, which pixels it averages (`kept_pixels`, `kept_tones`),
and how a head is drawn and laid on a fill (docs/reidentification.md says what is kept
and why).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from faceblur.anonymise.masks import (
    Samples,
    _clipped_regions,
    _region_weights,
    outline_oval,
    pixel_centres,
    region_inside,
)
from faceblur.geometry import Box


def _smoothstep(ramp: np.ndarray) -> np.ndarray:
    """0 to 1 with no crease at either end."""
    ramp = np.clip(ramp, 0.0, 1.0)
    return ramp * ramp * (3.0 - 2.0 * ramp)


# The generic head the default paints, in a region's own coordinates (-1..1 across and
# down). With the default padding (0.4 a side, 0.8 on top) the detected face is the box
# 0.56 either side of the middle, from 0.27 above it to 0.64 below: the head's oval is
# the one inscribed there. The same head for everyone, never fitted to the person.
HEAD_CENTRE = (0.0, 0.18)
# A region's height over its width at the default padding for a face 1.3 times as tall as
# wide (about the detectors' usual box): 2.2 x 1.3 / 1.8. The head of a region the frame
# cut at the top and the bottom is drawn at most this tall (`_head_frame`).
FRAME_ASPECT = 1.6
HEAD_RADII = (0.6, 0.55)
# The head's tone covers the fill fully out to this share of the oval's radius and fades
# out by HEAD_FADE: about the spread of a Gaussian blur of a quarter of the face.
HEAD_FULL = 0.8
HEAD_FADE = 1.8
# A head is smooth (its cover fades over much of its radius, its light is a slope), so it
# is drawn on a grid at least this many cells across its region's shorter side, on the
# fill's own grid where that is finer, and scaled up with the fill: the picture drawn at
# every pixel within a few grey levels, in a fraction of the time (docs/detection.md,
# "Where a video frame's time goes").
HEAD_CELLS = 48
# Light from the upper left: the head is this share lighter at its upper-left rim and as
# much darker at the lower right (a blurred head is a shaded ball, not a flat disc).
HEAD_SHADING = 0.07
# Hair: a head seen through a blur has a darker crown. The upper half of the head's rim
# (from HAIR_FROM of the oval's radius outwards, above HAIR_LOW, each over a soft ramp of
# HAIR_RAMP) is painted this share darker than the face's tone, the same for everyone.
# Most people's hair is darker than their face, so the dev set's colour shift fell (6.05
# to 5.56 median, 9.70 to 8.97 p90, one fixed draw, with the fallback fix in
# `_paint_union`); a white cap turns darker instead (docs/tried.md). Lower on the sides
# (HAIR_LOW 0.6) or nearer the middle (HAIR_FROM 0.65) scored worse; running it out to
# the region's edge overlaid a crowd's faces with their neighbours' hair.
HAIR_DARK = 0.45
HAIR_FROM = 0.85
HAIR_RAMP = 0.5
HAIR_LOW = 0.2
# In a crowd, a head's crown takes the colour its neighbours' crowns share (a row of white
# caps or helmets, a team's blond or black hair), never its own: the hidden band above
# each face's oval (`crown_pixels`: from the oval out to CROWN_OUT of its radius, above
# CROWN_ABOVE) is averaged (`crowd_crowns_of`), and a face with at least CROWD_NEIGHBOURS
# others of about its size (within CROWD_SIZES either way) gets the per-channel median of
# its CROWD_NEIGHBOURS nearest ones' (`crowd_crowns`): its crown is painted CROWD_CROWN of
# the way from its tone to that colour instead of HAIR_DARK darker, and reaches above the
# head's fade with a cover of CROWD_CAP (a cap or a head of hair stands above a face).
# Fewer such neighbours: the generic dark crown. On every 5th dev photo (ground-truth
# regions, two draws) the colour shift went from 5.91 / 8.85 to 5.63 / 8.66, the helmeted
# crowd `0_Parade_Parade_0_43` from 6.28 to 5.39 median (docs/tried.md).
CROWN_OUT = 1.7
CROWN_ABOVE = -0.5
CROWD_NEIGHBOURS = 5
CROWD_SIZES = 1.5
CROWD_CROWN = 0.7
CROWD_CAP = 0.3

# Each face's head is drawn a little differently, at random: its centre moved by up to
# this share of the region's half-size, its radii scaled by up to this share, the light
# turned by up to this many degrees. Still generic (nothing is fitted to the person), but
# an attacker comparing pixels no longer finds the same oval at the same place.
HEAD_JITTER = 0.08
HEAD_SCALE_JITTER = 0.15
LIGHT_JITTER = 60.0


def _head_frame(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """Centre and half-sizes (cx, cy, rx, ry) of the frame the head is drawn in: the
    region's outline (`outline_oval`) from its leftmost to its rightmost point and from
    its top to its bottom, continued past the photo's border where the frame cut it.

    A region the frame cut at both the top and the bottom but at neither side is no
    taller than its width says (FRAME_ASPECT), around its middle: a close-up running off
    the frame gets a head of its face's size, whose oval (what `kept_pixels` averages)
    holds the face, not the shirt, wall and window around it."""
    cx, cy, left, right, top, bottom = outline_oval(box, width, height)
    x, y, w, h = box
    rx, ry = (left + right) / 2, (top + bottom) / 2
    if y <= 0 and y + h >= height and x > 0 and x + w < width:
        ry = min(ry, FRAME_ASPECT * rx)
    return cx + (right - left) / 2, cy + (bottom - top) / 2, rx, ry


def _head_coordinates(
    box: Box,
    width: int,
    height: int,
    centre: tuple[float, float] = HEAD_CENTRE,
    radii: tuple[float, float] = HEAD_RADII,
    at: Samples | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Across and down in units of the head's radii, 0 at its centre, over `box`'s pixels
    or the points `at` (placed in the region's uncut frame: a head cut by the photo's edge
    sits where it was cut)."""
    cx, cy, rx, ry = _head_frame(box, width, height)
    xs, ys = pixel_centres(box) if at is None else at
    cols = (xs - cx) / max(rx, 1e-9)
    rows = (ys - cy) / max(ry, 1e-9)
    across = (cols - centre[0]) / radii[0]
    down = (rows - centre[1]) / radii[1]
    return across[None, :], down[:, None]


def _head_places(box: Box, width: int, height: int, shape: str) -> tuple[np.ndarray, ...]:
    """Over region `box`'s pixels: each one's distance from the generic head's centre in
    units of its radii, how far down it lies in those units, and whether it is inside the
    mask (what `kept_pixels` and `crown_pixels` are cut from)."""
    across, down = _head_coordinates(box, width, height)
    inside = region_inside(tuple(int(v) for v in box), width, height, shape)
    return np.hypot(across, down), down, inside


def kept_pixels(box: Box, width: int, height: int, shape: str) -> np.ndarray:
    """Which pixels of region `box` the haze averages (bool over the box): the generic
    head's oval, the one inscribed in the detected face at the default padding, placed
    where the face is when the frame cut the region (`_head_frame`), inside the mask.
    Nothing else inside a region is read for its own head."""
    distance, _, inside = _head_places(box, width, height, shape)
    core = (distance <= 1.0) & inside
    if not core.any() and inside.any():  # a face of a few pixels: its middle one
        core.flat[np.argmin(np.where(inside, distance, np.inf))] = True
    return core


def crown_pixels(box: Box, width: int, height: int, shape: str) -> np.ndarray:
    """Which pixels of region `box` make its hidden crown (bool over the box): the band
    above the generic head's oval (`kept_pixels`) where hair, a cap or a helmet is, inside
    the mask. Read only to tell its neighbours' heads (`crowd_crowns`)."""
    distance, down, inside = _head_places(box, width, height, shape)
    return (distance > 1.0) & (distance <= CROWN_OUT) & (down < CROWN_ABOVE) & inside


def _mean_of(image: np.ndarray, box: Box, pixels: np.ndarray) -> np.ndarray | None:
    """The mean colour of `pixels` (bool over `box`) from whole-number sums, so the same
    sums give the very same mean; None when there is none."""
    x, y, w, h = box
    count = int(pixels.sum())
    if not count:
        return None
    # OpenCV sums whole numbers exactly (far below 2**53 in a double).
    patch = image[y : y + h, x : x + w]
    kept = cv2.bitwise_and(patch, patch, mask=pixels.astype(np.uint8))
    return np.array(cv2.sumElems(kept)[:3]).astype(np.int64) / count


def _means(
    image: np.ndarray, regions: Sequence[Box], shape: str, pixels: Callable[..., np.ndarray]
) -> list[np.ndarray | None]:
    """For each region, the mean colour of its `pixels(box, width, height, shape)`; None
    when the region or those pixels are empty."""
    height, width = image.shape[:2]
    return [
        _mean_of(image, box, pixels(box, width, height, shape)) if box[2] and box[3] else None
        for box in _clipped_regions(regions, width, height)
    ]


def kept_tones(image: np.ndarray, regions: Sequence[Box], shape: str) -> list[np.ndarray | None]:
    """The haze's main reading inside each region: the mean colour of its core
    (`kept_pixels`), from whole-number sums; None when empty."""
    return _means(image, regions, shape, kept_pixels)


def crowd_crowns_of(
    image: np.ndarray, regions: Sequence[Box], shape: str
) -> list[np.ndarray | None]:
    """`crowd_crowns` of the regions of `image`, from each one's crown colour (the mean of
    its `crown_pixels`). With no region that has CROWD_NEIGHBOURS others, no crown is read."""
    if len(regions) <= CROWD_NEIGHBOURS:
        return [None] * len(regions)
    return crowd_crowns(regions, _means(image, regions, shape, crown_pixels))


def crowd_crowns(
    regions: Sequence[Box], crowns: Sequence[np.ndarray | None]
) -> list[np.ndarray | None]:
    """The crown colour each face's head is drawn with, from its neighbours' alone: the
    per-channel median of the `crowns` (`crowd_crowns_of`) of its CROWD_NEIGHBOURS nearest
    other regions of about its size (within CROWD_SIZES either way), or None (the generic
    dark crown) when it has fewer such neighbours. A region's own crown never counts for
    its own head."""
    boxes = np.array(regions, dtype=float).reshape(-1, 4)
    sizes = np.sqrt(np.maximum(boxes[:, 2] * boxes[:, 3], 1.0))
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    read = np.array([crown is not None for crown in crowns], dtype=bool)
    drawn: list[np.ndarray | None] = []
    for index in range(len(boxes)):
        ratio = sizes / sizes[index]
        others = read & (ratio <= CROWD_SIZES) & (ratio >= 1 / CROWD_SIZES)
        others[index] = False
        near = np.flatnonzero(others)
        if len(near) < CROWD_NEIGHBOURS:
            drawn.append(None)
            continue
        distance = np.hypot(*(centres[near] - centres[index]).T)
        nearest = near[np.argsort(distance, kind="stable")[:CROWD_NEIGHBOURS]]
        drawn.append(np.median([crowns[i] for i in nearest], axis=0))
    return drawn


@dataclass(frozen=True)
class _Head:
    """One region's head: where it sits and the colour it is painted in."""

    box: Box
    tone: np.ndarray  # RGB, float, offset already applied
    centre: tuple[float, float] = HEAD_CENTRE
    radii: tuple[float, float] = HEAD_RADII
    light: float = 45.0  # degrees: where the light comes from, up-left at 45
    crown: np.ndarray | None = None  # its neighbours' crown colour (`crowd_crowns`); None: dark

    @classmethod
    def drawn(
        cls, box: Box, tone: np.ndarray, rng: np.random.Generator, crown: np.ndarray | None = None
    ) -> _Head:
        """A head for `box` with its random differences from the generic one."""
        shift = rng.uniform(-HEAD_JITTER, HEAD_JITTER, 2)
        scale = 1.0 + rng.uniform(-HEAD_SCALE_JITTER, HEAD_SCALE_JITTER, 2)
        return cls(
            box,
            tone,
            (HEAD_CENTRE[0] + shift[0], HEAD_CENTRE[1] + shift[1]),
            (HEAD_RADII[0] * scale[0], HEAD_RADII[1] * scale[1]),
            45.0 + rng.uniform(-LIGHT_JITTER, LIGHT_JITTER),
            crown,
        )

    def layer(
        self, width: int, height: int, shape: str, at: Samples
    ) -> tuple[np.ndarray, np.ndarray]:
        """How much of the fill the head covers (0..1) and its shaded colour, at the
        points `at` (inside its box)."""
        across, down = _head_coordinates(self.box, width, height, self.centre, self.radii, at)
        distance = np.hypot(across, down)
        cover = _smoothstep((HEAD_FADE - distance) / (HEAD_FADE - HEAD_FULL))
        hair = _smoothstep((distance - HAIR_FROM) / HAIR_RAMP) * _smoothstep(
            (HAIR_LOW - down) / HAIR_RAMP
        )
        if self.crown is not None:
            # A cap or a head of hair stands above the head's fade: it covers the fill too.
            cap = hair * _smoothstep((CROWN_ABOVE - down) / HAIR_RAMP)
            cover = np.maximum(cover, CROWD_CAP * cap)
        # Never up to the mask's edge: there the fill is the photo's surroundings.
        edge = _region_weights(self.box, width, height, shape, 0.25, at)
        cover = (cover * _smoothstep(edge)).astype(np.float32)
        # Lighter towards the light (up-left at 45 degrees), darker away from it.
        angle = np.radians(self.light)
        towards = np.cos(angle) * across + np.sin(angle) * down
        light = 1.0 - HEAD_SHADING * np.clip(towards, -1.0, 1.0)
        if self.crown is None:
            light = light * (1.0 - HAIR_DARK * hair)
        colour = light[..., None].astype(np.float32) * self.tone.astype(np.float32)
        if self.crown is not None:
            towards_crown = self.crown.astype(np.float32) - colour
            colour += (CROWD_CROWN * hair)[..., None].astype(np.float32) * towards_crown
        return cover, colour


def _with_heads(
    filled: np.ndarray,
    patch: Box,
    fill_scale: float,
    heads: Sequence[_Head],
    photo_size: tuple[int, int],
    shape: str,
) -> np.ndarray:
    """A patch's fill (on its coarse grid, `fill_scale` of the patch) with the heads over
    the patch laid on it, on a grid at least HEAD_CELLS across the smallest of them."""
    px, py, pw, ph = patch
    over = [
        head
        for head in heads
        if head.box[0] < px + pw
        and head.box[0] + head.box[2] > px
        and head.box[1] < py + ph
        and head.box[1] + head.box[3] > py
    ]
    if not over:
        return filled
    smallest = min(min(head.box[2], head.box[3]) for head in over)
    scale = min(1.0, max(fill_scale, HEAD_CELLS / max(smallest, 1)))
    size = (max(1, round(pw * scale)), max(1, round(ph * scale)))
    canvas = filled
    if size != (filled.shape[1], filled.shape[0]):
        canvas = cv2.resize(filled, size, interpolation=cv2.INTER_LINEAR)
        canvas = canvas.reshape(size[1], size[0], 3)
    # Each cell's centre in photo pixels, as cv2.resize places it when scaling up.
    xs = px + (np.arange(size[0]) + 0.5) * (pw / size[0])
    ys = py + (np.arange(size[1]) + 0.5) * (ph / size[1])
    _lay_heads(canvas, (xs, ys), over, photo_size, shape)
    return canvas


def _lay_heads(
    canvas: np.ndarray,
    at: Samples,
    heads: Sequence[_Head],
    photo_size: tuple[int, int],
    shape: str,
) -> None:
    """Blend the heads over `canvas` (sampled at the points `at`), in place: each point
    takes the strongest head's cover, in the cover-weighted colour of the heads there."""
    xs, ys = at
    strongest = np.zeros(canvas.shape[:2], dtype=np.float32)
    weight = np.zeros(canvas.shape[:2], dtype=np.float32)
    colour = np.zeros(canvas.shape, dtype=np.float32)
    for head in heads:
        hx, hy, hw, hh = head.box
        # The points inside the head's box: its pixels, when `at` are the photo's own.
        left, right = np.searchsorted(xs, (hx, hx + hw))
        top, bottom = np.searchsorted(ys, (hy, hy + hh))
        if left >= right or top >= bottom:
            continue
        cover, shaded = head.layer(*photo_size, shape, (xs[left:right], ys[top:bottom]))
        ours = (slice(top, bottom), slice(left, right))
        np.maximum(strongest[ours], cover, out=strongest[ours])
        weight[ours] += cover
        colour[ours] += cover[..., None] * shaded
    tone = colour / np.maximum(weight, 1e-6)[..., None]
    canvas += strongest[..., None] * (tone - canvas)
