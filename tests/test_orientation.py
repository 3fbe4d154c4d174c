"""Boxes between a picture's pixels as stored and as shown, for all eight orientations:
one rule (faceblur.orientation) for photos (EXIF) and videos (display matrix) alike, and
the page's mapping of a video's tracks and edits is that rule too."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from faceblur.media.container import Orientation
from faceblur.orientation import (
    ORIENTATIONS,
    box_as_shown,
    box_as_stored,
    size_as_shown,
    size_as_stored,
    whole_pixels,
)

STORED_W, STORED_H = 50, 30
BOX = (7, 4, 12, 9)  # x, y, w, h on the stored pixels
EVERY_TURN = [Orientation(turns, mirrored) for mirrored in (False, True) for turns in range(4)]


def marked() -> np.ndarray:
    stored = np.zeros((STORED_H, STORED_W), dtype=np.uint8)
    x, y, w, h = BOX
    stored[y : y + h, x : x + w] = 255
    return stored


def box_of(pixels: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(pixels)
    return (
        int(cols.min()),
        int(rows.min()),
        int(cols.max() - cols.min() + 1),
        int(rows.max() - rows.min() + 1),
    )


def test_the_eight_video_orientations_are_the_eight_exif_numbers() -> None:
    assert sorted(o.number for o in EVERY_TURN) == list(ORIENTATIONS)


@pytest.mark.parametrize("orientation", EVERY_TURN, ids=str)
def test_a_video_box_moves_between_stored_and_displayed_as_its_pixels_do(
    orientation: Orientation,
) -> None:
    shown = orientation.to_display(marked())
    expected = box_of(shown)
    number = orientation.number
    assert size_as_shown(STORED_W, STORED_H, number) == (shown.shape[1], shown.shape[0])
    assert box_as_shown(BOX, STORED_W, STORED_H, number) == expected
    assert box_as_stored(expected, shown.shape[1], shown.shape[0], number) == BOX
    assert size_as_stored(shown.shape[1], shown.shape[0], number) == (STORED_W, STORED_H)
    assert np.array_equal(orientation.to_stored(shown), marked())


@pytest.mark.parametrize("orientation", EVERY_TURN, ids=str)
def test_a_video_orientation_shows_pixels_as_a_photo_of_its_number_does(
    orientation: Orientation,
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation.number
    data = io.BytesIO()
    Image.fromarray(marked()).save(data, "PNG", exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data.getvalue())))
    assert np.array_equal(np.asarray(upright), orientation.to_display(marked()))


@pytest.mark.parametrize("number", ORIENTATIONS)
def test_every_box_of_a_frame_goes_there_and_back(number: int) -> None:
    width, height = size_as_shown(STORED_W, STORED_H, number)
    for box in [(0, 0, 1, 1), (0, 0, width, height), (3, 5, 10, 2), (width - 4, height - 3, 4, 3)]:
        stored = box_as_stored(box, width, height, number)
        sx, sy, sw, sh = stored
        assert sx >= 0 and sy >= 0 and sx + sw <= STORED_W and sy + sh <= STORED_H
        assert sw * sh == box[2] * box[3]
        assert box_as_shown(stored, STORED_W, STORED_H, number) == box


def test_a_fractional_edge_takes_its_whole_pixel() -> None:
    assert whole_pixels((10.5, 3.0, 20.2, 4.9)) == (10, 3, 21, 5)
    assert whole_pixels((1, 2, 3, 4)) == (1, 2, 3, 4)
