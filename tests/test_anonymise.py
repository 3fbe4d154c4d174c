"""The anonymisers: regions, masks, privacy of every method, and the untouched outside."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from data import ATT_FACES, COMPOSED, FACES_DEV, composed_photo, require_data
from faceblur.anonymise import (
    METHODS,
    SteadyTones,
    anonymise,
    crown_pixels,
    kept_pixels,
    kept_tones,
    outline_oval,
    region_mask,
)
from faceblur.anonymise.head import crowd_crowns
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

GROUP_PHOTO = "images/13_Interview_Interview_On_Location_13_287.jpg"
EVERY_COMBINATION = list(itertools.product(METHODS, SHAPES, STRENGTHS))


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _att(person: int, photo: int) -> np.ndarray:
    require_data()
    return _rgb(ATT_FACES / f"s{person}" / f"{photo}.pgm")


def _grey(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def photographed_group(dev_annotations) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The faces-dev group photo: a camera's softness and noise, which some measures need."""
    entry = next(e for e in dev_annotations if e["image"] == GROUP_PHOTO)
    faces = [tuple(round(v) for v in face) for face in entry["faces"]]
    return _rgb(FACES_DEV / GROUP_PHOTO), faces


@pytest.fixture(scope="module", params=["faces-dev", COMPOSED])
def group(request: pytest.FixtureRequest) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The faces-dev group photo, and five free faces 160 to 64 px high (tests/data.py)."""
    if request.param == COMPOSED:
        return composed_photo((160, 130, 100, 80, 64), size=(1040, 640))
    return request.getfixturevalue("photographed_group")


def _regions(image: np.ndarray, faces) -> list[tuple[int, int, int, int]]:
    height, width = image.shape[:2]
    return [padded_region(face, DEFAULT_PADDING, width, height) for face in faces]


def test_defaults_are_registered() -> None:
    assert DEFAULT_METHOD == "haze" and DEFAULT_METHOD in METHODS
    assert {"haze", "smudge", "blur", "pixelate", "solid"} <= set(METHODS)
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
SSIM_CEILING = {"haze": 0.6, "smudge": 0.6, "solid": 0.1, "blur": 0.6, "pixelate": 0.6}


def test_the_similarity_bar_fails_a_light_blur(photographed_group) -> None:
    image, faces = photographed_group
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


def _outline_raster(height: int, width: int, region) -> np.ndarray:
    """The oval the page draws for a region (`outline_oval`), cut by the image."""
    cx, cy, left, right, top, bottom = outline_oval(region, width, height)
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    across = (cols - cx) / np.where(cols < cx, left, right)
    down = (rows - cy) / np.where(rows < cy, top, bottom)
    return np.hypot(across, down) <= 1.0


def test_a_face_cut_by_the_frame_is_covered_up_to_the_edge() -> None:
    # A face cut by the left border: the mask reaches the border across most of the box.
    mask = region_mask(100, 100, [(0, 20, 40, 40)], "ellipse")
    assert mask[24:56, 0].all()
    assert not mask[20, 39]  # the free side keeps its curve
    # The whole frame as one region (the --whole-image case) is all of it.
    assert region_mask(50, 60, [(0, 0, 60, 50)], "ellipse").all()


@pytest.mark.parametrize("face", [(100, 10, 60, 80), (100, 2, 40, 48), (0, 100, 50, 64)])
def test_a_face_cut_by_the_frame_is_covered_as_fully_as_inside_it(face) -> None:
    """A region cut by the frame: the half of its oval away from the border is the
    inscribed oval's own (a face's chin and sides are covered as in the middle of a
    photo), the half towards it reaches farther, and the whole detected box is hidden."""
    width, height = 400, 300
    region = padded_region(face, DEFAULT_PADDING, width, height)
    x, y, w, h = region
    assert x == 0 or y == 0  # the frame cut it
    mask = region_mask(height, width, [region], "ellipse")
    fx, fy, fw, fh = face
    assert mask[fy : fy + fh, fx : fx + fw].all()
    inscribed = np.zeros_like(mask)
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    inscribed[y : y + h, x : x + w] = np.hypot(cols / (w / 2) - 1, rows / (h / 2) - 1) <= 1
    assert (mask >= inscribed).all() and mask.sum() > inscribed.sum()
    far = (
        (slice(y + h // 2, y + h), slice(x, x + w))
        if y == 0
        else (slice(y, y + h), slice(x + w // 2, x + w))
    )
    assert np.array_equal(mask[far], inscribed[far])


@pytest.mark.parametrize("method", list(METHODS))
def test_a_close_up_off_the_top_and_bottom_is_hidden_under_a_head_not_a_column(method) -> None:
    """Issue 28: a 332x460 face whose region runs off the top and the bottom of the photo.
    What changes is exactly the outline the page draws; it is curved like a head (wide in
    the middle, narrower where the frame cuts it), and its fill is shaded like one."""
    require_data()
    image = _rgb(FACES_DEV / "images/13_Interview_Interview_On_Location_13_542.jpg")
    height, width = image.shape[:2]
    face = (300, 130, 332, 460)
    region = padded_region(face, DEFAULT_PADDING, width, height)
    assert region[1] == 0 and region[1] + region[3] == height  # off the top and the bottom
    result = anonymise(image, [region], method, rng=np.random.default_rng(2))
    outline = _outline_raster(height, width, region)
    assert np.array_equal(region_mask(height, width, [region], "ellipse"), outline)
    assert np.array_equal(result[~outline], image[~outline])
    widths = outline.sum(axis=1)
    assert widths[0] < 0.9 * widths.max() and widths[-1] < 0.9 * widths.max()  # not a column
    assert widths[0] > 0.8 * region[2]  # yet covered up to the frame's edge
    if method == DEFAULT_METHOD:
        changed = np.abs(cv2.blur(_grey(result), (5, 5)) - cv2.blur(_grey(image), (5, 5))) > 12
        assert changed[outline].mean() > 0.5
        # A shaded head, not a flat fill: the middle row runs in one soft sweep, lighter
        # on the lit (left) side than on the right, with no step.
        x, _, w, _ = region
        row = cv2.GaussianBlur(_grey(result), (0, 0), 3)[height // 2, x + w // 4 : x + 3 * w // 4]
        assert np.abs(np.diff(row)).max() < 3.0
        assert row[: len(row) // 4].mean() > row[-len(row) // 4 :].mean()


def test_a_close_up_off_the_top_and_bottom_keeps_the_mean_of_its_face() -> None:
    """The one colour the default reads of that close-up comes from an oval of the face's
    size: most of it on the face, none of it at the bottom edge (the shirt), where the
    region's own outline, continued past both edges, would reach from the frame's top to
    its bottom (the mean then went grey-mauve with the shirt, wall and window)."""
    width, height = 1024, 768
    face = (300, 130, 332, 460)
    region = padded_region(face, DEFAULT_PADDING, width, height)
    assert region[1] == 0 and region[1] + region[3] == height
    rows, cols = np.nonzero(kept_pixels(region, width, height, DEFAULT_SHAPE))
    rows, cols = rows + region[1], cols + region[0]
    on_face = (rows >= face[1]) & (rows < face[1] + face[3])
    on_face &= (cols >= face[0]) & (cols < face[0] + face[2])
    assert on_face.mean() > 0.72
    assert rows.max() < height - 30 and rows.min() > 30


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


def test_smudge_without_grain_is_the_same_smooth_fill_every_time(photographed_group) -> None:
    """Video frames: a scene that does not move gets the same fill, not boiling noise."""
    image, faces = photographed_group
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
        anonymise(_att(person, 1), whole, "smudge", rng=np.random.default_rng(5))
        for person in (1, 2, 30)
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


def _with_sums(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`values` (n x 3 ints) nudged by one level at a time until each channel sums to
    `target`: other pixels, the very same sums."""
    values = values.astype(np.int64)
    for channel in range(3):
        deficit = int(target[channel] - values[:, channel].sum())
        while deficit:
            step = 1 if deficit > 0 else -1
            moved = values[:, channel] + step
            movable = np.flatnonzero((moved >= 0) & (moved <= 255))[: abs(deficit)]
            values[movable, channel] += step
            deficit -= step * len(movable)
    return values


def _apart(regions, height: int, width: int, shape: str) -> list:
    """The regions whose masks overlap no other's (each then has its own kept numbers)."""
    masks = [region_mask(height, width, [r], shape) for r in regions]
    return [
        r
        for i, r in enumerate(regions)
        if not any((masks[i] & m).any() for j, m in enumerate(masks) if j != i)
    ]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("strength", STRENGTHS)
def test_the_default_keeps_only_each_face_mean_colour(group, shape, strength) -> None:
    """Every pixel inside the regions replaced by other pixels with the same sum per channel
    over each face's core (the three numbers the default keeps), the seed kept: the very
    same output, byte for byte. Nothing else of what the regions hide gets through."""
    image, faces = group
    height, width = image.shape[:2]
    regions = _apart(_regions(image, faces), height, width, shape)
    assert len(regions) >= 3
    inside = region_mask(height, width, regions, shape)
    other = image.copy()
    other[inside] = np.random.default_rng(3).integers(0, 256, (int(inside.sum()), 3))
    for x, y, w, h in regions:
        core = np.zeros((height, width), dtype=bool)
        core[y : y + h, x : x + w] = kept_pixels((x, y, w, h), width, height, shape)
        assert core.any() and not (core & ~inside).any()
        target = image[core].sum(axis=0, dtype=np.int64)
        other[core] = _with_sums(other[core], target)
    assert (other[inside] != image[inside]).any(axis=1).mean() > 0.9
    for kept, theirs in zip(
        kept_tones(image, regions, shape), kept_tones(other, regions, shape), strict=True
    ):
        assert np.array_equal(kept, theirs)
    first = anonymise(image, regions, DEFAULT_METHOD, shape, strength, np.random.default_rng(11))
    second = anonymise(other, regions, DEFAULT_METHOD, shape, strength, np.random.default_rng(11))
    assert np.array_equal(first, second)
    outside = ~inside
    assert np.array_equal(first[outside], image[outside])
    # ...while a face of another mean colour does get another tone: the numbers are used.
    brighter = image.copy()
    brighter[inside] = np.clip(brighter[inside].astype(int) + 40, 0, 255)
    third = anonymise(brighter, regions, DEFAULT_METHOD, shape, strength, np.random.default_rng(11))
    assert _grey(third)[inside].mean() > _grey(first)[inside].mean() + 10


# Issue 28's colour-shift target for the default (bench/look.py measures the dev set).
SHIFT_MEDIAN, SHIFT_P90 = 6.0, 10.0
CROWD_PHOTO = "images/0_Parade_Parade_0_490.jpg"  # 77 faces of 20 px and up
PORTRAIT_PHOTO = "images/13_Interview_Interview_On_Location_13_542.jpg"


@pytest.mark.parametrize("shape", SHAPES)
def test_each_tone_is_the_exact_mean_of_its_core(shape) -> None:
    """The tone the default reads is each core's mean to the last bit (whole-number sums),
    for regions inside the photo, cut by its border, small and overlapping."""
    width, height = 320, 200
    image = np.random.default_rng(5).integers(0, 256, (height, width, 3), dtype=np.uint8)
    regions = [(30, 40, 90, 110), (0, 0, 60, 70), (250, 120, 70, 80), (100, 60, 5, 7)]
    regions.append((60, 50, 80, 100))  # overlaps the first
    for box, tone in zip(regions, kept_tones(image, regions, shape), strict=True):
        x, y, w, h = box
        core = kept_pixels(box, width, height, shape)
        sums = image[y : y + h, x : x + w][core].sum(axis=0, dtype=np.int64)
        assert np.array_equal(tone, sums / core.sum())


def test_a_mask_is_new_every_time() -> None:
    """Region masks are remembered between calls; a caller changing one changes no later one."""
    regions = [(30, 40, 90, 110), (0, 0, 60, 70)]
    first = region_mask(200, 320, regions, DEFAULT_SHAPE)
    expected = first.copy()
    first[:] = False
    assert np.array_equal(region_mask(200, 320, regions, DEFAULT_SHAPE), expected)
    assert expected.any()


@pytest.mark.parametrize("photo", [CROWD_PHOTO, PORTRAIT_PHOTO])
def test_the_default_keeps_the_colours_a_blurred_photo_shows(dev_annotations, photo) -> None:
    """The colour shift of bench/look.py (what a viewer sees of a face at about two cycles
    across it) stays under issue 28's target, where a flat fill or smudge scores 10 to 20.

    Each face's figure depends on its secret offset, so the photo is hidden with four
    seeds and the figures pooled: the method's figure, not one draw's."""
    from bench.look import MIN_FACE, colour_shift

    entry = next(e for e in dev_annotations if e["image"] == photo)
    image = _rgb(FACES_DEV / photo)
    faces = [tuple(round(v) for v in face) for face in entry["faces"]]
    regions = _regions(image, faces)
    big = [face for face in faces if face[3] >= MIN_FACE]
    shifts = []
    for seed in range(4):
        result = anonymise(image, regions, rng=np.random.default_rng(seed))
        shifts += [colour_shift(image, result, face) for face in big]
    assert np.median(shifts) <= SHIFT_MEDIAN, shifts
    assert np.percentile(shifts, 90) <= SHIFT_P90, shifts
    # The measure can fail: smudge, painted from the surroundings only, scores far worse.
    smudged = anonymise(image, regions, "smudge", rng=np.random.default_rng(0))
    assert np.median([colour_shift(image, smudged, face) for face in big]) > SHIFT_MEDIAN


@pytest.mark.parametrize("method", [DEFAULT_METHOD, "smudge", "blur"])
def test_a_hidden_area_meets_the_photo_without_a_halo(group, method) -> None:
    """No ring just inside the edge lighter, or darker, than both the photo just outside
    and the fill further in (bench/look.py's halo, in grey levels)."""
    from bench.look import HALO_VISIBLE, halo

    image, faces = group
    regions = _regions(image, faces)
    result = anonymise(image, regions, method, rng=np.random.default_rng(6))
    rings = [halo(image, result, region, DEFAULT_SHAPE) for region in regions]
    assert max(rings) <= HALO_VISIBLE, rings
    # ...and the measure does see a halo: a light ring drawn on the edge of each oval.
    ringed = result.copy()
    inside = region_mask(image.shape[0], image.shape[1], regions, DEFAULT_SHAPE)
    edge = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    ringed[edge] = np.clip(ringed[edge].astype(int) + 60, 0, 255)
    assert max(halo(image, ringed, region, DEFAULT_SHAPE) for region in regions) > HALO_VISIBLE


@pytest.mark.parametrize("method", [DEFAULT_METHOD, "smudge"])
def test_a_hidden_area_meets_the_photo_at_its_own_fine_scale(group, method) -> None:
    """No seam: the pixels just inside the hidden area lie about as far from those just
    outside as under a blur (bench/look.py's edge step), where a fill that met the photo
    only on its coarse grid stood two to four times further off (a sticker's outline)."""
    from bench.look import edge_step

    image, faces = group
    regions = _regions(image, faces)
    hidden = region_mask(image.shape[0], image.shape[1], regions, DEFAULT_SHAPE)
    result = anonymise(image, regions, method, rng=np.random.default_rng(1))
    blurred = anonymise(image, regions, "blur")
    assert edge_step(result, hidden) <= 1.6 * edge_step(blurred, hidden)
    # ...and the measure sees a seam: a flat fill of the photo's mean colour has one.
    flat = image.copy()
    flat[hidden] = image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    assert edge_step(flat, hidden) > 2 * edge_step(blurred, hidden)


def test_the_default_on_a_grey_photo_stays_grey() -> None:
    for regions in ([(20, 25, 50, 60)], [(0, 0, 92, 112)]):
        result = anonymise(_att(12, 7), regions)
        assert np.array_equal(result[..., 0], result[..., 1])
        assert np.array_equal(result[..., 1], result[..., 2])


def test_a_grey_photo_stays_grey_whatever_its_regions_hide() -> None:
    """Whether the output is grey follows what stays visible and the kept numbers alone:
    colour noise inside the region with the very same sums gives the very same output."""
    image = _att(12, 7)
    regions = [(20, 25, 50, 60)]
    height, width = image.shape[:2]
    inside = region_mask(height, width, regions, DEFAULT_SHAPE)
    core = np.zeros((height, width), dtype=bool)
    core[25:85, 20:70] = kept_pixels(regions[0], width, height, DEFAULT_SHAPE)
    other = image.copy()
    other[inside] = np.random.default_rng(5).integers(0, 256, (int(inside.sum()), 3))
    other[core] = _with_sums(other[core], image[core].sum(axis=0, dtype=np.int64))
    first = anonymise(image, regions, rng=np.random.default_rng(1))
    second = anonymise(other, regions, rng=np.random.default_rng(1))
    assert np.array_equal(first, second)
    assert np.array_equal(first[..., 0], first[..., 2])


def test_a_colour_face_filling_the_whole_photo_keeps_its_colour() -> None:
    """Nothing visible around a close-up that fills the frame: the head and what lies
    around it take the face's (offset) colour, not a grey field."""
    skin = np.array([190, 140, 110], dtype=np.uint8)
    image = np.tile(skin, (120, 100, 1))
    result = anonymise(image, [(0, 0, 100, 120)], rng=np.random.default_rng(3)).astype(float)
    red_minus_blue = result[..., 0] - result[..., 2]
    assert red_minus_blue.mean() > 60  # still a warm skin tone everywhere
    assert red_minus_blue.min() > 30


def test_the_default_head_has_a_darker_crown() -> None:
    """A head seen through a blur: the band above the face is darker than both the face
    and the wall around it (hair, generic: nothing of the face but its mean is read),
    while the photo around it stays as it was."""
    image = np.full((300, 300, 3), (120, 160, 200), dtype=np.uint8)  # a blue wall
    face = (110, 110, 80, 100)
    image[110:210, 110:190] = (200, 150, 120)
    height, width = image.shape[:2]
    region = padded_region(face, DEFAULT_PADDING, width, height)
    result = anonymise(image, [region], grain=False, rng=np.random.default_rng(0))
    band = slice(region[1] + region[3] // 5, region[1] + region[3] // 4)
    middle = _grey(result)[150:170, 140:160].mean()
    crown = _grey(result)[band, 140:160]
    wall = _grey(image)[0, 0]
    assert crown.mean() < min(middle, wall) - 12, (crown.mean(), middle, wall)
    outside = ~region_mask(height, width, [region], DEFAULT_SHAPE)
    assert np.array_equal(result[outside], image[outside])


WALL, SKIN = (60, 70, 80), (190, 140, 110)
WHITE_CAP = (235, 235, 230)


def _capped_crowd(count: int, cap=WHITE_CAP) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """`count` faces of one size on a dark wall, in rows, each under a cap of colour `cap`
    (the band above the face where a helmet sits); their padded regions lie apart."""
    face_w, face_h, step = 40, 52, 110
    columns = 4
    rows = -(-count // columns)
    image = np.full((rows * step + 40, columns * step + 40, 3), WALL, dtype=np.uint8)
    faces = []
    for index in range(count):
        x = 55 + (index % columns) * step
        y = 70 + (index // columns) * step
        image[y - face_h // 2 : y + face_h // 6, x - face_w // 4 : x + face_w + face_w // 4] = cap
        cv2.ellipse(
            image, (x + face_w // 2, y + face_h // 2), (face_w // 2, face_h // 2), 0, 0, 360,
            SKIN, -1,
        )  # fmt: skip
        faces.append((x, y, face_w, face_h))
    return image, _regions(image, faces)


def _crown_and_face(result: np.ndarray, region: tuple[int, int, int, int]) -> tuple[float, float]:
    """The grey level of a hidden head's crown (a band a fifth of the way down its region,
    across its middle) and of its face (a patch in the middle of the face)."""
    x, y, w, h = region
    grey = _grey(result)
    crown = grey[y + h // 5 : y + h // 4, x + 2 * w // 5 : x + 3 * w // 5].mean()
    face = grey[y + h // 2 : y + 2 * h // 3, x + 2 * w // 5 : x + 3 * w // 5].mean()
    return crown, face


def test_a_crowd_under_white_caps_gets_light_crowns() -> None:
    """A row of helmets or white caps: each head in a crowd wears the crown its
    neighbours' hidden crowns share (light here), not the generic dark one; a small group
    under the same caps keeps the generic dark crown (too few neighbours to read theirs),
    and a crowd under dark caps wears dark crowns. The first four faces lie at the same
    places in each picture and get the same draws (the same seed, in the same order)."""

    def crowns(count: int, cap=WHITE_CAP) -> list[tuple[float, float]]:
        image, regions = _capped_crowd(count, cap)
        result = anonymise(image, regions, grain=False, rng=np.random.default_rng(2))
        return [_crown_and_face(result, region) for region in regions[:4]]

    light, few, dark = crowns(8), crowns(4), crowns(8, cap=(30, 25, 20))
    for (crown, _), (generic, face), (under_dark, dark_face) in zip(light, few, dark, strict=True):
        assert generic < face - 12, (generic, face)
        assert crown > generic + 20, (crown, generic)
        assert under_dark < min(dark_face - 12, crown - 30), (under_dark, dark_face, crown)


@pytest.mark.parametrize("strength", STRENGTHS)
def test_in_a_crowd_the_default_keeps_each_face_mean_colour_and_crown_mean(strength) -> None:
    """Every pixel inside a crowd's regions replaced by other pixels with the same sums
    per channel over each face's core and over its crown (`crown_pixels`), the seed kept:
    the very same output. And a head never wears its own crown: one face's whole region
    changed (its core's sums kept) leaves what is painted in that region byte-identical."""
    image, regions = _capped_crowd(8)
    height, width = image.shape[:2]
    inside = region_mask(height, width, regions, DEFAULT_SHAPE)
    other = image.copy()
    other[inside] = np.random.default_rng(4).integers(0, 256, (int(inside.sum()), 3))
    for x, y, w, h in regions:
        for part in (kept_pixels, crown_pixels):
            pixels = np.zeros((height, width), dtype=bool)
            pixels[y : y + h, x : x + w] = part((x, y, w, h), width, height, DEFAULT_SHAPE)
            assert pixels.any() and not (pixels & ~inside).any()
            other[pixels] = _with_sums(other[pixels], image[pixels].sum(axis=0, dtype=np.int64))
    first = anonymise(image, regions, strength=strength, rng=np.random.default_rng(8))
    second = anonymise(other, regions, strength=strength, rng=np.random.default_rng(8))
    assert np.array_equal(first, second)
    # One face's region wholly other, its core's sums kept: its own head is unchanged...
    x, y, w, h = regions[5]
    alone = image.copy()
    own = np.zeros((height, width), dtype=bool)
    own[y : y + h, x : x + w] = region_mask(height, width, [regions[5]], DEFAULT_SHAPE)[
        y : y + h, x : x + w
    ]
    alone[own] = np.random.default_rng(5).integers(0, 256, (int(own.sum()), 3))
    core = np.zeros((height, width), dtype=bool)
    core[y : y + h, x : x + w] = kept_pixels(regions[5], width, height, DEFAULT_SHAPE)
    alone[core] = _with_sums(alone[core], image[core].sum(axis=0, dtype=np.int64))
    third = anonymise(alone, regions, strength=strength, rng=np.random.default_rng(8))
    assert np.array_equal(third[own], first[own])
    # ...while its neighbours' crowns are read: dark caps all round give it a dark crown.
    dark = image.copy()
    dark[(image == WHITE_CAP).all(axis=2) & ~own] = (30, 25, 20)
    fourth = anonymise(dark, regions, strength=strength, rng=np.random.default_rng(8))
    assert _crown_and_face(fourth, regions[5])[0] < _crown_and_face(first, regions[5])[0] - 30


def test_a_head_never_wears_its_own_crown() -> None:
    """`crowd_crowns` on a crowd of all-different crown colours (so every median moves
    with any one of its five): each face's crown is the same whatever its own crown is,
    and moves when a neighbour's does. Fewer than five others of about its size: none."""
    rng = np.random.default_rng(7)
    regions = [(int(x), int(y), 40, 52) for x, y in rng.integers(0, 2000, (12, 2))]
    regions += [(100, 100, 200, 260)]  # far larger than the rest: no neighbours of its size
    crowns = [rng.uniform(0, 255, 3) for _ in regions]
    drawn = crowd_crowns(regions, crowns)
    assert drawn[-1] is None and all(crown is not None for crown in drawn[:-1])
    for index in range(len(regions) - 1):
        changed = list(crowns)
        changed[index] = rng.uniform(0, 255, 3)
        again = crowd_crowns(regions, changed)
        assert np.array_equal(again[index], drawn[index])
        assert any(not np.array_equal(a, b) for a, b in zip(again[:-1], drawn[:-1], strict=True))
    assert crowd_crowns(regions[:5], crowns[:5]) == [None] * 5


def test_a_video_face_keeps_the_crown_it_first_showed() -> None:
    """A crowd's neighbours come and go: a track keeps the crown of its first frame, so it
    does not flicker when the caps around it change (or leave the frame)."""
    crowd, regions = _capped_crowd(8)
    steady = SteadyTones(seed=(5,))
    tracks = list(range(8))
    first = anonymise(crowd, regions, grain=False, tracks=tracks, steady=steady)
    # The caps turn dark where they are hidden (what is visible stays as it was).
    hidden = region_mask(crowd.shape[0], crowd.shape[1], regions, DEFAULT_SHAPE)
    dark = crowd.copy()
    dark[(crowd == WHITE_CAP).all(axis=2) & hidden] = (30, 25, 20)
    later = anonymise(dark, regions, grain=False, tracks=tracks, steady=steady)
    # The same draws for each track (the same seed), the crown read afresh: a dark one.
    fresh = anonymise(dark, regions, grain=False, tracks=tracks, steady=SteadyTones(seed=(5,)))
    for region in regions:
        crown = _crown_and_face(later, region)[0]
        assert abs(crown - _crown_and_face(first, region)[0]) < 6
        assert crown > _crown_and_face(fresh, region)[0] + 20


def test_a_video_face_keeps_its_tone_from_frame_to_frame(group) -> None:
    """One offset per track and the mean followed slowly: the fill does not flicker with
    fresh draws, nor jump when the face's own colour jitters, yet follows a lasting change."""
    image, faces = group
    regions = _regions(image, faces)[:3]
    tracks = [7, 8, 9]
    inside = region_mask(image.shape[0], image.shape[1], regions, DEFAULT_SHAPE)
    steady = SteadyTones()
    frames, fresh = [], []
    for frame in range(6):
        jitter = image.copy()
        jitter[inside] = np.clip(image[inside].astype(int) + (6 if frame % 2 else -6), 0, 255)
        frames.append(anonymise(jitter, regions, grain=False, tracks=tracks, steady=steady))
        fresh.append(anonymise(jitter, regions, grain=False))
    steps = [
        np.abs(_grey(b)[inside] - _grey(a)[inside]).mean() for a, b in itertools.pairwise(frames)
    ]
    jumps = [
        np.abs(_grey(b)[inside] - _grey(a)[inside]).mean() for a, b in itertools.pairwise(fresh)
    ]
    assert max(steps) < 2.5 and np.mean(jumps) > 3 * max(steps)
    lighter = image.copy()
    lighter[inside] = np.clip(image[inside].astype(int) + 50, 0, 255)
    for _ in range(30):
        followed = anonymise(lighter, regions, grain=False, tracks=tracks, steady=steady)
    # As far as a single render of the lighter face moves from one of the face (same draw).
    once = [
        anonymise(im, regions, grain=False, rng=np.random.default_rng(4)) for im in (image, lighter)
    ]
    moved = _grey(once[1])[inside].mean() - _grey(once[0])[inside].mean()
    assert moved > 10
    assert _grey(followed)[inside].mean() - _grey(frames[-1])[inside].mean() > 0.8 * moved


def test_a_seeded_video_draws_each_track_from_the_seed_alone(group) -> None:
    """With a seed (one secret per job and the segment's index), a track's tone and head
    come from the seed and its id, not from the order tracks showed or the call's fresh
    draw: any worker hiding the same segment paints the same pixels. Another seed, or
    another segment's index, paints another tone."""
    image, faces = group
    regions = _regions(image, faces)[:2]

    def painted(seed, earlier_tracks: list[int]) -> np.ndarray:
        steady = SteadyTones(seed=seed)
        for track in earlier_tracks:  # tracks another worker's frames showed first
            anonymise(image, regions[:1], grain=False, tracks=[track], steady=steady)
        return anonymise(image, regions, grain=False, tracks=[3, 4], steady=steady)

    first = painted((1234, 2), [])
    assert np.array_equal(first, painted((1234, 2), [9, 10, 11]))
    assert not np.array_equal(first, painted((1234, 3), []))
    assert not np.array_equal(first, painted((4321, 2), []))
