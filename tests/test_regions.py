"""Regions given by hand (issue 12): `detect` and `regions`, through the function over HTTP
against the real S3 server, and the pipeline's mapping of regions as stored."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from faceblur.errors import BadRequestError, RegionsError
from faceblur.media.photo import anonymise_image
from faceblur.options import MAX_REGIONS, Options, parse_options
from stack_fixtures import LocalS3, scaled_photo

# JPEG at quality 95 moves a pixel by about one level on average when re-encoded; a
# hidden face moves by tens.
NOISE = 2.0
CHANGED = 10.0


@pytest.fixture(scope="module")
def portrait(portrait_annotations: list[dict]) -> tuple[bytes, tuple[int, int, int, int]]:
    """A JPEG of one clear face at 480 px, and its true box."""
    entry = next(
        e
        for e in portrait_annotations
        if e["n_faces"] == 1 and not e["ignore"] and 150 <= e["faces"][0][3] <= 450
    )
    data, boxes = scaled_photo(entry, 480, "JPEG")
    return data, boxes[0]


@pytest.fixture
def url(s3_server: LocalS3, function_server: str) -> str:
    s3_server.empty_buckets()
    return f"{function_server}/function/faceblur"


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def post_json(url: str, data: bytes, **options: object) -> requests.Response:
    body = {"image": base64.b64encode(data).decode(), **options}
    return requests.post(url, json=body, timeout=120)


def stored_result(s3_server: LocalS3, answer: dict) -> bytes:
    return s3_server.store().read("results", answer["result_key"])


def test_a_given_region_alone_is_hidden_exactly_as_drawn(url, s3_server, portrait) -> None:
    original, (x, y, w, h) = portrait
    # Only the upper half of the face: the lower half must stay as it was (no padding).
    drawn = [x, y, w, h // 2]
    response = post_json(url, original, detect=False, regions=[drawn])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["faces"] == []
    assert answer["regions"] == [drawn]
    before, after = pixels(original), pixels(stored_result(s3_server, answer))
    difference = np.abs(before - after).mean(axis=2)
    inside = np.zeros(difference.shape, dtype=bool)
    inside[y : y + h // 2, x : x + w] = True
    assert difference[inside].mean() > CHANGED
    assert difference[~inside].mean() < NOISE
    # The face's lower half, right below the drawn region, is not touched either.
    assert difference[y + h // 2 + 2 : y + h, x : x + w].mean() < NOISE


def test_detection_off_and_no_regions_leaves_the_photo_as_it_was(url, s3_server, portrait) -> None:
    original, (x, y, w, h) = portrait
    response = post_json(url, original, detect=False)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["faces"] == [] and answer["regions"] == []
    difference = np.abs(pixels(original) - pixels(stored_result(s3_server, answer)))
    assert difference.mean() < NOISE
    assert difference[y : y + h, x : x + w].mean() < NOISE


def test_detected_and_given_regions_are_both_hidden_and_keyed_apart(
    url, s3_server, portrait
) -> None:
    original, (x, y, w, h) = portrait
    corner = [0, 0, 40, 30]
    # A flat fill in boxes: the corner may be plain background, which a soft method
    # inside an ellipse hardly changes.
    chosen = {"method": "solid", "shape": "box"}
    plain = post_json(url, original, **chosen).json()
    edited_response = post_json(url, original, regions=json.dumps([corner]), **chosen)
    assert edited_response.status_code == 200, edited_response.text
    edited = edited_response.json()
    assert len(edited["faces"]) == len(plain["faces"]) >= 1
    assert edited["regions"] == [f["region"] for f in edited["faces"]] + [corner]
    # The options, regions included, are part of the key: both results are kept.
    assert edited["result_key"] != plain["result_key"]
    store = s3_server.store()
    assert store.read("results", plain["result_key"]) != stored_result(s3_server, edited)
    before, after = pixels(original), pixels(stored_result(s3_server, edited))
    assert np.abs(before - after)[0:30, 0:40].mean() > CHANGED
    assert np.abs(before - after)[y + h // 4 : y + h // 2, x + w // 4 : x + w // 2].mean() > CHANGED


def test_regions_and_detect_come_from_the_query_string_and_form_fields(
    url, s3_server, portrait
) -> None:
    original, _ = portrait
    drawn = [[10, 20, 30, 40], [100.5, 50, 20.25, 10]]
    query = requests.post(
        url,
        data=original,
        params={"detect": "false", "regions": json.dumps(drawn)},
        headers={"Content-Type": "image/jpeg"},
        timeout=120,
    )
    form = requests.post(
        url,
        files={"image": ("p.jpg", original, "image/jpeg")},
        data={"detect": "false", "regions": json.dumps(drawn)},
        timeout=120,
    )
    for response in (query, form):
        assert response.status_code == 200, response.text
        # A fractional edge takes its whole pixel.
        assert response.json()["regions"] == [[10, 20, 30, 40], [100, 50, 21, 10]]
    assert query.json()["result_key"] == form.json()["result_key"]


@pytest.mark.parametrize(
    ("regions", "details"),
    [
        ([[10, 10, 20]], {"region": 1, "problem": "not_four_numbers"}),
        ([[10, 10, 20, 20], [1, 2, "3", 4]], {"region": 2, "problem": "not_numbers"}),
        ([[10, 10, 20, 20], [1, 2, True, 4]], {"region": 2, "problem": "not_numbers"}),
        ("[[1, 2, NaN, 4]]", {"region": 1, "problem": "not_finite"}),
        ("[[1, 2, 1e999, 4]]", {"region": 1, "problem": "not_finite"}),
        ([[-1, 10, 20, 20]], {"region": 1, "problem": "negative_start"}),
        ([[10, -0.5, 20, 20]], {"region": 1, "problem": "negative_start"}),
        ([[10, 10, 0, 20]], {"region": 1, "problem": "empty"}),
        ([[10, 10, 20, -3]], {"region": 1, "problem": "empty"}),
        ([[0, 0, 1, 1], [470, 10, 20, 20]], {"region": 2, "problem": "outside"}),
        ([[0, 0, 1, 1]] * 2 + [[10, 300, 20, 9000]], {"region": 3, "problem": "outside"}),
        ([[0, 0, 1, 1]] * (MAX_REGIONS + 1), {"problem": "too_many"}),
        ("[[1, 2, 3, 4]", {"problem": "bad_json"}),
        ({"x": 1}, {"problem": "not_a_list"}),
    ],
)
def test_each_kind_of_bad_region_is_a_400_naming_it(
    url, s3_server, portrait, regions, details
) -> None:
    original, _ = portrait
    response = post_json(url, original, detect=False, regions=regions)
    assert response.status_code == 400, response.text
    assert len(response.json()["error"]) < 300
    # Programs (the page among them) tell a regions error by its code, not its words.
    assert response.json()["code"] == "regions"
    assert {name: response.json().get(name) for name in details} == details
    assert not any(s3_server.snapshot().values())


def test_a_bad_option_that_is_not_a_region_has_no_regions_code(url, s3_server, portrait) -> None:
    original, _ = portrait
    response = post_json(url, original, detect="maybe")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_option" and response.json()["option"] == "detect"


def test_detect_must_be_true_or_false() -> None:
    with pytest.raises(BadRequestError) as refused:
        parse_options({"detect": "maybe"})
    assert (refused.value.code, refused.value.details) == ("bad_option", {"option": "detect"})
    assert parse_options({"detect": "0"}).detect is False
    assert parse_options({}) == Options()


def test_whole_and_fractional_numbers_give_the_same_options() -> None:
    assert parse_options({"regions": [[1.0, 2, 3, 4]]}) == parse_options({"regions": "[[1,2,3,4]]"})


def upright_and_sideways() -> tuple[np.ndarray, bytes]:
    """A 60x40 upright picture and a PNG of it stored turned, with EXIF orientation 6."""
    rng = np.random.default_rng(12)
    upright = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    # Orientation 6: the viewer turns the stored pixels 90 degrees clockwise.
    stored = Image.fromarray(np.rot90(upright, k=1).copy())
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    return upright, buffer.getvalue()


@pytest.mark.parametrize("as_stored", [False, True])
def test_regions_land_on_the_upright_pixels_of_a_sideways_photo(as_stored: bool) -> None:
    upright, data = upright_and_sideways()
    wanted = (35, 5, 20, 10)  # x, y, w, h on the upright 60x40 picture
    if as_stored:
        # The same area on the 40x60 pixels as stored (what `faceblur detect` prints).
        x, y, w, h = wanted
        given = (y, 60 - (x + w), h, w)
    else:
        given = wanted
    options = Options(method="solid", shape="box", detect=False, regions=(given,))
    result = anonymise_image(data, None, options, regions_as_stored=as_stored)
    assert result.anonymised == [wanted]
    after = pixels(result.data)
    assert after.shape == upright.shape
    x, y, w, h = wanted
    changed = np.any(after != upright, axis=2)
    assert changed[y : y + h, x : x + w].all()
    changed[y : y + h, x : x + w] = False
    assert not changed.any()


def test_a_region_inside_the_stored_frame_but_outside_the_upright_one_is_refused() -> None:
    _, data = upright_and_sideways()
    # 40 wide as stored, 60 wide upright: x + w = 50 fits only the upright picture.
    options = Options(detect=False, regions=((30, 0, 20, 10),))
    anonymise_image(data, None, options)
    with pytest.raises(RegionsError) as refused:
        anonymise_image(data, None, options, regions_as_stored=True)
    assert refused.value.code == "regions"
    assert refused.value.details == {"problem": "outside", "region": 1}
