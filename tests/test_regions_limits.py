"""Caller-supplied regions are bounded (issue 23, point 6): their total area is at most
MAX_REGIONS_AREA times the photo's, and the same region given twice is rendered once."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from faceblur.errors import RegionsError
from faceblur.media.photo import anonymise_image, regions_to_json
from faceblur.options import MAX_REGIONS_AREA, Options, parse_options

WIDTH, HEIGHT = 200, 100


def png() -> bytes:
    pixels = np.random.default_rng(1).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def options(regions: list[list[int]]) -> Options:
    return parse_options({"detect": "false", "regions": regions})


def test_regions_covering_more_than_the_cap_are_refused() -> None:
    whole = [0, 0, WIDTH, HEIGHT]
    # 1000 regions (the count limit), each the whole photo: 1000 times its area.
    for count in (MAX_REGIONS_AREA + 1, 1000):
        with pytest.raises(RegionsError) as refused:
            anonymise_image(png(), None, options([whole] * count))
        assert refused.value.status == 400
        assert refused.value.details["problem"] == "too_much_area"
        assert f"{MAX_REGIONS_AREA} times" in str(refused.value)


def test_regions_up_to_the_cap_are_rendered() -> None:
    distinct = [[x, 0, WIDTH - x, HEIGHT] for x in range(MAX_REGIONS_AREA)]
    result = anonymise_image(png(), None, options(distinct))
    assert regions_to_json(result) == distinct


def test_the_same_region_twice_is_rendered_once() -> None:
    box, other = [10, 10, 40, 30], [100, 20, 30, 30]
    result = anonymise_image(png(), None, options([box, box, other, box]))
    assert regions_to_json(result) == [box, other]
    assert result.given == [tuple(box), tuple(other)]
