"""What a caller may choose: names, one-line descriptions, defaults and the one parser.

Dependency-free on purpose, like `formats.py`: the CLI's argparse choices, the handler,
the web page's picker and the core all read the choices from here, and the page's image
needs neither numpy nor OpenCV. The methods themselves live in `anonymise.METHODS`,
keyed by the names below (a test keeps the two in step).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from faceblur.errors import BadRequestError, quoted

# One line per method for README, --help, the web page's picker and the info JSON. The
# figure is bench/reid.py's worst attacker at the default strength (high), the whole AT&T
# photo as the face region, 40 people (chance 2.5 %); tests/test_reid.py checks it against
# bench/results/reid.json, so rerun `make bench` and update it after changing a method.
METHOD_INFO: dict[str, str] = {
    "smudge": "soft blur painted from the photo around the face, nothing of the face kept;"
    " re-identified 3.2 % of the time (chance 2.5 %)",
    "blur": "Gaussian blur sized to the face; still re-identified 97.0 % of the time"
    " (chance 2.5 %)",
    "pixelate": "6 big blocks across the face; still re-identified 98.5 % of the time"
    " (chance 2.5 %)",
    "solid": "flat black fill, a black box; re-identified 2.5 % of the time (chance 2.5 %)",
}
METHOD_NAMES = tuple(METHOD_INFO)
DEFAULT_METHOD = "smudge"

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

# A bad option's name is listed in the error; past this many, only counted.
MAX_NAMES_SHOWN = 5


@dataclass(frozen=True)
class Options:
    """What a caller may choose; the defaults are the benchmarked ones."""

    method: str = DEFAULT_METHOD
    shape: str = DEFAULT_SHAPE
    strength: str = DEFAULT_STRENGTH
    padding: float = DEFAULT_PADDING
    threshold: float = DEFAULT_THRESHOLD


OPTION_NAMES = tuple(f.name for f in fields(Options))


def _choice(name: str, value: object, choices: Sequence[str]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise BadRequestError(f"{name} must be one of {', '.join(choices)}; got {quoted(value)}")
    return text


def _number(name: str, value: object, low: float, high: float) -> float:
    problem = BadRequestError(f"{name} must be a number from {low} to {high}; got {quoted(value)}")
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        raise problem
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise problem from None
    if not (math.isfinite(number) and low <= number <= high):
        raise problem
    return number


def _unknown(names: Sequence[str]) -> BadRequestError:
    shown = [quoted(name, quote=False) for name in names[:MAX_NAMES_SHOWN]]
    if len(names) > MAX_NAMES_SHOWN:
        shown.append(f"and {len(names) - MAX_NAMES_SHOWN} more")
    return BadRequestError(
        f"unknown option(s): {', '.join(shown)}; valid options: {', '.join(OPTION_NAMES)}"
    )


def parse_options(raw: Mapping[str, object]) -> Options:
    """Validate options from a query string, JSON body or command line (strings or typed)."""
    unknown = sorted(str(name) for name in set(raw) - set(OPTION_NAMES))
    if unknown:
        raise _unknown(unknown)
    defaults = Options()
    return Options(
        method=_choice("method", raw.get("method", defaults.method), METHOD_NAMES),
        shape=_choice("shape", raw.get("shape", defaults.shape), SHAPES),
        strength=_choice("strength", raw.get("strength", defaults.strength), STRENGTHS),
        padding=_number("padding", raw.get("padding", defaults.padding), 0.0, MAX_PADDING),
        threshold=_number(
            "threshold", raw.get("threshold", defaults.threshold), MIN_THRESHOLD, 1.0
        ),
    )
