"""Make faces unrecognisable: regions, masks and the anonymisation methods.

Every method is a small object. Most have `render(patch, strength, rng)`, new pixels for
one region's bounding box, which `anonymise` pastes through the region's mask, so a pixel
outside every mask is never touched. A union method instead has
`render_union(image, regions, shape, strength, rng, grain)` and paints the union of all
masks at once.
Methods scale with the region (a fixed kernel leaks large faces) and never mutate their
input.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from faceblur.errors import BadRequestError, quoted
from faceblur.geometry import Box, padded_region
from faceblur.options import DEFAULT_METHOD, DEFAULT_SHAPE, DEFAULT_STRENGTH, SHAPES, STRENGTHS

# Soft methods fade into the photo across this outer share of the mask's radius. The fade
# lies inside the mask, so the outside stays identical, and at the default padding it ends
# before the detected box: every pixel of the box itself is fully replaced.
FEATHER = 0.07


def _check_choice(kind: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise BadRequestError(f"unknown {kind} {quoted(value)}; choose one of {', '.join(choices)}")


def _region_weights(box: Box, width: int, height: int, shape: str, feather: float) -> np.ndarray:
    """Float weights in [0, 1] over the box's pixels: 0 outside the shape, 1 deep inside.

    Ellipse: the ellipse inscribed in the box. Where the box touches the image border
    (the face was cut by the frame) that side is squared off to the border, so the part
    of a face at the edge of a photo is covered too; a whole-frame region is all of it.
    """
    x, y, w, h = box
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
    dx, dy = np.abs(cols)[None, :], np.abs(rows)[:, None]
    radius = np.hypot(dx, dy) if shape == "ellipse" else np.maximum(dx, dy)
    inside = radius <= 1.0
    if feather <= 0:
        return inside.astype(np.float32)
    return np.where(inside, np.clip((1.0 - radius) / feather, 0.0, 1.0), 0.0).astype(np.float32)


def region_mask(height: int, width: int, regions: Sequence[Box], shape: str) -> np.ndarray:
    """Boolean height x width mask of every pixel that `anonymise` may change."""
    _check_choice("shape", shape, SHAPES)
    mask = np.zeros((height, width), dtype=bool)
    for box in regions:
        x, y, w, h = _clipped(box, width, height)
        if w and h:
            mask[y : y + h, x : x + w] |= _region_weights((x, y, w, h), width, height, shape, 0) > 0
    return mask


def _clipped(box: Box, width: int, height: int) -> Box:
    """A region clipped to the image (callers normally pass padded_region's output)."""
    return padded_region(box, 0.0, width, height)


class Method(Protocol):
    """One anonymisation method: new pixels for a region's bounding box."""

    feather: bool  # fade into the photo at the mask's edge (soft methods) or a hard edge
    randomised: bool  # a fresh secure draw per call: two calls give different pixels

    def render(self, patch: np.ndarray, strength: str, rng: np.random.Generator) -> np.ndarray:
        """A new uint8 array shaped like `patch` (RGB); `patch` is never modified."""
        ...


@runtime_checkable
class UnionMethod(Protocol):
    """A method that paints the union of all regions at once, from the whole image."""

    randomised: bool  # a fresh secure draw per call (with grain): two calls differ

    def render_union(
        self,
        image: np.ndarray,
        regions: Sequence[Box],
        shape: str,
        strength: str,
        rng: np.random.Generator,
        grain: bool = True,
    ) -> np.ndarray:
        """A new image like `image`, changed only inside `region_mask(..., regions, shape)`.

        `grain`: give the fill the photo's own fine grain (see `anonymise`).
        """
        ...


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def gaussian_blur(patch: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of any sigma in bounded time: large sigmas blur a downscaled copy."""
    h, w = patch.shape[:2]
    work_sigma = 6.0
    if sigma <= work_sigma:
        return cv2.GaussianBlur(
            patch, (0, 0), sigmaX=max(sigma, 0.1), borderType=cv2.BORDER_REFLECT
        )
    scale = work_sigma / sigma
    small_size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(patch, small_size, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=work_sigma, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Blur:
    """Gaussian blur whose sigma is a share of the region's larger side."""

    sigma_share: dict[str, float]
    feather: bool = True
    randomised: bool = False

    def render(self, patch: np.ndarray, strength: str, rng: np.random.Generator) -> np.ndarray:
        sigma = self.sigma_share[strength] * max(patch.shape[:2])
        return gaussian_blur(patch, sigma)


@dataclass(frozen=True)
class Pixelate:
    """A fixed number of blocks across the region's larger side, whatever its size."""

    blocks: dict[str, int]
    feather: bool = False
    randomised: bool = False

    def render(self, patch: np.ndarray, strength: str, rng: np.random.Generator) -> np.ndarray:
        h, w = patch.shape[:2]
        across = self.blocks[strength]
        block = max(h, w) / across
        small_size = (max(1, round(w / block)), max(1, round(h / block)))
        small = cv2.resize(patch, small_size, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


# Fixed fills for solid: neither depends on the face.
NEUTRAL_SKIN = (176, 140, 120)
BLACK = (0, 0, 0)


@dataclass(frozen=True)
class Solid:
    """One flat colour: low = the region's own average colour; medium = a fixed neutral
    skin tone; high = black."""

    feather: bool = False
    randomised: bool = False

    def render(self, patch: np.ndarray, strength: str, rng: np.random.Generator) -> np.ndarray:
        if strength == "low":
            colour = patch.reshape(-1, 3).mean(axis=0).round()
        else:
            colour = np.array(NEUTRAL_SKIN if strength == "medium" else BLACK)
        return np.broadcast_to(colour.astype(np.uint8), patch.shape).copy()


# Smudge works on a grid this many cells across each patch of the union (the patch is the
# union's piece plus a margin of photo around it): coarser at higher strength, so less of
# the surroundings' structure runs into the region. Cheap whatever the photo's size.
SMUDGE_CELLS = {"low": 40, "medium": 28, "high": 20}
SMUDGE_MARGIN = 0.3  # photo around each piece of the union, as a share of its larger side
SMUDGE_SMOOTHING = 1.2  # grid cells: a Gaussian over the fill, so no streak or corner shows
# A grid cell counts as visible when at least this share of it lies outside every region
# (its value is then the mean of those pixels alone): a strip of hair or neck thinner than
# a cell still gives the fill its tone.
SMUDGE_VISIBLE_SHARE = 0.2
# A blurred face reads as a soft skin-toned head. Inside each region the fill leans towards
# the tone of the visible skin nearest its piece of the union (neck, ears, hands, arms, a
# neighbour: looked for around the piece, then farther out), from nothing at the region's
# edge up to this weight, reached this share of the way in: a head's shape and tone, from
# pixels left visible.
HEAD_WEIGHT = 0.85
HEAD_DEPTH = 0.4
SKIN_SEARCH = (1.0, 4.0)  # how far around a piece to look for skin, by turns
SKIN_MIN_SHARE = 0.005  # of the visible pixels looked at; and at least SKIN_MIN_PIXELS
SKIN_MIN_PIXELS = 20
SKIN_APART = 40.0  # RGB distance from the colour around a piece for a pixel to count as skin
# The usual skin box in YCrCb (8-bit OpenCV scale), light to deep skin alike.
SKIN_CR = (135, 180)
SKIN_CB = (85, 135)
GRAIN_WIDTH = 1.5  # px: sigma of the smoothing that makes the grain soft, not sandy
SAMPLE_PIXELS = 250_000  # skin tone and grain are estimated on at most this many pixels
GREY = 128.0  # the only colour left when the regions cover the whole photo


def _fill_from_border(values: np.ndarray, known: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """`values` (float32, HxWx3) with every unknown pixel filled smoothly from the known ones.

    Push-pull: a pyramid of known-weighted means, each level filling the holes of the one
    below; then relaxation towards the harmonic fill (every unknown pixel the mean of its
    four neighbours), which is what a soft blur of the surroundings looks like. Only known
    pixels enter: an unknown one's own value never counts.
    """
    weight = known.astype(np.float32)
    levels = [(values * weight[..., None], weight)]
    while min(levels[-1][1].shape) > 1:
        summed, weight = levels[-1]
        size = (max(1, weight.shape[1] // 2), max(1, weight.shape[0] // 2))
        levels.append(
            (
                cv2.resize(summed, size, interpolation=cv2.INTER_AREA).reshape(*size[::-1], 3),
                cv2.resize(weight, size, interpolation=cv2.INTER_AREA),
            )
        )
    summed, weight = levels[-1]
    filled = np.where(
        weight[..., None] > 0, summed / np.maximum(weight, 1e-6)[..., None], fallback
    ).astype(np.float32)
    for summed, weight in reversed(levels[:-1]):
        up = cv2.resize(filled, weight.shape[::-1], interpolation=cv2.INTER_LINEAR)
        up = up.reshape(*weight.shape, 3)
        mean = summed / np.maximum(weight, 1e-6)[..., None]
        trust = np.clip(weight * 2.0, 0.0, 1.0)[..., None]
        filled = (trust * mean + (1.0 - trust) * up).astype(np.float32)
    kernel = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], dtype=np.float32)
    # Relax only the unknown pixels' bounding box and a ring of one: nothing outside it
    # changes or is read by an unknown pixel, and where it meets the grid's edge the border
    # is the grid's own, so this is the whole grid's relaxation in a fraction of the time.
    rows, cols = np.nonzero(~known)
    if not len(rows):
        return filled
    top, left = max(rows.min() - 1, 0), max(cols.min() - 1, 0)
    window = filled[top : rows.max() + 2, left : cols.max() + 2]
    unknown = np.repeat(~known[top : rows.max() + 2, left : cols.max() + 2, None], 3, axis=2)
    for _ in range(2 * max(known.shape)):
        relaxed = cv2.filter2D(window, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        np.copyto(window, relaxed, where=unknown)
    return filled


def _is_skin(image: np.ndarray) -> np.ndarray:
    """Which pixels of this RGB uint8 image fall in the usual skin box of YCrCb."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    return cv2.inRange(ycrcb, (0, SKIN_CR[0], SKIN_CB[0]), (255, SKIN_CR[1], SKIN_CB[1])) > 0


def _visible_skin(
    image: np.ndarray, visible: np.ndarray, skin_box: np.ndarray, piece: Box, around: np.ndarray
) -> np.ndarray | None:
    """The median colour of the visible skin nearest `piece`, or None if there is little.

    Walls, sand and wood share skin's hue, so pixels of the colour `around` the piece
    (where the fill starts anyway) do not count: what is left is the hands, arms and necks
    that stand out from it. Skin of that very colour needs no lean: the fill has its tone.
    `skin_box`: `visible` and in the skin box (`_is_skin`), for the whole image at once.
    """
    x, y, w, h = piece
    height, width = visible.shape
    for reach in SKIN_SEARCH:
        grow = round(reach * max(w, h))
        rows = slice(max(y - grow, 0), min(y + h + grow, height))
        cols = slice(max(x - grow, 0), min(x + w + grow, width))
        step = _sample_step((rows.stop - rows.start) * (cols.stop - cols.start))
        looked_at = np.count_nonzero(visible[rows, cols][::step, ::step])
        skin = image[rows, cols][::step, ::step][skin_box[rows, cols][::step, ::step]]
        skin = skin[np.linalg.norm(skin.astype(np.float32) - around, axis=1) > SKIN_APART]
        if len(skin) >= max(SKIN_MIN_PIXELS, SKIN_MIN_SHARE * looked_at):
            return np.median(skin, axis=0).astype(np.float32)
    return None


def _sample_step(pixels: int) -> int:
    """A stride that leaves at most SAMPLE_PIXELS of `pixels` to estimate a statistic."""
    return max(1, int(np.ceil(np.sqrt(pixels / SAMPLE_PIXELS))))


def _head_weights(height: int, width: int, regions: Sequence[Box], shape: str) -> np.ndarray:
    """A soft head-shaped bump in each region (0 at its edge, 1 from HEAD_DEPTH in), the
    highest where regions overlap: one smooth surface over the union, no seam."""
    head = np.zeros((height, width), dtype=np.float32)
    for box in regions:
        x, y, w, h = _clipped(box, width, height)
        if w and h:
            ramp = _region_weights((x, y, w, h), width, height, shape, HEAD_DEPTH)
            bump = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no crease where it levels
            np.maximum(head[y : y + h, x : x + w], bump, out=head[y : y + h, x : x + w])
    return head


def _grain(grey: np.ndarray, known: np.ndarray) -> float:
    """The photo's own fine noise level, from neighbouring pixels that are both visible."""
    both = known[:, 1:] & known[:, :-1]
    if not both.any():
        return 1.0
    steps = np.abs(np.diff(grey, axis=1))[both]
    # Median absolute step of a Gaussian noise of sigma s is 0.954 s; texture counts too,
    # so take a little less and cap it: the fill should look smooth, not sandy.
    return float(np.clip(0.8 * np.median(steps) / 0.954, 0.5, 3.0))


@dataclass(frozen=True)
class Smudge:
    """The default: the union of regions painted over from the photo around it.

    Every piece of the union (overlapping regions make one piece) is filled once, on a
    coarse grid, smoothly from the visible pixels around it: the tone of the hair, skin,
    neck and background that stay visible, fading into them with no seam (it needs no
    feather), then scaled up and, for a photo, given the photo's own grain from fresh secure
    noise. Nothing inside any region is read, so nothing of a face can survive; a grey
    photo stays grey (the same fill on every channel, the grain added to all three alike).
    """

    randomised: bool = True

    def render_union(
        self,
        image: np.ndarray,
        regions: Sequence[Box],
        shape: str,
        strength: str,
        rng: np.random.Generator,
        grain: bool = True,
    ) -> np.ndarray:
        """A copy of `image` with every region painted over; the rest identical."""
        result = image.copy()
        height, width = image.shape[:2]
        mask = region_mask(height, width, regions, shape)
        head = _head_weights(height, width, regions, shape)
        visible = ~mask
        coloured = (image[..., 0] != image[..., 1]) | (image[..., 1] != image[..., 2])
        grey_photo = not (coloured & visible).any()
        fallback = np.full(3, GREY, dtype=np.float32)
        if visible.any():
            fallback[:] = cv2.mean(image, mask=visible.astype(np.uint8))[:3]
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
        skin_box = None if grey_photo or count < 2 else _is_skin(image) & visible
        for piece in range(1, count):
            x, y, w, h = (int(v) for v in stats[piece, :4])
            margin = round(SMUDGE_MARGIN * max(w, h)) + 2
            left, top = max(x - margin, 0), max(y - margin, 0)
            right, bottom = min(x + w + margin, width), min(y + h + margin, height)
            inside = labels[top:bottom, left:right] == piece
            known = visible[top:bottom, left:right]
            # Zero what the regions hide before anything reads the patch.
            patch = image[top:bottom, left:right].astype(np.float32) * known[..., None]
            side = max(right - left, bottom - top)
            cells = SMUDGE_CELLS[strength] * (1 + 2 * SMUDGE_MARGIN)
            scale = min(1.0, cells / side)
            size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
            share = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
            small = cv2.resize(patch, size, interpolation=cv2.INTER_AREA).reshape(*share.shape, 3)
            small_known = share >= SMUDGE_VISIBLE_SHARE
            small = small / np.maximum(share, 1e-6)[..., None]
            filled = _fill_from_border(small, small_known, fallback)
            hidden = (~small_known).astype(np.uint8)
            ring = small_known & (cv2.dilate(hidden, np.ones((5, 5), np.uint8)) > 0)
            around = np.median(small[ring], axis=0) if ring.any() else fallback
            skin = (
                None
                if skin_box is None
                else _visible_skin(image, visible, skin_box, (x, y, w, h), around)
            )
            filled = cv2.GaussianBlur(
                filled, (0, 0), SMUDGE_SMOOTHING, borderType=cv2.BORDER_REPLICATE
            )
            big = cv2.resize(filled, (right - left, bottom - top), interpolation=cv2.INTER_CUBIC)
            # From here on only the piece's own box: every pixel it paints lies in there.
            rows, cols = slice(y - top, y - top + h), slice(x - left, x - left + w)
            painted = big.reshape(bottom - top, right - left, 3)[rows, cols]
            if skin is not None:
                lean = HEAD_WEIGHT * head[y : y + h, x : x + w]
                painted += lean[..., None] * (skin - painted)
            if grain:
                step = _sample_step(patch.shape[0] * patch.shape[1])
                level = _grain(_luminance(patch[::step]), known[::step])
                # Grain a few pixels wide: white per-pixel noise reads as fine detail (it
                # keeps the Laplacian variance bench/recall.py counts as a face left visible).
                noise = rng.standard_normal((h, w), dtype=np.float32)
                noise = cv2.GaussianBlur(noise, (0, 0), GRAIN_WIDTH)
                noise /= max(float(noise.std()), 1e-6)
                painted += level * noise[..., None]
            if grey_photo:
                painted = np.repeat(painted[..., :1], 3, axis=2)
            np.copyto(
                result[y : y + h, x : x + w],
                np.clip(painted.round(), 0, 255).astype(np.uint8),
                where=inside[rows, cols, None],
            )
        return result


METHODS: dict[str, Method | UnionMethod] = {
    "smudge": Smudge(),
    "blur": Blur(sigma_share={"low": 0.04, "medium": 0.08, "high": 0.15}),
    "pixelate": Pixelate(blocks={"low": 16, "medium": 10, "high": 6}),
    "solid": Solid(),
}


def anonymise(
    image: np.ndarray,
    regions: Sequence[Box],
    method: str = DEFAULT_METHOD,
    shape: str = DEFAULT_SHAPE,
    strength: str = DEFAULT_STRENGTH,
    rng: np.random.Generator | None = None,
    grain: bool = True,
) -> np.ndarray:
    """A new RGB uint8 image with every region anonymised; pixels outside the masks identical.

    Randomised methods draw from a fresh secure seed on every call, never from the image;
    `rng` is for tests that need the same draw twice. `grain=False` leaves smudge's fill
    without grain, for video frames: fresh grain in every frame boils where a video's own
    noise is steady or compressed away, and on soft footage it is all the fine detail a
    hidden face has left (bench/video.py counts it as detail; docs/tried.md).
    """
    _check_choice("method", method, tuple(METHODS))
    _check_choice("shape", shape, SHAPES)
    _check_choice("strength", strength, STRENGTHS)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadRequestError("image must be an RGB uint8 array of shape (height, width, 3)")
    chosen = METHODS[method]
    if rng is None:
        rng = np.random.default_rng(secrets.randbits(128))
    height, width = image.shape[:2]
    if isinstance(chosen, UnionMethod):
        # The union is painted once: overlapping regions make one fill, with no seam.
        return chosen.render_union(image, regions, shape, strength, rng, grain)
    result = image.copy()
    for box in regions:
        x, y, w, h = _clipped(box, width, height)
        if not (w and h):
            continue
        weights = _region_weights(
            (x, y, w, h), width, height, shape, FEATHER if chosen.feather else 0.0
        )[..., None]
        current = result[y : y + h, x : x + w]
        rendered = chosen.render(current.copy(), strength, rng).astype(np.float32)
        blended = rendered * weights + current.astype(np.float32) * (1.0 - weights)
        # Where the weight is 0 keep the exact old bytes (no float round trip).
        result[y : y + h, x : x + w] = np.where(
            weights > 0, np.clip(blended.round(), 0, 255).astype(np.uint8), current
        )
    return result
