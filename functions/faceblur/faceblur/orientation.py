"""How a picture stored one way is shown: the eight orientations, for photos and videos.

A photo names its orientation with its EXIF tag (1 to 8); a video with its display
matrix, which `faceblur.media.container.Orientation` reads as quarter turns and a mirror
and names by the same eight numbers (`of_turns`). The pipeline finds and hides faces on
the picture as shown (upright); a person's tools, `faceblur detect` / `tracks` and the
`--regions` / `--edits` files speak of the pixels as stored. Boxes move between the two
here, and only here.

Standard library only: the page maps a video's boxes with it too, and its image has no
numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Box = tuple[int, int, int, int]
"""x, y, width, height in whole pixels."""

ORIENTATIONS = range(1, 9)
"""The EXIF orientation numbers: 1 as stored; 2 to 8 mirrored and/or turned."""

_TURNED = frozenset({5, 6, 7, 8})  # width and height swap between stored and shown


def _point_as_stored(x: float, y: float, width: int, height: int, orientation: int):
    """Where a point of the picture as shown (width x height) lies in the pixels as stored."""
    return {
        1: (x, y),
        2: (width - x, y),
        3: (width - x, height - y),
        4: (x, height - y),
        5: (y, x),
        6: (y, width - x),
        7: (height - y, width - x),
        8: (height - y, x),
    }[orientation]


# Orientations 6 and 8 undo each other; every other one undoes itself.
_INVERSE = {6: 8, 8: 6}


def box_as_stored(box: Sequence[float], width: int, height: int, orientation: int) -> Box:
    """A box on the picture as shown (`width` x `height`), in the pixels as stored."""
    x, y, w, h = box
    corners = [
        _point_as_stored(px, py, width, height, orientation) for px, py in ((x, y), (x + w, y + h))
    ]
    (x0, y0), (x1, y1) = corners
    return (int(min(x0, x1)), int(min(y0, y1)), int(abs(x1 - x0)), int(abs(y1 - y0)))


def box_as_shown(box: Sequence[float], width: int, height: int, orientation: int) -> Box:
    """A box on the pixels as stored (`width` x `height`), on the picture as shown: the
    inverse of `box_as_stored`."""
    return box_as_stored(box, width, height, _INVERSE.get(orientation, orientation))


def size_as_stored(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of the pixels as stored, given the picture's as shown."""
    return (height, width) if orientation in _TURNED else (width, height)


def size_as_shown(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of the picture as shown, given its pixels' as stored."""
    return size_as_stored(width, height, orientation)


def whole_pixels(region: Sequence[float]) -> Box:
    """A region given in any numbers as the whole pixels it touches: a fractional edge
    takes its whole pixel, so a drawn area is hidden entirely."""
    x, y, w, h = region
    left, top = math.floor(x), math.floor(y)
    return (left, top, math.ceil(x + w) - left, math.ceil(y + h) - top)


# `turns` quarter turns counter-clockwise (as numpy's rot90 turns), then mirrored left to
# right: the orientation number that shows the stored pixels the same way.
_OF_TURNS = {
    (0, False): 1,
    (1, False): 8,
    (2, False): 3,
    (3, False): 6,
    (0, True): 2,
    (1, True): 7,
    (2, True): 4,
    (3, True): 5,
}


def of_turns(turns: int, mirrored: bool) -> int:
    """The orientation number of `turns` quarter turns counter-clockwise, then a mirror."""
    return _OF_TURNS[(turns % 4, mirrored)]
