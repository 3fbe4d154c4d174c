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

from faceblur.errors import BadRequestError

Box = tuple[int, int, int, int]  # x, y, w, h in pixels; the same alias as faceblur.detect.Box

SHAPES = ("ellipse", "box")
DEFAULT_SHAPE = "ellipse"
STRENGTHS = ("low", "medium", "high")
DEFAULT_STRENGTH = "high"
# Added on each side as a share of the box's size, twice that on top: detectors' boxes stop
# at the hair line, and hair is what re-identifies a face once its middle is gone (on the
# AT&T benchmark it halved what a solid fill leaves to the attacker). The padded box is
# 1.8x the face across and 2.2x down; the ellipse inscribed in it covers the whole
# detected box (that needs more than sqrt 2 across) plus forehead, hair, ears and chin.
# 0.4 rather than 0.3: bench/reid.py named 5.5 % of people through the pipeline at 0.3.
DEFAULT_PADDING = 0.4
TOP_PADDING_FACTOR = 2.0
# In a crowd the faces the detector misses stand between and behind the ones it finds, half
# hidden or smeared, scoring no higher than crowd texture. Where a crowd face has such a
# doubtful candidate beside it, its region grows to cover the neighbourhood instead of
# blotting out every doubtful patch in the photo. Chosen by bench/recall.py: covered
# 20-50 px 0.962 -> 0.972, 50 px and up 0.986 -> 0.994, for 15.6 % of each photo changed
# outside faces instead of 11.3 %, and no more stray regions.
DEFAULT_CROWD_PADDING = 1.2
CROWD_NEIGHBOURS = 2  # a face with this many similar faces nearby stands in a crowd ...
CROWD_REACH = 3.0  # ... centres at most this many face heights apart ...
CROWD_SIMILAR = 2.0  # ... heights within this factor of each other ...
CROWD_MAX_FACE = 0.16  # ... and itself at most this share of the photo's longer side
# Soft methods fade into the photo across this outer share of the mask's radius. The fade
# lies inside the mask, so the outside stays identical, and at the default padding it ends
# before the detected box: every pixel of the box itself is fully replaced.
FEATHER = 0.07


def _check_choice(kind: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise BadRequestError(f"unknown {kind} {value!r}; choose one of {', '.join(choices)}")


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


def _similar_within_reach(faces: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of `others` are of each face's size and within reach of it, and how far."""
    face_x, face_y = faces[:, 0] + faces[:, 2] / 2, faces[:, 1] + faces[:, 3] / 2
    other_x, other_y = others[:, 0] + others[:, 2] / 2, others[:, 1] + others[:, 3] / 2
    face_h, other_h = np.maximum(faces[:, 3], 1.0), np.maximum(others[:, 3], 1.0)
    distance = np.hypot(face_x[:, None] - other_x, face_y[:, None] - other_y)
    ratio = face_h[:, None] / other_h
    reach = CROWD_REACH * np.maximum(face_h[:, None], other_h)
    similar = (ratio >= 1 / CROWD_SIMILAR) & (ratio <= CROWD_SIMILAR)
    return similar & (distance <= reach), distance


def crowd_members(
    boxes: Sequence[Box], doubtful: Sequence[Box], width: int, height: int
) -> np.ndarray:
    """Which faces stand in a crowd where the detector may have missed a neighbour.

    A face qualifies when it is small in the photo, has CROWD_NEIGHBOURS similar faces
    close by, and a similar doubtful candidate (found, but scored under the threshold)
    close by too, on no found face.
    """
    faces = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    doubts = np.asarray(doubtful, dtype=np.float64).reshape(-1, 4)
    if not len(faces) or not len(doubts):
        return np.zeros(len(faces), dtype=bool)
    neighbours, _ = _similar_within_reach(faces, faces)
    np.fill_diagonal(neighbours, False)
    doubts_near, distance = _similar_within_reach(faces, doubts)
    # A doubtful candidate centred on a found face is a second look at it, not a neighbour.
    apart = (distance > 0.5 * np.maximum(faces[:, 3:4], 1.0)).all(axis=0)
    small = faces[:, 3] <= CROWD_MAX_FACE * max(width, height)
    crowded = neighbours.sum(axis=1) >= CROWD_NEIGHBOURS
    return small & crowded & (doubts_near & apart).any(axis=1)


def face_regions(
    boxes: Sequence[Box],
    padding: float,
    crowd_padding: float,
    width: int,
    height: int,
    doubtful: Sequence[Box] = (),
    turns: Sequence[int] = (),
) -> list[Box]:
    """The region anonymised for each face: `padding` around it, `crowd_padding` in a crowd.

    `doubtful` are the candidates scored under the threshold (see `crowd_members`). The
    larger padding applies in a crowd, so asking for more padding never gives less.
    `turns` are the faces' `Face.turn` (all upright when not given).
    """
    crowd = crowd_members(boxes, doubtful, width, height)
    turns = list(turns) or [0] * len(boxes)
    return [
        padded_region(box, max(padding, crowd_padding) if crowd else padding, width, height, turn)
        for box, crowd, turn in zip(boxes, crowd, turns, strict=True)
    ]


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
    average colour (the softest look, and it leaks; see METHOD_INFO).
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
DEFAULT_METHOD = "cloak"

# One line per method for README, --help, the web page's picker and the info JSON. The
# figure is bench/reid.py's worst attacker at the default strength (high), the whole AT&T
# photo as the face region, 40 people (chance 2.5 %); tests/test_reid.py checks it against
# bench/results/reid.json, so rerun `make bench` and update it after changing a method.
METHOD_INFO: dict[str, str] = {
    "cloak": "soft skin-toned blur drawn from secure random noise, nothing of the face kept;"
    " re-identified 2.8 % of the time (chance 2.5 %)",
    "blur": "Gaussian blur sized to the face; still re-identified 97.0 % of the time"
    " (chance 2.5 %)",
    "pixelate": "6 big blocks across the face; still re-identified 98.5 % of the time"
    " (chance 2.5 %)",
    "solid": "flat black fill, a black box; re-identified 2.5 % of the time (chance 2.5 %)",
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
