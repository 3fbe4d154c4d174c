"""A video's edits as data."""

from __future__ import annotations

import pytest

from faceblur.errors import EditsError
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
