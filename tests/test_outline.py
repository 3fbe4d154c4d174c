"""The page's outline of a region is exactly the area the anonymiser changes (issue 28)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from jinja2 import Environment, FileSystemLoader

from faceblur.anonymise import outline_ellipse, region_mask

TEMPLATES = Path(__file__).resolve().parents[1] / "frontend" / "templates"
WIDTH, HEIGHT = 1024, 768


def _drawn(region: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """cx, cy, rx, ry of the ellipse the results page draws for `region`."""
    macros = Environment(loader=FileSystemLoader(TEMPLATES)).get_template("_outline.html")
    svg = macros.module.outline([{"region": list(region)}], WIDTH, HEIGHT, "ellipse")
    (ellipse,) = re.findall(r"<ellipse ([^>]*)>", str(svg))
    values = dict(re.findall(r'(\w+)="([-\d.]+)"', ellipse))
    return tuple(float(values[k]) for k in ("cx", "cy", "rx", "ry"))


@pytest.mark.parametrize(
    "region",
    [
        (203, 0, 526, 768),  # a close-up running off the top and the bottom
        (0, 300, 120, 200),  # cut by the left border
        (900, 600, 124, 168),  # off the right and the bottom
        (400, 300, 100, 130),  # inside
        (0, 0, WIDTH, HEIGHT),  # the whole photo
    ],
)
def test_the_page_draws_exactly_the_area_that_changes(region) -> None:
    drawn = _drawn(region)
    assert drawn == pytest.approx(outline_ellipse(region, WIDTH, HEIGHT))
    cx, cy, rx, ry = drawn
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
    outline = np.hypot((cols - cx) / rx, (rows - cy) / ry) <= 1.0  # cut by the viewBox
    assert np.array_equal(outline, region_mask(HEIGHT, WIDTH, [region], "ellipse"))
