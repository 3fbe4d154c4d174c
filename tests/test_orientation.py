"""Boxes between a picture's pixels as stored and as shown, for all eight orientations:
one rule (faceblur.orientation) for photos (EXIF) and videos (display matrix) alike, and
the page's mapping of a video's tracks and edits is that rule too."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from faceblur.errors import RegionsError
from faceblur.media.container import Orientation
from faceblur.orientation import (
    ORIENTATIONS,
    box_as_shown,
    box_as_stored,
    size_as_shown,
    size_as_stored,
    whole_pixels,
)
from frontend.review import edits_as_stored, tracks_as_shown

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


# -- the page: a video's tracks and edits between the function and the player ----------


def function_answer(number: int) -> dict:
    """A tracks answer as the function gives it: boxes and edits in stored pixels."""
    return {
        "job": "0" * 32,
        "rate": 25.0,
        "width": STORED_W,
        "height": STORED_H,
        "orientation": number,
        "tracks": [
            {"track": 3, "first": 0, "last": 1, "frames": 2, "boxes": [[0, *BOX], [1, 0, 0, 5, 6]]}
        ],
        "edits": {"show": [3], "hide": [{"frames": [0, 4], "region": [40, 20, 10, 10]}]},
    }


@pytest.mark.parametrize("number", ORIENTATIONS)
def test_the_page_gives_its_script_boxes_as_played_and_the_function_edits_as_stored(
    number: int,
) -> None:
    answer = function_answer(number)
    shown = tracks_as_shown(answer)
    assert shown["tracks"][0]["boxes"] == [
        [0, *box_as_shown(BOX, STORED_W, STORED_H, number)],
        [1, *box_as_shown((0, 0, 5, 6), STORED_W, STORED_H, number)],
    ]
    assert shown["tracks"][0]["track"] == 3 and shown["rate"] == 25.0
    (area,) = shown["edits"]["hide"]
    assert area["region"] == list(box_as_shown((40, 20, 10, 10), STORED_W, STORED_H, number))
    # What the script sends back, drawn on the frame as played, reaches the function as stored.
    assert edits_as_stored(shown["edits"], answer) == answer["edits"]


@pytest.mark.parametrize("number", ORIENTATIONS)
def test_the_page_refuses_an_area_outside_the_frame_as_played(number: int) -> None:
    width, height = size_as_shown(STORED_W, STORED_H, number)
    outside = {"hide": [{"frames": [0, 1], "region": [width - 5, 0, 6, height]}]}
    with pytest.raises(RegionsError):
        edits_as_stored(outside, function_answer(number))
    fitting = {"hide": [{"frames": [0, 1], "region": [width - 5.5, 0.5, 5.5, 2]}]}
    (edit,) = edits_as_stored(fitting, function_answer(number))["hide"]
    assert edit["region"] == list(box_as_stored((width - 6, 0, 6, 3), width, height, number))


def test_tracks_kept_before_the_orientation_was_named_are_shown_as_stored() -> None:
    answer = function_answer(6)
    for name in ("width", "height", "orientation"):
        answer.pop(name)
    assert tracks_as_shown(answer)["tracks"][0]["boxes"][0] == [0, *BOX]
    assert edits_as_stored(answer["edits"], answer) == answer["edits"]
