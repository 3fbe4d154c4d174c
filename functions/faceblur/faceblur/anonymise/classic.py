"""The classic methods: Gaussian blur, pixelate, a solid fill. Each scales with its region."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from faceblur.anonymise.base import Job, _paste_each
from faceblur.geometry import Box


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


class EachRegion:
    """A method that paints each region on its own, from that region's pixels alone:
    `paint(patch, strength)` is the whole method; `soft` fades it into the photo."""

    randomised = False  # the same input gives the same output
    soft = False

    def paint(self, patch: np.ndarray, strength: str) -> np.ndarray:
        raise NotImplementedError

    def render(self, image: np.ndarray, regions: Sequence[Box], job: Job) -> np.ndarray:
        return _paste_each(
            image, regions, job, self.soft, lambda patch: self.paint(patch, job.strength)
        )


@dataclass(frozen=True)
class Blur(EachRegion):
    """Gaussian blur whose sigma is a share of the region's larger side."""

    sigma_share: dict[str, float]
    soft = True

    def paint(self, patch: np.ndarray, strength: str) -> np.ndarray:
        return gaussian_blur(patch, self.sigma_share[strength] * max(patch.shape[:2]))


@dataclass(frozen=True)
class Pixelate(EachRegion):
    """A fixed number of blocks across the region's larger side, whatever its size."""

    blocks: dict[str, int]

    def paint(self, patch: np.ndarray, strength: str) -> np.ndarray:
        h, w = patch.shape[:2]
        block = max(h, w) / self.blocks[strength]
        small_size = (max(1, round(w / block)), max(1, round(h / block)))
        small = cv2.resize(patch, small_size, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


# Fixed fills for solid: neither depends on the face.
NEUTRAL_SKIN = (176, 140, 120)
BLACK = (0, 0, 0)


@dataclass(frozen=True)
class Solid(EachRegion):
    """One flat colour: low = the region's own average colour; medium = a fixed neutral
    skin tone; high = black."""

    def paint(self, patch: np.ndarray, strength: str) -> np.ndarray:
        if strength == "low":
            colour = patch.reshape(-1, 3).mean(axis=0).round()
        else:
            colour = np.array(NEUTRAL_SKIN if strength == "medium" else BLACK)
        return np.broadcast_to(colour.astype(np.uint8), patch.shape).copy()
