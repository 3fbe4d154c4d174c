"""A video's edits as data, and boxes between the frame as stored and as displayed."""

from __future__ import annotations

import numpy as np
import pytest

from faceblur.errors import EditsError
from faceblur.media.container import Orientation
from faceblur.media.review import box_to_shown, box_to_stored
from faceblur.options import HideEdit, VideoEdits, parse_edits


def test_edits_parse_from_json_text_and_back() -> None:
    text = '{"show": [3, 1], "hide": [{"frames": [10, 40], "region": [5, 6, 70, 80]}]}'
    edits = parse_edits(text)
    assert edits == VideoEdits(frozenset({1, 3}), (HideEdit(10, 40, (5, 6, 70, 80)),))
    assert parse_edits(edits.to_json()) == edits
    assert parse_edits({}) == VideoEdits()


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("not json", "bad_json"),
        ([], "not_an_object"),
        ({"show": [1], "blur": []}, "not_an_object"),
        ({"show": [-1]}, "bad_show"),
        ({"show": [True]}, "bad_show"),
        ({"show": "1"}, "bad_show"),
        ({"hide": {}}, "bad_hide"),
        ({"hide": [{"frames": [0, 1]}]}, "bad_hide"),
        ({"hide": [{"frames": [5, 1], "region": [0, 0, 9, 9]}]}, "bad_frames"),
        ({"hide": [{"frames": [0], "region": [0, 0, 9, 9]}]}, "bad_frames"),
        ({"hide": [{"frames": [0, 1], "region": [0, 0, 0, 9]}]}, "empty"),
        ({"hide": [{"frames": [0, 1], "region": [0, 0, 9]}]}, "not_four_numbers"),
    ],
)
def test_unusable_edits_are_refused_with_what_is_wrong(document: object, problem: str) -> None:
    with pytest.raises(EditsError) as refused:
        parse_edits(document)
    assert refused.value.status == 400 and refused.value.code == "edits"
    assert refused.value.details["problem"] == problem


@pytest.mark.parametrize("turns", range(4))
@pytest.mark.parametrize("mirrored", [False, True])
def test_a_box_moves_between_stored_and_displayed_as_the_pixels_do(
    turns: int, mirrored: bool
) -> None:
    orientation = Orientation(turns, mirrored)
    stored = np.zeros((30, 50), dtype=bool)
    box = (7, 4, 12, 9)
    stored[4:13, 7:19] = True
    shown = orientation.to_display(stored)
    rows, cols = np.nonzero(shown)
    expected = (cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
    assert box_to_shown(box, orientation, 50, 30) == expected
    assert box_to_stored(expected, orientation, shown.shape[1], shown.shape[0]) == box
