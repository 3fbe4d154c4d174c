"""The page's outline of a region is exactly the area the anonymiser changes (issue 28)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from jinja2 import Environment, FileSystemLoader

from faceblur.anonymise import outline_oval, region_mask

TEMPLATES = Path(__file__).resolve().parents[1] / "frontend" / "templates"
APP_JS = Path(__file__).resolve().parents[1] / "frontend" / "static" / "app.js"
WIDTH, HEIGHT = 1024, 768


def _drawn(region: tuple[int, int, int, int]) -> list[tuple[float, ...]]:
    """The path the results page draws for `region`: its start point and each arc's
    (rx, ry, rotation, large-arc, sweep, x, y)."""
    macros = Environment(loader=FileSystemLoader(TEMPLATES)).get_template("_outline.html")
    svg = macros.module.outline([{"region": list(region)}], WIDTH, HEIGHT, "ellipse")
    (path,) = re.findall(r'<path d="([^"]*)">', str(svg))
    start, *arcs = re.split(r"\s*A\s*", path.strip().removesuffix("Z"))
    return [
        tuple(float(v) for v in start.removeprefix("M").split()),
        *(tuple(float(v) for v in arc.split()) for arc in arcs),
    ]


def raster(region: tuple[int, int, int, int]) -> np.ndarray:
    """The drawn path filled, cut by the viewBox: four quarter ellipses around its centre,
    read off the path itself (each arc's radii and the quarter it sweeps)."""
    start, *arcs = _drawn(region)
    assert len(arcs) == 4 and all(arc[2:5] == (0, 0, 1) for arc in arcs)  # clockwise quarters
    (right, top, *_), (_, bottom, *_), (left, _, *_), _ = arcs
    cx, cy = start[0], start[1] + top
    assert arcs[0][5:] == pytest.approx((cx + right, cy))
    assert arcs[1][5:] == pytest.approx((cx, cy + bottom))
    assert arcs[2][5:] == pytest.approx((cx - left, cy))
    assert arcs[3][5:] == pytest.approx((cx, cy - top))
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
    across = (cols - cx) / np.where(cols < cx, left, right)
    down = (rows - cy) / np.where(rows < cy, top, bottom)
    return np.hypot(across, down) <= 1.0


@pytest.mark.parametrize(
    "region",
    [
        (203, 0, 526, 768),  # a close-up running off the top and the bottom
        (0, 300, 120, 200),  # cut by the left border
        (900, 600, 124, 168),  # off the right and the bottom
        (400, 0, 100, 130),  # off the top only
        (400, 300, 100, 130),  # inside
        (0, 0, WIDTH, HEIGHT),  # the whole photo
    ],
)
def test_the_page_draws_exactly_the_area_that_changes(region) -> None:
    start, *arcs = _drawn(region)
    cx, cy, left, right, top, bottom = outline_oval(region, WIDTH, HEIGHT)
    assert start == pytest.approx((cx, cy - top))
    radii = [value for arc in arcs for value in arc[:2]]
    assert radii == pytest.approx([right, top, right, bottom, left, bottom, left, top])
    assert np.array_equal(raster(region), region_mask(HEIGHT, WIDTH, [region], "ellipse"))


def test_the_script_draws_the_same_path_as_the_template() -> None:
    """app.js draws the outline in the browser with the same rule as the template: its
    path is the same four arcs, the radii doubled on a side that touches the border."""
    script = APP_JS.read_text()
    for rule in (
        "x <= 0 ? w : w / 2",
        "x + w >= width ? w : w / 2",
        "y <= 0 ? h : h / 2",
        "y + h >= height ? h : h / 2",
        '"A", right, top, 0, 0, 1, cx + right, cy',
        '"A", right, bottom, 0, 0, 1, cx, cy + bottom',
        '"A", left, bottom, 0, 0, 1, cx - left, cy',
        '"A", left, top, 0, 0, 1, cx, cy - top',
    ):
        assert rule in script, rule
