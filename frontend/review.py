"""A video's review between the function and the player: boxes as the player shows them.

The function speaks of a video's tracks and edits in its pixels as stored (as `faceblur
tracks` and `--edits` do), and says how a player shows those pixels: `orientation`, 1 to
8. A browser plays the video turned as its display matrix says (a phone clip stored
1920x1080 with a quarter turn plays 1080x1920), and the page's script draws outlines and
takes the boxes a person draws on what it shows. The page turns boxes both ways here,
with the core's one rule (`faceblur.orientation`), so the script needs no copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faceblur.options import HideEdit, VideoEdits, check_regions_inside, parse_edits
from faceblur.orientation import (
    ORIENTATIONS,
    box_as_shown,
    box_as_stored,
    size_as_shown,
    whole_pixels,
)


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True)
class Frame:
    """A video's frame as the function knows it: stored size, and how it is shown."""

    width: int  # as stored; 0 when the function did not say (tracks kept before it did)
    height: int
    orientation: int = 1

    @staticmethod
    def of(answer: dict[str, Any]) -> Frame:
        """The frame the function's tracks answer describes. An answer that names no
        orientation (tracks kept before it was named) is of a video shown as stored."""
        width, height = _whole(answer.get("width")), _whole(answer.get("height"))
        orientation = answer.get("orientation")
        if width is None or height is None or orientation not in ORIENTATIONS:
            return Frame(0, 0)
        return Frame(width, height, int(orientation))

    @property
    def shown(self) -> tuple[int, int]:
        """(width, height) as a player shows the frame."""
        return size_as_shown(self.width, self.height, self.orientation)


def tracks_as_shown(answer: dict[str, Any]) -> dict[str, Any]:
    """The function's tracks answer for the page's script: every track's boxes and every
    hidden area in the pixels the player shows."""
    frame = Frame.of(answer)

    def shown(box: list[int]) -> list[int]:
        return list(box_as_shown(box, frame.width, frame.height, frame.orientation))

    tracks = [
        {**track, "boxes": [[box[0], *shown(box[1:])] for box in track["boxes"]]}
        for track in answer["tracks"]
    ]
    edits = answer.get("edits")
    if isinstance(edits, dict):
        edits = {
            "show": edits.get("show") or [],
            "hide": [
                {"frames": edit["frames"], "region": shown(edit["region"])}
                for edit in edits.get("hide") or []
            ],
        }
    return {"tracks": tracks, "edits": edits, "rate": answer.get("rate")}


def edits_as_stored(document: object, answer: dict[str, Any]) -> dict[str, Any]:
    """A person's edits, drawn on the video as the player shows it, in the pixels as
    stored, for the function (its tracks `answer` says how the video is shown).

    EditsError or RegionsError (400) when they cannot be used: a region outside the frame
    shown would land outside the pixels as stored, or elsewhere in them.
    """
    edits = parse_edits(document)
    frame = Frame.of(answer)
    regions = [whole_pixels(edit.region) for edit in edits.hide]
    if frame.width:
        check_regions_inside(regions, *frame.shown)
    shown_width, shown_height = frame.shown
    hide = tuple(
        HideEdit(
            edit.first,
            edit.last,
            box_as_stored(region, shown_width, shown_height, frame.orientation),
        )
        for edit, region in zip(edits.hide, regions, strict=True)
    )
    return VideoEdits(edits.show, hide).to_json()
