"""Make faces unrecognisable: regions, masks and the anonymisation methods.

Every method is a small object with one method, `render(patch, strength, rng)`, that
returns new pixels for one region's bounding box; `anonymise` pastes them through the
region's mask, so a pixel outside every mask is never touched. Methods scale with the
region (a fixed kernel leaks large faces) and never mutate their input.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from faceblur.errors import BadRequestError, quoted
from faceblur.options import DEFAULT_METHOD, DEFAULT_SHAPE, DEFAULT_STRENGTH, SHAPES, STRENGTHS

Box = tuple[int, int, int, int]  # x, y, w, h in pixels; the same alias as faceblur.detect.Box

# Padding is added on each side as a share of the box's size and this many times that on
# top: hair is what re-identifies a face once its middle is gone (see DEFAULT_PADDING).
TOP_PADDING_FACTOR = 2.0
# Soft methods fade into the photo across this outer share of the mask's radius. The fade
# lies inside the mask, so the outside stays identical, and at the default padding it ends
# before the detected box: every pixel of the box itself is fully replaced.
FEATHER = 0.07


def _check_choice(kind: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise BadRequestError(f"unknown {kind} {quoted(value)}; choose one of {', '.join(choices)}")


def padded_region(box: Box, padding: float, width: int, height: int, turn: int = 0) -> Box:
    """`box` grown by `padding` x its size on each side (2 x on the side the head points
    to: on top, or right, below, left for a face turned 90, 180, 270 degrees clockwise),
    clipped to the image. A box wholly outside the image comes back with zero width or height.
    """
    if not padding >= 0:
        raise BadRequestError(f"padding must be a number >= 0; got {padding!r}")
    x, y, w, h = (float(v) for v in box)
    w, h = max(w, 0.0), max(h, 0.0)
    top_pad, right_pad, bottom_pad, left_pad = np.roll(
        [TOP_PADDING_FACTOR * padding, padding, padding, padding], (turn // 90) % 4
    )
    left = int(np.floor(x - left_pad * w))
    top = int(np.floor(y - top_pad * h))
    right = int(np.ceil(x + w + right_pad * w))
    bottom = int(np.ceil(y + h + bottom_pad * h))
    left, right = min(max(left, 0), width), min(max(right, 0), width)
    top, bottom = min(max(top, 0), height), min(max(bottom, 0), height)
    return left, top, max(right - left, 0), max(bottom - top, 0)


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


# A curve through natural skin tones (sRGB), light to deep; cloak draws its tone on it.
SKIN_TONES = np.array([[236.0, 196.0, 168.0], [196.0, 140.0, 108.0], [100.0, 64.0, 44.0]])
SKIN_LIGHT, SKIN_DEEP = SKIN_TONES[0], SKIN_TONES[-1]
CLOAK_RENDER_SIDE = 128  # px: the cloak is drawn at most this big, then scaled to the region
SKIN_LUMINANCE_BANDS = 3  # "medium" keeps only which third of this curve the face is in


def _skin_tone(position: float, rng: np.random.Generator) -> np.ndarray:
    """A skin colour at `position` in [0, 1] (0 light, 1 deep), slightly varied at random."""
    segment = position * (len(SKIN_TONES) - 1)
    low = min(int(segment), len(SKIN_TONES) - 2)
    tone = SKIN_TONES[low] + (SKIN_TONES[low + 1] - SKIN_TONES[low]) * (segment - low)
    return tone * rng.uniform(0.94, 1.06) * rng.uniform(0.98, 1.02, size=3)


def _skin_position(rgb_mean: np.ndarray) -> float:
    """Where a colour's luminance falls on the skin line (0 light, 1 deep), clipped."""
    light, deep = _luminance(SKIN_LIGHT), _luminance(SKIN_DEEP)
    return float(np.clip((light - _luminance(rgb_mean)) / (light - deep), 0.0, 1.0))


def _smooth_noise(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-scale noise with about `cells` soft blobs across the larger side."""
    grid_h = max(2, round(cells * h / max(h, w)) + 1)
    grid_w = max(2, round(cells * w / max(h, w)) + 1)
    grid = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


@dataclass(frozen=True)
class Cloak:
    """The default: a soft, skin-toned, blurred-looking region made from secure noise.

    high: nothing of the face survives: the tone is drawn at random on a line of skin
    colours, the shading is smoothed noise plus a random light direction.
    medium: as high, but the tone stays in the face's third (light, middle or deep) of
    that line. low: the face's own blocks, shuffled and heavily blurred, in its own
    average colour (the softest look, and it leaks; see options.METHOD_INFO).
    """

    feather: bool = True
    randomised: bool = True

    def render(self, patch: np.ndarray, strength: str, rng: np.random.Generator) -> np.ndarray:
        h, w = patch.shape[:2]
        # The cloak holds no detail, so it is drawn small and scaled up: a 2000-px face
        # costs what a 128-px one does.
        scale = min(1.0, CLOAK_RENDER_SIDE / max(h, w))
        small_h, small_w = max(1, round(h * scale)), max(1, round(w * scale))
        small = cv2.resize(patch, (small_w, small_h), interpolation=cv2.INTER_AREA)
        pixels = small.astype(np.float32)
        grey_photo = bool(
            np.all(small[..., 0] == small[..., 1]) and np.all(small[..., 1] == small[..., 2])
        )
        if strength == "low":
            layout = self._shuffled_blur(pixels, rng)
        else:
            if strength == "high":
                position = rng.uniform(0.0, 1.0)
            else:
                band = min(
                    int(_skin_position(pixels.reshape(-1, 3).mean(axis=0)) * SKIN_LUMINANCE_BANDS),
                    SKIN_LUMINANCE_BANDS - 1,
                )
                position = (band + rng.uniform(0.0, 1.0)) / SKIN_LUMINANCE_BANDS
            tone = _skin_tone(position, rng)
            shading = 0.10 * _smooth_noise(small_h, small_w, 3, rng)
            angle = rng.uniform(0, 2 * np.pi)
            ramp_x = np.arange(small_w, dtype=np.float32) / max(small_w - 1, 1) - 0.5
            ramp_y = np.arange(small_h, dtype=np.float32) / max(small_h - 1, 1) - 0.5
            shading += 0.16 * (ramp_x[None, :] * np.cos(angle) + ramp_y[:, None] * np.sin(angle))
            layout = tone[None, None, :] * (1.0 + shading[..., None])
        if grey_photo:
            layout = np.repeat(_luminance(layout)[..., None], 3, axis=2)
        drawn = np.clip(layout, 0, 255).round().astype(np.uint8)
        return cv2.resize(drawn, (w, h), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def _shuffled_blur(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = pixels.shape[:2]
        grid = 4
        small = cv2.resize(pixels, (grid, grid), interpolation=cv2.INTER_AREA).reshape(-1, 3)
        small = small[rng.permutation(len(small))].reshape(grid, grid, 3)
        layout = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        return gaussian_blur(layout, 0.12 * max(h, w))


METHODS: dict[str, Method] = {
    "cloak": Cloak(),
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
) -> np.ndarray:
    """A new RGB uint8 image with every region anonymised; pixels outside the masks identical.

    Randomised methods draw from a fresh secure seed on every call, never from the image.
    """
    _check_choice("method", method, tuple(METHODS))
    _check_choice("shape", shape, SHAPES)
    _check_choice("strength", strength, STRENGTHS)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadRequestError("image must be an RGB uint8 array of shape (height, width, 3)")
    chosen = METHODS[method]
    rng = np.random.default_rng(secrets.randbits(128))
    height, width = image.shape[:2]
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
