"""What a caller may choose: names, one-line descriptions, defaults and the one parser.

Dependency-free on purpose, like `formats.py`: the CLI's argparse choices, the handler,
the web page's picker and the core all read the choices from here, and the page's image
needs neither numpy nor OpenCV. The methods themselves live in `anonymise.METHODS`,
keyed by the names below (a test keeps the two in step).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from faceblur.errors import BadRequestError, EditsError, RegionsError, quoted

# What each method does to a face, and how often it is still re-identified: bench/reid.py's
# worst attacker at the default strength (high), the whole AT&T photo as the face region,
# 40 people. tests/test_reid.py checks the figures against bench/results/reid.json, so
# rerun `make bench` and update them after changing a method.
_METHOD_DOES: dict[str, str] = {
    "haze": "a head seen through a blur: a soft oval in the person's tone, moved by a secret"
    " random amount, under the hair or hat around it",
    "smudge": "painted from the photo around the face only, nothing of the face kept",
    "blur": "Gaussian blur sized to the face",
    "pixelate": "6 big blocks across the face",
    "solid": "flat black fill, a black box",
}
REIDENTIFIED: dict[str, float] = {
    "haze": 0.039,
    "smudge": 0.032,
    "blur": 0.970,
    "pixelate": 0.985,
    "solid": 0.025,
}
REID_CHANCE = 1 / 40  # naming one of the benchmark's 40 people by guessing
# A method re-identified this many times more often than chance is said to leak ("still").
LEAKS_ABOVE_CHANCE = 10


def _method_line(method: str) -> str:
    rate = REIDENTIFIED[method]
    still = "still " if rate > LEAKS_ABOVE_CHANCE * REID_CHANCE else ""
    return (
        f"{_METHOD_DOES[method]}; {still}re-identified {100 * rate:.1f} % of the time"
        f" (chance {100 * REID_CHANCE:.1f} %)"
    )


# One line per method for README, --help, the web page's picker and the info JSON.
METHOD_INFO: dict[str, str] = {method: _method_line(method) for method in _METHOD_DOES}
METHOD_NAMES = tuple(METHOD_INFO)
DEFAULT_METHOD = "haze"

SHAPES = ("ellipse", "box")
DEFAULT_SHAPE = "ellipse"
STRENGTHS = ("low", "medium", "high")
DEFAULT_STRENGTH = "high"

# Added on each side as a share of the box's size, twice that on top (see
# anonymise.padded_region): detectors' boxes stop at the hair line, and hair is what
# re-identifies a face once its middle is gone (on the AT&T benchmark it halved what a
# solid fill leaves to the attacker). The padded box is 1.8x the face across and 2.2x
# down; the ellipse inscribed in it covers the whole detected box (that needs more than
# sqrt 2 across) plus forehead, hair, ears and chin. 0.4 rather than 0.3: bench/reid.py
# named 5.5 % of people through the pipeline at 0.3.
DEFAULT_PADDING = 0.4
MAX_PADDING = 2.0

# Fused detection score above which the pipeline anonymises a face (chosen by
# bench/recall.py), and the lowest score the detector returns: a request may not ask
# for less.
DEFAULT_THRESHOLD = 0.26
MIN_THRESHOLD = 0.1

# Regions a caller draws by hand (issue 12): a person checking a crowd photo may add many,
# but a list longer than this is not someone's edit.
MAX_REGIONS = 1000
# Their total area, in photos: every region is rendered (and sealed) on its own, so a
# thousand whole-photo regions would cost a thousand renderings. Four photos' worth is
# more than any hand-drawn set of faces covers.
MAX_REGIONS_AREA = 4

# A bad option's name is listed in the error; past this many, only counted.
MAX_NAMES_SHOWN = 5


Region = tuple[float, float, float, float]


@dataclass(frozen=True)
class Options:
    """What a caller may choose; the defaults are the benchmarked ones."""

    method: str = DEFAULT_METHOD
    shape: str = DEFAULT_SHAPE
    strength: str = DEFAULT_STRENGTH
    padding: float = DEFAULT_PADDING
    threshold: float = DEFAULT_THRESHOLD
    upright_only: bool = False  # skip the turned passes (detection.angles): photos known upright
    # False: anonymise only `regions`. The regions are [x, y, w, h] in pixels of the
    # upright image, used exactly as given (no padding): a person chose them.
    detect: bool = True
    regions: tuple[Region, ...] = ()


OPTION_NAMES = tuple(f.name for f in fields(Options))


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """`value` as one of `choices` (trimmed, lower case); a 400 naming the option if not."""
    text = str(value).strip().lower()
    if text not in choices:
        raise BadRequestError(
            f"{name} must be one of {', '.join(choices)}; got {quoted(value)}",
            "bad_option",
            option=name,
        )
    return text


def _number(name: str, value: object, low: float, high: float) -> float:
    problem = BadRequestError(
        f"{name} must be a number from {low} to {high}; got {quoted(value)}",
        "bad_option",
        option=name,
    )
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        raise problem
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise problem from None
    if not (math.isfinite(number) and low <= number <= high):
        raise problem
    return number


def request_flag(name: str, value: object) -> bool:
    """A yes/no request option; a value that is neither is a 400 naming the option."""
    try:
        return parse_flag(value)
    except ValueError as error:
        raise BadRequestError(f"{name} {error}", "bad_option", option=name) from None


def _plain(number: float) -> float:
    """Whole numbers as int, so [10, 20, 30, 40] and [10.0, ...] are the same result key."""
    return int(number) if number.is_integer() else number


def _region(index: int, value: object) -> Region:
    def refuse(why: str, problem: str) -> RegionsError:
        message = f"region {index} ({quoted(value)}) {why}"
        return RegionsError(message, problem=problem, region=index)

    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise refuse("must be a list of 4 numbers [x, y, w, h]", "not_four_numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise refuse("must hold numbers only", "not_numbers")
    try:
        x, y, w, h = (float(v) for v in value)
    except OverflowError:
        raise refuse("holds a number too large", "not_finite") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise refuse("must hold finite numbers", "not_finite")
    if x < 0 or y < 0:
        raise refuse("starts outside the image: x and y must be 0 or more", "negative_start")
    if w <= 0 or h <= 0:
        raise refuse("is empty: w and h must be more than 0", "empty")
    return (_plain(x), _plain(y), _plain(w), _plain(h))


def _regions(value: object) -> tuple[Region, ...]:
    """A list of [x, y, w, h]; in a query string or form field, that list as JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RegionsError(
                f"regions must be a JSON list of [x, y, w, h]; got {quoted(value)}",
                problem="bad_json",
            ) from None
    if not isinstance(value, (list, tuple)):
        raise RegionsError(
            f"regions must be a list of [x, y, w, h]; got {quoted(value)}", problem="not_a_list"
        )
    if len(value) > MAX_REGIONS:
        raise RegionsError(
            f"{len(value)} regions; at most {MAX_REGIONS} are accepted", problem="too_many"
        )
    return tuple(_region(index, region) for index, region in enumerate(value, start=1))


def check_regions_inside(regions: Sequence[Region], width: int, height: int) -> None:
    """RegionsError naming the first region that does not fit a width x height image, or
    telling that together they cover more than MAX_REGIONS_AREA times its area.

    Apart from `parse_options` because only the decoded image knows its size.
    """
    for index, (x, y, w, h) in enumerate(regions, start=1):
        if x + w > width or y + h > height:
            raise RegionsError(
                f"region {index} [{x}, {y}, {w}, {h}] goes outside the image of "
                f"{width}x{height} pixels: x + w must be at most {width} "
                f"and y + h at most {height}",
                problem="outside",
                region=index,
            )
    area = sum(w * h for _, _, w, h in regions)
    if area > MAX_REGIONS_AREA * width * height:
        raise RegionsError(
            f"the regions cover {area / (width * height):.1f} times the image's area; at "
            f"most {MAX_REGIONS_AREA} times is accepted",
            problem="too_much_area",
        )


# -- a video's edits --------------------------------------------------------------------

MAX_SHOWN_TRACKS = 1000


@dataclass(frozen=True)
class HideEdit:
    """A region hidden from frame `first` to frame `last` (both included); `region` is
    [x, y, w, h] in pixels of the video as stored, where it is in frame `first`."""

    first: int
    last: int
    region: Region


@dataclass(frozen=True)
class VideoEdits:
    """What a reviewer changed in a video: tracks left visible, regions hidden over frames.

    As JSON: `{"show": [track ids], "hide": [{"frames": [first, last], "region": [x, y, w,
    h]}]}`, both lists optional; the track ids are those `faceblur tracks` prints.
    """

    show: frozenset[int] = frozenset()
    hide: tuple[HideEdit, ...] = ()

    def to_json(self) -> dict:
        return {
            "show": sorted(self.show),
            "hide": [
                {"frames": [edit.first, edit.last], "region": list(edit.region)}
                for edit in self.hide
            ],
        }


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hide_edit(index: int, value: object) -> HideEdit:
    if not isinstance(value, dict) or set(value) != {"frames", "region"}:
        raise EditsError(
            f'hide {index} must be {{"frames": [first, last], "region": [x, y, w, h]}}; '
            f"got {quoted(value)}",
            problem="bad_hide",
            hide=index,
        )
    frames = value["frames"]
    if not (isinstance(frames, list) and len(frames) == 2 and all(map(_whole, frames))):
        raise EditsError(
            f"hide {index}: frames must be [first, last], two frame numbers from 0",
            problem="bad_frames",
            hide=index,
        )
    if frames[0] > frames[1]:
        raise EditsError(
            f"hide {index}: frames {frames} end before they start", problem="bad_frames", hide=index
        )
    try:
        region = _region(index, value["region"])
    except RegionsError as error:
        raise EditsError(f"hide {error}", problem=error.details["problem"], hide=index) from None
    return HideEdit(frames[0], frames[1], region)


def parse_edits(document: object) -> VideoEdits:
    """A video's edits from JSON (a parsed document or its text); EditsError if unusable."""
    if isinstance(document, (str, bytes)):
        try:
            document = json.loads(document)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EditsError("edits must be JSON", problem="bad_json") from None
    if not isinstance(document, dict) or not set(document) <= {"show", "hide"}:
        raise EditsError(
            'edits must be an object {"show": [track ids], "hide": [...]}', problem="not_an_object"
        )
    show, hide = document.get("show", []), document.get("hide", [])
    if not isinstance(show, list) or not all(map(_whole, show)):
        raise EditsError("show must be a list of track ids (whole numbers)", problem="bad_show")
    if not isinstance(hide, list):
        raise EditsError("hide must be a list", problem="bad_hide")
    if len(show) > MAX_SHOWN_TRACKS or len(hide) > MAX_REGIONS:
        raise EditsError(
            f"at most {MAX_SHOWN_TRACKS} tracks shown and {MAX_REGIONS} regions hidden",
            problem="too_many",
        )
    return VideoEdits(
        frozenset(show), tuple(_hide_edit(i, edit) for i, edit in enumerate(hide, start=1))
    )


def _unknown(names: Sequence[str]) -> BadRequestError:
    shown = [quoted(name, quote=False) for name in names[:MAX_NAMES_SHOWN]]
    if len(names) > MAX_NAMES_SHOWN:
        shown.append(f"and {len(names) - MAX_NAMES_SHOWN} more")
    return BadRequestError(
        f"unknown option(s): {', '.join(shown)}; valid options: {', '.join(OPTION_NAMES)}",
        "unknown_option",
    )


def parse_options(raw: Mapping[str, object]) -> Options:
    """Validate options from a query string, JSON body or command line (strings or typed)."""
    unknown = sorted(str(name) for name in set(raw) - set(OPTION_NAMES))
    if unknown:
        raise _unknown(unknown)
    defaults = Options()
    return Options(
        method=check_choice("method", raw.get("method", defaults.method), METHOD_NAMES),
        shape=check_choice("shape", raw.get("shape", defaults.shape), SHAPES),
        strength=check_choice("strength", raw.get("strength", defaults.strength), STRENGTHS),
        padding=_number("padding", raw.get("padding", defaults.padding), 0.0, MAX_PADDING),
        threshold=_number(
            "threshold", raw.get("threshold", defaults.threshold), MIN_THRESHOLD, 1.0
        ),
        upright_only=request_flag("upright_only", raw.get("upright_only", defaults.upright_only)),
        detect=request_flag("detect", raw.get("detect", defaults.detect)),
        regions=_regions(raw.get("regions", defaults.regions)),
    )


def parse_flag(value: object) -> bool:
    """true/false in the spellings environments and query strings use; otherwise a
    BadRequestError (a ValueError) with code `bad_option`."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise BadRequestError(f"must be true or false, got {quoted(value)}", "bad_option")
