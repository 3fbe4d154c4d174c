"""The options module: one parser for every door, light enough for the web page's image."""

from __future__ import annotations

import subprocess
import sys

import pytest

from faceblur.anonymise import METHODS
from faceblur.errors import BadRequestError, quoted
from faceblur.options import (
    DEFAULT_METHOD,
    METHOD_INFO,
    METHOD_NAMES,
    OPTION_NAMES,
    Options,
    parse_options,
)


@pytest.mark.parametrize(
    "raw,expected",
    [
        ({}, Options()),
        ({"method": "BLUR", "shape": "box"}, Options(method="blur", shape="box")),
        ({"padding": "0.5", "threshold": 0.9}, Options(padding=0.5, threshold=0.9)),
        ({"strength": "low", "padding": 0}, Options(strength="low", padding=0.0)),
    ],
)
def test_parse_options_accepts_strings_and_typed_values(raw, expected) -> None:
    assert parse_options(raw) == expected


@pytest.mark.parametrize(
    "raw,code,words",
    [
        ({"method": "smear"}, "bad_option", ["method", *METHOD_NAMES]),
        ({"shape": "star"}, "bad_option", ["shape", "ellipse", "box"]),
        ({"strength": "max"}, "bad_option", ["strength", "low"]),
        ({"padding": "wide"}, "bad_option", ["padding"]),
        ({"padding": -0.1}, "bad_option", ["padding"]),
        ({"padding": "nan"}, "bad_option", ["padding"]),
        ({"padding": 5}, "bad_option", ["padding", "0.0 to 2.0"]),
        ({"crowd_padding": 1.2}, "unknown_option", ["crowd_padding"]),
        ({"threshold": 1.5}, "bad_option", ["threshold"]),
        ({"threshold": True}, "bad_option", ["threshold"]),
        ({"colour": "red"}, "unknown_option", ["colour", *OPTION_NAMES]),
    ],
)
def test_parse_options_names_what_is_wrong(raw, code, words) -> None:
    with pytest.raises(BadRequestError) as error:
        parse_options(raw)
    assert error.value.status == 400 and error.value.code == code
    for word in words:
        assert word in str(error.value)


def test_every_named_method_is_in_the_registry_and_described() -> None:
    assert set(METHOD_NAMES) == set(METHODS) == set(METHOD_INFO)
    assert DEFAULT_METHOD in METHOD_NAMES
    assert all(METHOD_INFO[name].strip() for name in METHOD_NAMES)


@pytest.mark.parametrize("name", ["method", "shape", "strength", "padding", "threshold"])
def test_a_huge_bad_value_is_quoted_only_by_its_start(name) -> None:
    """Issue 17: a 100 kB value must not come back whole in the error."""
    huge = "x" * 100_000
    with pytest.raises(BadRequestError) as error:
        parse_options({name: huge})
    message = str(error.value)
    assert name in message and "'xxxx" in message and "..." in message
    assert len(message) < 200


def test_huge_or_many_unknown_names_are_cut_short() -> None:
    with pytest.raises(BadRequestError) as error:
        parse_options({"y" * 100_000: 1})
    assert error.value.code == "unknown_option" and len(str(error.value)) < 200
    with pytest.raises(BadRequestError) as error:
        parse_options({f"name{i:04d}": 1 for i in range(1000)})
    message = str(error.value)
    assert "name0000" in message and "and 995 more" in message and "name0999" not in message


def test_quoted_keeps_short_values_whole() -> None:
    assert quoted("blur") == "'blur'"
    assert quoted("blur", quote=False) == "blur"
    assert quoted("z" * 50) == "'" + "z" * 39 + "..."
    assert quoted(10**5000) == "(a value too long to show)"


def test_options_import_nothing_heavy() -> None:
    """The page's image reads the choices from here without numpy, OpenCV or the model."""
    script = (
        "import sys, faceblur.options\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('faceblur', 'numpy', "
        "'cv2', 'PIL')))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(loaded) == {"faceblur", "faceblur.errors", "faceblur.options"}
