"""The anonymisers: regions, masks, privacy of every method, and the untouched outside."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from faceblur.anonymise import METHODS, anonymise, region_mask
from faceblur.errors import BadRequestError
from faceblur.geometry import padded_region
from faceblur.options import (
    DEFAULT_METHOD,
    DEFAULT_PADDING,
    DEFAULT_SHAPE,
    DEFAULT_STRENGTH,
    METHOD_INFO,
    REIDENTIFIED,
    SHAPES,
    STRENGTHS,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FACES_DEV = SHARED_DATA / "faces-dev"
ATT_FACES = SHARED_DATA / "att-faces"

GROUP_PHOTO = "images/13_Interview_Interview_On_Location_13_287.jpg"
EVERY_COMBINATION = list(itertools.product(METHODS, SHAPES, STRENGTHS))


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _att(person: int, photo: int) -> np.ndarray:
    return _rgb(ATT_FACES / f"s{person}" / f"{photo}.pgm")


def _grey(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def group(dev_annotations) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    entry = next(e for e in dev_annotations if e["image"] == GROUP_PHOTO)
    faces = [tuple(round(v) for v in face) for face in entry["faces"]]
    return _rgb(FACES_DEV / GROUP_PHOTO), faces


def _regions(image: np.ndarray, faces) -> list[tuple[int, int, int, int]]:
    height, width = image.shape[:2]
    return [padded_region(face, DEFAULT_PADDING, width, height) for face in faces]


def test_defaults_are_registered() -> None:
    assert DEFAULT_METHOD == "smudge" and DEFAULT_METHOD in METHODS
    assert {"smudge", "blur", "pixelate", "solid"} <= set(METHODS)
    assert DEFAULT_SHAPE in SHAPES and DEFAULT_STRENGTH in STRENGTHS


def test_every_method_documents_its_measured_reidentification_rate() -> None:
    assert set(METHOD_INFO) == set(REIDENTIFIED) == set(METHODS)
    for method, line in METHOD_INFO.items():
        assert "\n" not in line
        assert 0.0 <= REIDENTIFIED[method] <= 1.0
        assert f"{100 * REIDENTIFIED[method]:.1f} %" in line, f"{method}: its rate is not shown"


@pytest.mark.parametrize(("method", "shape", "strength"), EVERY_COMBINATION)
def test_pixels_outside_the_regions_are_identical(group, method, shape, strength) -> None:
    image, faces = group
    regions = _regions(image, faces)
    result = anonymise(image, regions, method, shape, strength)
    outside = ~region_mask(image.shape[0], image.shape[1], regions, shape)
    assert result.shape == image.shape and result.dtype == np.uint8
    assert np.array_equal(result[outside], image[outside])
    # ...and the faces themselves did change.
    for x, y, w, h in faces:
        assert not np.array_equal(result[y : y + h, x : x + w], image[y : y + h, x : x + w])


@pytest.mark.parametrize(("method", "shape", "strength"), EVERY_COMBINATION)
def test_input_array_is_not_mutated(group, method, shape, strength) -> None:
    image, faces = group
    before = image.copy()
    anonymise(image, _regions(image, faces), method, shape, strength)
    assert np.array_equal(image, before)


# SSIM of two smooth, unrelated images is 0.3 to 0.4 on these faces; a light 2-px blur, which
# leaves a face recognisable, scores about 0.9. Smudge must look unrelated; the classic
# methods must at least be far from recognisable to the eye (the benchmark shows they leak).
SSIM_CEILING = {"smudge": 0.6, "solid": 0.1, "blur": 0.6, "pixelate": 0.6}


def test_the_similarity_bar_fails_a_light_blur(group) -> None:
    image, faces = group
    light = cv2.GaussianBlur(image, (0, 0), 2.0)
    for x, y, w, h in faces:
        before, after = _grey(image[y : y + h, x : x + w]), _grey(light[y : y + h, x : x + w])
        assert structural_similarity(before, after, data_range=255.0) > 0.8


@pytest.mark.parametrize("method", list(METHODS))
def test_default_strength_leaves_low_structural_similarity_to_real_faces(group, method) -> None:
    image, faces = group
    result = anonymise(image, _regions(image, faces), method)
    crops = [(image, result, face) for face in faces]
    # Whole-frame AT&T faces too: the re-identification benchmark's setting.
    for person, photo in [(1, 1), (7, 3), (22, 5), (35, 9)]:
        face = _att(person, photo)
        whole = (0, 0, face.shape[1], face.shape[0])
        crops.append((face, anonymise(face, [whole], method), whole))
    for original, anonymised, (x, y, w, h) in crops:
        before = _grey(original[y : y + h, x : x + w])
        after = _grey(anonymised[y : y + h, x : x + w])
        similarity = structural_similarity(before, after, data_range=255.0)
        assert similarity < SSIM_CEILING[method], (
            f"{method}: SSIM {similarity:.2f} on face {(x, y, w, h)}"
        )


@pytest.mark.parametrize(
    ("box", "padding", "size", "expected"),
    [
        ((10, 20, 50, 100), 0.3, (200, 300), (0, 0, 75, 150)),  # clipped at 0, 0
        ((40, 80, 50, 100), 0.3, (200, 300), (25, 20, 80, 190)),  # inside: 1.6x across, 1.9x down
        ((40, 50, 50, 100), 0.0, (200, 300), (40, 50, 50, 100)),  # no padding: the box
        ((170, 250, 50, 100), 0.3, (200, 300), (155, 190, 45, 110)),  # runs off right, bottom
        ((-30, -40, 50, 60), 0.3, (200, 300), (0, 0, 35, 38)),  # starts outside top-left
        ((250, 50, 20, 20), 0.3, (200, 300), (200, 38, 0, 38)),  # wholly right of the image
        ((50, -100, 20, 20), 0.3, (200, 300), (44, 0, 32, 0)),  # wholly above
        ((50, 50, 0, 0), 0.3, (200, 300), (50, 50, 0, 0)),  # zero-size box stays empty
        ((50, 50, 0, 10), 0.5, (200, 300), (50, 40, 0, 25)),  # zero width
        ((0, 0, 200, 300), 0.3, (200, 300), (0, 0, 200, 300)),  # whole frame
        ((10.4, 10.6, 20.2, 20.2), 0.0, (200, 300), (10, 10, 21, 21)),  # floats: grow, never cut
    ],
)
def test_padded_region_grows_and_clips(box, padding, size, expected) -> None:
    width, height = size
    assert padded_region(box, padding, width, height) == expected


def test_negative_padding_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="padding"):
        padded_region((10, 10, 10, 10), -0.1, 100, 100)


def test_ellipse_mask_is_inscribed_in_the_box() -> None:
    mask = region_mask(100, 100, [(20, 30, 40, 20)], "ellipse")
    assert mask[40, 40] and mask[31, 40] and mask[40, 21]  # centre and the middle of each side
    assert not mask[30, 20] and not mask[49, 59]  # corners are outside the ellipse
    assert not mask[:30].any() and not mask[50:].any()
    assert not mask[:, :20].any() and not mask[:, 60:].any()
    box = region_mask(100, 100, [(20, 30, 40, 20)], "box")
    assert box.sum() == 40 * 20 and box[30:50, 20:60].all()
    assert mask.sum() == pytest.approx(np.pi * 20 * 10, rel=0.05)


def test_ellipse_is_squared_off_where_the_frame_cut_the_face() -> None:
    # A face cut by the left border: the border side of the mask reaches the corners.
    mask = region_mask(100, 100, [(0, 20, 40, 40)], "ellipse")
    assert mask[20:60, 0].all()
    assert not mask[20, 39]  # the free side keeps its curve
    # The whole frame as one region (the --whole-image case) is all of it.
    assert region_mask(50, 60, [(0, 0, 60, 50)], "ellipse").all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "regions", [[], [(10, 10, 0, 0)], [(10, 10, 0, 20)], [(500, 500, 20, 20)], [(-50, 5, 20, 20)]]
)
def test_empty_or_outside_regions_change_nothing(regions, shape) -> None:
    image = _att(3, 2)
    assert not region_mask(image.shape[0], image.shape[1], regions, shape).any()
    for method in METHODS:
        assert np.array_equal(anonymise(image, regions, method, shape), image)


def test_regions_partly_outside_are_clipped(group) -> None:
    image, _ = group
    height, width = image.shape[:2]
    regions = [(-40, -40, 120, 120), (width - 60, height - 60, 200, 200)]
    result = anonymise(image, regions, "solid", "box", "high")
    assert (result[:80, :80] == 0).all() and (result[-60:, -60:] == 0).all()
    assert np.array_equal(result[100:-100, 100:-100], image[100:-100, 100:-100])


def test_blur_kernel_scales_with_the_face() -> None:
    """A face four times larger ends up just as blurred, relative to its size."""
    small = _att(5, 1)
    large = np.asarray(Image.fromarray(small).resize((92 * 4, 112 * 4), Image.BICUBIC))

    def blurred(image):
        return anonymise(image, [(0, 0, image.shape[1], image.shape[0])], "blur", "box")

    shrunk = np.asarray(Image.fromarray(blurred(large)).resize((92, 112), Image.BILINEAR))
    difference = np.abs(_grey(shrunk) - _grey(blurred(small)))
    assert difference.mean() < 3.0
    # A fixed kernel would leave the large face four times sharper, relative to its size.
    fixed = np.asarray(
        Image.fromarray(cv2.GaussianBlur(large, (0, 0), 3.0)).resize((92, 112), Image.BILINEAR)
    )
    assert np.abs(_grey(fixed) - _grey(blurred(small))).mean() > 3 * difference.mean()


@pytest.mark.parametrize("size", [48, 120, 400])
@pytest.mark.parametrize("strength", STRENGTHS)
def test_pixelate_uses_a_fixed_number_of_blocks(size, strength) -> None:
    noise = np.random.default_rng(size).integers(0, 256, (size + 20, size + 20, 3), dtype=np.uint8)
    result = anonymise(noise, [(10, 10, size, size)], "pixelate", "box", strength)
    face = result[10 : 10 + size, 10 : 10 + size].astype(int)
    column_edges = np.any(np.diff(face, axis=1) != 0, axis=(0, 2)).sum()
    row_edges = np.any(np.diff(face, axis=0) != 0, axis=(1, 2)).sum()
    expected = METHODS["pixelate"].blocks[strength]
    assert column_edges + 1 == expected and row_edges + 1 == expected


def test_solid_fills_one_colour() -> None:
    image = _att(9, 4)
    regions = [(20, 20, 40, 40)]
    for strength in STRENGTHS:
        region = anonymise(image, regions, "solid", "box", strength)[20:60, 20:60]
        assert len(np.unique(region.reshape(-1, 3), axis=0)) == 1


def test_smudge_differs_between_two_calls_on_the_same_input(group) -> None:
    image, faces = group
    regions = _regions(image, faces)
    for strength in STRENGTHS:
        first = anonymise(image, regions, "smudge", strength=strength)
        second = anonymise(image, regions, "smudge", strength=strength)
        for x, y, w, h in faces:
            assert not np.array_equal(first[y : y + h, x : x + w], second[y : y + h, x : x + w])


def test_smudge_without_grain_is_the_same_smooth_fill_every_time(group) -> None:
    """Video frames: a scene that does not move gets the same fill, not boiling noise."""
    image, faces = group
    regions = _regions(image, faces)
    first = anonymise(image, regions, "smudge", grain=False)
    second = anonymise(image, regions, "smudge", grain=False)
    assert np.array_equal(first, second)
    grainy = anonymise(image, regions, "smudge")
    inside = region_mask(image.shape[0], image.shape[1], regions, DEFAULT_SHAPE)
    outside = ~inside
    assert np.array_equal(first[outside], image[outside])
    # The grain is the fill's only fine detail: without it the Laplacian inside is ~flat
    # (a 1 px blur first puts the rounding to whole grey levels out of the way).
    deep = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)

    def fine(result: np.ndarray) -> float:
        soft = cv2.GaussianBlur(_grey(result), (0, 0), 1.0)
        return float(cv2.Laplacian(soft, cv2.CV_64F)[deep].var())

    assert fine(first) < 0.2 * fine(grainy)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("strength", STRENGTHS)
def test_smudge_keeps_nothing_of_what_it_hides(group, shape, strength) -> None:
    """Every pixel inside the regions replaced, the rest and the seed kept: the same output."""
    image, faces = group
    regions = _regions(image, faces)
    inside = region_mask(image.shape[0], image.shape[1], regions, shape)
    other = image.copy()
    other[inside] = np.random.default_rng(3).integers(0, 256, (int(inside.sum()), 3))
    first = anonymise(image, regions, "smudge", shape, strength, np.random.default_rng(11))
    second = anonymise(other, regions, "smudge", shape, strength, np.random.default_rng(11))
    assert np.array_equal(first, second)
    # The whole photo as one region: only the seed is left to draw from.
    whole = [(0, 0, 92, 112)]
    faces_drawn = [
        anonymise(_att(person, 1), whole, rng=np.random.default_rng(5)) for person in (1, 2, 30)
    ]
    assert all(np.array_equal(faces_drawn[0], drawn) for drawn in faces_drawn[1:])


def _two_tone_scene(seed: int = 0) -> np.ndarray:
    """A dark wall on the left, a light one on the right, a noisy 'face' straddling both."""
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    image[:, :160] = (60, 70, 80)
    image[:, 160:] = (200, 190, 170)
    image[60:180, 100:220] = np.random.default_rng(seed).integers(0, 256, (120, 120, 3))
    return image


def _smoothed(image: np.ndarray) -> np.ndarray:
    """Grey levels averaged 5x5: the fill's fine grain out of the way, edges kept."""
    return cv2.blur(_grey(image), (5, 5))


def test_smudge_paints_overlapping_regions_as_one_seamless_fill() -> None:
    image = _two_tone_scene()
    regions = [(90, 50, 90, 140), (140, 50, 90, 140)]  # two ovals, half over each other
    result = anonymise(image, regions, "smudge")
    inside = region_mask(240, 320, regions, "ellipse")
    deep = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    smooth = _smoothed(result)
    steps = np.maximum(
        np.abs(np.diff(smooth, axis=1, append=smooth[:, -1:])),
        np.abs(np.diff(smooth, axis=0, append=smooth[-1:])),
    )
    # From 65 to 190 across 140 pixels: about one level a pixel. An edge between two
    # fills (or the wall's own edge carried in) would be a step of tens of levels.
    assert steps[deep].max() < 4.0
    # ...and it runs from the dark wall's tone to the light one's, as a blur of them would.
    row = smooth[120]
    assert row[95] < 90 and row[225] > 160 and np.all(np.diff(row[95:226]) > -1.0)


def test_smudge_meets_the_photo_without_a_step() -> None:
    image = _two_tone_scene()
    regions = [(100, 60, 120, 120)]
    result = anonymise(image, regions, "smudge")
    inside = region_mask(240, 320, regions, "ellipse")
    ring = cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~inside
    edge = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    # Just inside the oval the fill has the tone of the wall just outside it.
    for rows in (slice(0, 120), slice(120, 240)):
        for cols in (slice(0, 160), slice(160, 320)):
            part_ring, part_edge = ring[rows, cols], edge[rows, cols]
            if part_ring.sum() > 20 and part_edge.sum() > 20:
                outside = _grey(result[rows, cols])[part_ring].mean()
                assert abs(_grey(result[rows, cols])[part_edge].mean() - outside) < 20


@pytest.mark.parametrize("regions", [[(20, 25, 50, 60)], [(0, 0, 92, 112)]])
def test_smudge_on_a_grey_photo_stays_grey(regions) -> None:
    result = anonymise(_att(12, 7), regions)
    assert np.array_equal(result[..., 0], result[..., 1])
    assert np.array_equal(result[..., 1], result[..., 2])


def _portrait(skin, hair, wall) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A head (hair, face, ears), neck and shoulders before a wall; and the face's box."""
    image = np.empty((300, 240, 3), dtype=np.uint8)
    image[:] = wall
    cv2.ellipse(image, (120, 130), (62, 82), 0, 0, 360, hair, -1)
    cv2.rectangle(image, (95, 170), (145, 260), skin, -1)  # neck
    cv2.ellipse(image, (120, 300), (110, 60), 0, 180, 360, (40, 60, 120), -1)  # shoulders
    cv2.ellipse(image, (120, 140), (46, 62), 0, 0, 360, skin, -1)  # face
    image = cv2.add(image, np.random.default_rng(1).integers(0, 12, image.shape, np.uint8))
    return image, (80, 95, 80, 95)


@pytest.mark.parametrize("wall", [(225, 225, 220), (120, 120, 120), (40, 40, 50)])
def test_smudge_takes_its_tone_from_the_skin_and_hair_left_visible(wall) -> None:
    """No light oval on a dark face (on a light wall too), no dark one on a light face."""
    dark_skin, light_skin = _grey(np.array((88, 58, 44))), _grey(np.array((236, 196, 168)))
    filled = {}
    for name, skin in [("dark", (88, 58, 44)), ("light", (236, 196, 168))]:
        image, face = _portrait(skin, (25, 20, 18), wall)
        region = padded_region(face, 0.25, 240, 300)
        result = anonymise(image, [region], "smudge")
        x, y, w, h = face
        filled[name] = _grey(result[y : y + h, x : x + w]).mean()
    assert abs(filled["dark"] - dark_skin) < abs(filled["dark"] - light_skin) - 40
    # Dark hair on a dark wall pulls a light face down a little, as a blur would.
    assert abs(filled["light"] - light_skin) < abs(filled["light"] - dark_skin)


def test_smudge_colours_come_from_the_spot_in_the_photo(group) -> None:
    """Each face's fill has a colour seen around it: its surroundings' or its people's skin."""
    image, faces = group
    regions = _regions(image, faces)
    result = anonymise(image, regions, "smudge")
    inside = region_mask(image.shape[0], image.shape[1], regions, "ellipse")
    for (x, y, w, h), (rx, ry, rw, rh) in zip(faces, regions, strict=True):
        around = (slice(max(ry - rh, 0), ry + 2 * rh), slice(max(rx - rw, 0), rx + 2 * rw))
        seen = image[around][~inside[around]].astype(float)
        low, high = np.percentile(seen, [5, 95], axis=0)
        fill = result[y : y + h, x : x + w].reshape(-1, 3).astype(float).mean(axis=0)
        assert np.all((fill >= low) & (fill <= high)), (fill, low, high)
        # Soft: no detail left (mean step of a few levels per pixel at most).
        assert np.abs(np.diff(_grey(result[y : y + h, x : x + w]), axis=1)).mean() < 4.0


@pytest.mark.parametrize(
    ("argument", "value"), [("method", "gaussian"), ("shape", "circle"), ("strength", "max")]
)
def test_unknown_names_are_bad_requests_listing_the_choices(argument, value) -> None:
    image = _att(1, 1)
    with pytest.raises(BadRequestError) as raised:
        anonymise(image, [(0, 0, 10, 10)], **{argument: value})
    choices = {"method": METHODS, "shape": SHAPES, "strength": STRENGTHS}[argument]
    assert all(choice in str(raised.value) for choice in choices)
    assert isinstance(raised.value, ValueError) and raised.value.status == 400


def test_wrong_image_layout_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError):
        anonymise(np.zeros((10, 10), dtype=np.uint8), [(0, 0, 5, 5)])


@pytest.mark.parametrize("face", [(40, 80, 50, 100), (100, 150, 80, 80), (10, 60, 30, 45)])
def test_default_ellipse_covers_the_whole_detected_box(face) -> None:
    region = padded_region(face, DEFAULT_PADDING, 300, 400)
    mask = region_mask(400, 300, [region], "ellipse")
    x, y, w, h = face
    assert mask[y : y + h, x : x + w].all()
    assert mask[:y].any()  # and reaches above it, over the hair line
