"""Where the tests find their photos: the licensed benchmark sets, or free composed pictures.

The benchmark sets (WIDER FACE's faces-dev, AT&T's att-faces) may not be redistributed,
so a clone of the repository does not have them. They are looked for in one place:
`FACEBLUR_TEST_DATA` if set, else `../shared/data` beside the repository. Tests that
need them skip with `MISSING_DATA` as their reason (conftest.py counts those skips).

Everything else runs on scikit-image's `astronaut` (a NASA photo in the public domain,
shipped inside the scikit-image wheel: nothing is downloaded) and on pictures composed
from it here: the one face pasted at known places and sizes, turned, darkened.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACEBLUR_TEST_DATA") or ROOT.parent / "shared" / "data")
FACES_DEV = DATA / "faces-dev"
ATT_FACES = DATA / "att-faces"
HAVE_DATA = (FACES_DEV / "annotations.json").is_file() and ATT_FACES.is_dir()
MISSING_DATA = "benchmark photos not found at ../shared/data; set FACEBLUR_TEST_DATA"

# Marks a test (or a module, as `pytestmark`) that reads the benchmark sets.
licensed = pytest.mark.skipif(not HAVE_DATA, reason=MISSING_DATA)

Box = tuple[int, int, int, int]  # x, y, w, h in pixels

# The astronaut's face as the production detector boxes it (tests/test_free_images.py
# checks this), and the crop pasted into composed pictures: head, collar and some wall,
# since a face cut at its box edges is not what a camera sees (nor what a smudge blends
# into). A crop is 1.7 times as wide as the face is high, and 2.4 times as high.
ASTRONAUT_FACE: Box = (182, 58, 88, 120)
_CROP = (124, 0, 208, 290)


def require_data() -> None:
    """Skip the calling test or fixture when the benchmark sets are not here."""
    if not HAVE_DATA:
        pytest.skip(MISSING_DATA)


@cache
def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def astronaut() -> np.ndarray:
    """The 512x512 RGB astronaut photo (a fresh copy each call)."""
    return _astronaut().copy()


def _background(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth, faceless backdrop: colour gradients with a little low-frequency noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([90 + 60 * xs / width, 110 + 40 * ys / height, 130 - 50 * xs / width], axis=-1)
    coarse = rng.normal(0, 12, size=(height // 32 + 2, width // 32 + 2, 3)).astype(np.float32)
    noise = np.asarray(
        Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize(
            (width, height), Image.BILINEAR
        ),
        dtype=np.float32,
    )
    return np.clip(base + noise - 128, 0, 255).astype(np.uint8)


def _layout(width: int, height: int, heights: Sequence[int]) -> list[tuple[int, int]]:
    """Top-left corners of crops placed left to right in rows, with a margin between."""
    corners, x, y, row = [], 16, 16, 0
    for face_height in heights:
        crop_w, crop_h = _crop_size(face_height)
        if x + crop_w + 16 > width:
            x, y, row = 16, y + row + 16, 0
        if y + crop_h + 16 > height:
            raise ValueError(f"{len(heights)} faces of {list(heights)} px do not fit")
        corners.append((x, y))
        x, row = x + crop_w + 16, max(row, crop_h)
    return corners


def _crop_size(face_height: int) -> tuple[int, int]:
    scale = face_height / ASTRONAUT_FACE[3]
    return round(_CROP[2] * scale), round(_CROP[3] * scale)


def composed_photo(
    heights: Sequence[int] = (160,),
    size: tuple[int, int] = (640, 480),
    brightness: float = 1.0,
    turn: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, list[Box]]:
    """The astronaut's face pasted once per entry of `heights` (its box `heights[i]` px
    high) onto a faceless backdrop of `size` (width, height); then scaled in brightness
    and turned `turn` degrees clockwise (0, 90, 180, 270). Returns the RGB picture and
    the face boxes (x, y, w, h) as they lie in it."""
    width, height = size
    picture = _background(width, height, seed)
    boxes: list[Box] = []
    for face_height, (x, y) in zip(heights, _layout(width, height, heights), strict=True):
        crop_w, crop_h = _crop_size(face_height)
        cx, cy, cw, ch = _CROP
        crop = Image.fromarray(_astronaut()[cy : cy + ch, cx : cx + cw])
        picture[y : y + crop_h, x : x + crop_w] = np.asarray(
            crop.resize((crop_w, crop_h), Image.LANCZOS)
        )
        scale = face_height / ASTRONAUT_FACE[3]
        fx, fy, fw, fh = ASTRONAUT_FACE
        boxes.append(
            (x + round((fx - cx) * scale), y + round((fy - cy) * scale), round(fw * scale),
             face_height)
        )  # fmt: skip
    if brightness != 1.0:
        picture = np.clip(picture.astype(np.float32) * brightness, 0, 255).astype(np.uint8)
    for _ in range(turn // 90 % 4):
        boxes = [(height - y - h, x, h, w) for x, y, w, h in boxes]
        picture = np.ascontiguousarray(np.rot90(picture, k=-1))
        width, height = height, width
    return picture, boxes


def encoded(picture: np.ndarray, fmt: str = "PNG", **params) -> bytes:
    """`picture` (RGB array) written as `fmt` bytes by Pillow."""
    out = io.BytesIO()
    Image.fromarray(picture).save(out, fmt, **params)
    return out.getvalue()


# -- composed photos in the shape of faces-dev's annotations.json entries ----------------

COMPOSED = "composed"  # the name of the free variant where a fixture offers both


def composed_entries(count: int = 8) -> list[dict]:
    """`count` one-face photos (faces 150 px high and up on 640x500 backdrops, each its own
    seed, so each has its own bytes) as annotations.json entries; `composed_picture(entry)`
    draws one. They stand where a test wants "a photo of one clear face"."""
    entries = []
    for seed in range(count):
        heights = (150 + 5 * seed,)
        _, boxes = composed_photo(heights, size=(640, 500), seed=seed)
        entries.append(
            {
                "image": f"{COMPOSED}/one-face-{seed}.png",
                COMPOSED: {"heights": heights, "size": (640, 500), "seed": seed},
                "faces": [list(box) for box in boxes],
                "n_faces": 1,
                "ignore": False,
                "width": 640,
                "height": 500,
            }
        )
    return entries


def composed_picture(entry: dict) -> np.ndarray:
    """The RGB picture of a `composed_entries()` entry."""
    return composed_photo(**entry[COMPOSED])[0]
