"""Make faces unrecognisable: regions, masks and the anonymisation methods.

Every method is a small object with one method, `render(image, regions, job)`: a new
image with the union of the regions' masks painted over, every other pixel identical
(`job` carries the shape, strength, random draw and the video's per-track memory).
Methods scale with the region (a fixed kernel leaks large faces) and never mutate their
input. The default, `haze`, paints a generic head seen through a blur, toned from the
photo around it and from one number per face and channel, the mean colour of the face
moved by a secret random offset (docs/reidentification.md says what that keeps).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np

from faceblur.anonymise.base import Job, Method, SteadyTones
from faceblur.anonymise.classic import Blur, Pixelate, Solid, gaussian_blur
from faceblur.anonymise.fill import HAZE_OFFSET, Haze, Smudge
from faceblur.anonymise.head import crown_pixels, kept_pixels, kept_tones
from faceblur.anonymise.masks import _clipped_regions, outline_oval, region_mask
from faceblur.errors import BadRequestError
from faceblur.geometry import Box
from faceblur.options import (
    DEFAULT_METHOD,
    DEFAULT_SHAPE,
    DEFAULT_STRENGTH,
    SHAPES,
    STRENGTHS,
    check_choice,
)

# What the other floors and the tests use of this package.
__all__ = [
    "METHODS",
    "Blur",
    "Job",
    "Method",
    "Pixelate",
    "Solid",
    "SteadyTones",
    "anonymise",
    "crown_pixels",
    "gaussian_blur",
    "kept_pixels",
    "kept_tones",
    "outline_oval",
    "region_mask",
]

METHODS: dict[str, Method] = {
    "haze": Haze(offset=HAZE_OFFSET),
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
    tracks: Sequence[int] | None = None,
    steady: SteadyTones | None = None,
) -> np.ndarray:
    """A new RGB uint8 image with every region anonymised; pixels outside the masks identical.

    Randomised methods draw from a fresh secure seed on every call, never from the image;
    `rng` is for tests that need the same draw twice. `grain=False` leaves the painted
    fills without grain, for video frames: fresh grain in every frame boils where a
    video's own noise is steady or compressed away, and on soft footage it is all the fine
    detail a hidden face has left (bench/video.py counts it as detail; docs/tried.md).
    `tracks` (one id per region) and `steady` (one per video) keep each face's tone from
    frame to frame.
    """
    method = check_choice("method", method, tuple(METHODS))
    shape = check_choice("shape", shape, SHAPES)
    strength = check_choice("strength", strength, STRENGTHS)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadRequestError("image must be an RGB uint8 array of shape (height, width, 3)")
    if tracks is not None and len(tracks) != len(regions):
        raise ValueError(f"{len(tracks)} track ids for {len(regions)} regions")
    if rng is None:
        rng = np.random.default_rng(secrets.randbits(128))
    height, width = image.shape[:2]
    clipped = _clipped_regions(regions, width, height)
    job = Job(shape, strength, rng, grain, tracks, steady)
    return METHODS[method].render(image, clipped, job)
