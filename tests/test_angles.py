"""Faces at any right angle: real dev photos turned, mapped back, padded on the hair side."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import FACES_DEV
from data import composed_photo, require_data
from faceblur.anonymise import region_mask
from faceblur.detection.angles import (
    TURNS,
    AngleSettings,
    AnyAngleDetector,
    face_back,
    fuse_turns,
    merge_faces,
    seen_better_turned,
    turn_image,
    upright,
)
from faceblur.detection.base import Face
from faceblur.errors import BadRequestError
from faceblur.geometry import padded_region
from faceblur.media.image import decode
from faceblur.media.photo import anonymise_image, faces_to_json, locate_faces
from faceblur.options import DEFAULT_SHAPE, DEFAULT_THRESHOLD, Options, parse_options

PORTRAIT = "images/0_Parade_Parade_0_461.jpg"  # one face, 110 px high
# Turned as bench/angles.py turns them: a face of each the upright pass draws loose.
LOOSE_UPRIGHT = "images/0_Parade_Parade_0_194.jpg"  # face 4 (68 px), turned 270
LOOSE_UNGLANCED = "images/19_Couple_Couple_19_881.jpg"  # face 1 (96 px), turned 90
GROUP = "images/0_Parade_Parade_0_382.jpg"  # six faces, 29 px and up
EXIF_ORIENTATION = 0x0112


def read_rgb(name: str) -> np.ndarray:
    require_data()
    return cv2.cvtColor(cv2.imread(str(FACES_DEV / name)), cv2.COLOR_BGR2RGB)


def truth_of(annotations: list[dict], name: str) -> list[list[float]]:
    return next(entry["faces"] for entry in annotations if entry["image"] == name)


def clockwise(rgb: np.ndarray, turn: int) -> np.ndarray:
    """The photo turned `turn` degrees clockwise, as a sideways camera would take it."""
    return np.ascontiguousarray(np.rot90(rgb, -(turn // 90)))


def box_clockwise(box, turn: int, width: int, height: int) -> list[float]:
    """A box of a width x height photo, on that photo turned `turn` degrees clockwise."""
    x, y, w, h = box
    return {
        0: [x, y, w, h],
        90: [height - y - h, x, h, w],
        180: [width - x - w, height - y - h, w, h],
        270: [y, width - x - w, h, w],
    }[turn]


def covered_count(truth, regions, width: int, height: int) -> int:
    """Faces with >= 70 % of their box inside the regions (bench/recall.py's covered)."""
    mask = region_mask(height, width, regions, DEFAULT_SHAPE)
    count = 0
    for x, y, w, h in truth:
        x1, y1, x2, y2 = int(x), int(y), int(np.ceil(x + w)), int(np.ceil(y + h))
        count += mask[y1:y2, x1:x2].sum() >= 0.7 * (x2 - x1) * (y2 - y1)
    return count


def honestly_covered(box, regions, width: int, height: int) -> bool:
    """bench/recall.py's honest covered: >= 70 % of `box` inside the regions that are each
    at most 6x its area (a region blotting out the neighbourhood covers nothing)."""
    x, y, w, h = box
    small = [r for r in regions if r[2] * r[3] <= 6 * w * h]
    return covered_count([box], small, width, height) == 1


def png_bytes(rgb: np.ndarray, orientation: int | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(rgb)
    exif = image.getexif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    image.save(out, "PNG", exif=exif.tobytes())
    return out.getvalue()


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize("turn", TURNS)
def test_a_point_of_a_turned_image_maps_back_to_the_same_pixel(turn):
    image = np.zeros((30, 50, 3), np.uint8)
    image[7, 41] = 255  # row 7, column 41
    turned = turn_image(image, turn)
    row, col = np.argwhere(turned[..., 0] == 255)[0]
    face = Face((int(col), int(row), 1, 1), 0.9, {"nose": (int(col), int(row))})
    back = face_back(face, turn, 50, 30)
    assert back.turn == turn
    assert back.box == (41, 7, 1, 1)
    assert back.landmarks["nose"] == (41, 7)


def test_merge_keeps_the_best_of_overlapping_faces_from_different_turns():
    upright_guess = Face((10, 10, 40, 50), 0.3)
    turned_find = Face((12, 11, 41, 48), 0.9, turn=90)
    elsewhere = Face((200, 10, 40, 50), 0.5)
    assert merge_faces([upright_guess, elsewhere, turned_find], 0.4) == [turned_find, elsewhere]


def merged(faces: list[Face]) -> list[Face]:
    """merge_faces with the detector's settings."""
    s = AngleSettings()
    return merge_faces(faces, s.merge_iou, s.clearer, s.tight_sure, s.fuse_cover)


def test_a_turned_find_replaces_an_upright_one_only_when_seen_clearly_better():
    """faces-dev 0_Parade_Parade_0_72: a 20-px face found upright at 0.695 was found again
    by the turned pass another face earned, at 0.706 in a box drawn for a turned head
    (27 x 26 for a 16 x 21 face); it won the merge and the face lost its match."""
    clearer = AngleSettings().clearer
    upright_find = Face((545, 378, 18, 23), 0.695)
    turned_same = Face((544, 377, 27, 26), 0.706, turn=270)
    assert merged([upright_find, turned_same]) == [upright_find]
    turned_clearly = Face((544, 377, 27, 26), 0.695 * clearer + 0.01, turn=270)
    assert merged([upright_find, turned_clearly]) == [turned_clearly]


def test_a_tighter_turned_find_wins_a_near_tie_with_a_loose_upright_one():
    """faces-dev 0_Parade_Parade_0_194 turned 270: the upright pass drew the lying 98 x 68
    face loose (134 x 87 at 0.849), the 270 pass tight (99 x 69 at 0.936). Under 1.3x the
    upright score, the turned find lost the merge, and the loose box's padded region, over
    6x the face's area, blotted out its neighbourhood instead of covering the face."""
    upright_loose = Face((163, 155, 134, 87), 0.849)
    turned_tight = Face((179, 166, 99, 69), 0.936, turn=270)
    assert merged([upright_loose, turned_tight]) == [turned_tight]
    # A tight turned find under tight_sure still needs 1.3x (faces-dev 0_Parade_Parade_0_72,
    # upright: a stray 12 x 11 box at 0.318 against an upright 12 x 15 under the threshold).
    upright_doubt = Face((24, 546, 12, 15), 0.249)
    turned_doubt = Face((24, 552, 12, 11), 0.318, turn=270)
    assert turned_doubt.score < AngleSettings().tight_sure
    assert merged([upright_doubt, turned_doubt]) == [upright_doubt]


def test_a_turn_is_worth_a_pass_when_its_glance_sees_a_face_tighter_and_clearer():
    """faces-dev 19_Couple_Couple_19_881 turned 90: the glance saw the lying face at 0.885
    in a 95 x 68 box, the upright pass at 0.779 in a loose 118 x 84: 1.14x, under 1.3x."""
    settings = AngleSettings()
    upright_loose = [Face((743, 444, 118, 84), 0.779)]
    glanced_tight = [Face((750, 454, 95, 68), 0.885, turn=90)]
    assert seen_better_turned(glanced_tight, upright_loose, settings)
    # The same score in a box no tighter: an upright face seen again sideways, no pass.
    glanced_loose = [Face((738, 440, 124, 90), 0.885, turn=90)]
    assert not seen_better_turned(glanced_loose, upright_loose, settings)


@pytest.mark.parametrize(
    ("name", "turn", "index"), [(LOOSE_UPRIGHT, 270, 4), (LOOSE_UNGLANCED, 90, 1)]
)
def test_a_turned_face_the_upright_pass_draws_loose_is_covered_tightly(
    detector, dev_annotations, name, turn, index
):
    """Two of the turned faces of 50 px and up that the 1.3x rule alone left under loose,
    uncounted regions (bench/angles.py, docs/detection.md)."""
    rgb = read_rgb(name)
    height, width = rgb.shape[:2]
    box = box_clockwise(truth_of(dev_annotations, name)[index], turn, width, height)
    found = locate_faces(png_bytes(clockwise(rgb, turn)), detector)
    assert honestly_covered(box, found.regions, found.width, found.height), found.faces


def test_an_upright_and_a_turned_find_of_one_head_fuse_into_one_region():
    """Issue 28: two ovals at right angles on one head. The boxes lie crosswise (IoU 0.39,
    under the merge threshold) but the smaller lies almost wholly inside the larger."""
    upright_find = Face((100, 100, 40, 52), 0.8)
    turned_find = Face((80, 104, 84, 56), 0.6, turn=90)
    neighbour = Face((146, 104, 40, 50), 0.7)  # a person beside, upright: stays
    other_turned = Face((300, 100, 52, 40), 0.5, turn=270)
    settings = AngleSettings()
    merged = merge_faces([upright_find, turned_find, neighbour, other_turned], settings.merge_iou)
    assert turned_find in merged  # NMS alone leaves both: the bug
    fused = fuse_turns(merged, settings.fuse_cover)
    assert fused == [upright_find, neighbour, other_turned]
    width = height = 400
    regions = [padded_region(f.box, 0.4, width, height, f.turn) for f in fused]
    assert len(regions) == 3
    # Two upright people side by side (half of the smaller box overlapping) stay two.
    pair = [Face((100, 100, 40, 52), 0.8), Face((118, 100, 40, 52), 0.7)]
    assert fuse_turns(pair, settings.fuse_cover) == pair


@pytest.mark.parametrize(
    ("turn", "side"), [(0, "top"), (90, "right"), (180, "bottom"), (270, "left")]
)
def test_hair_padding_goes_on_the_side_the_head_points_to(turn, side):
    x, y, w, h = padded_region((100, 100, 50, 50), 0.4, 1000, 1000, turn)
    margins = {"left": 100 - x, "top": 100 - y, "right": x + w - 150, "bottom": y + h - 150}
    assert margins[side] == 40
    assert all(margin == 20 for name, margin in margins.items() if name != side)


def test_upright_only_is_an_option_of_every_door():
    assert Options().upright_only is False
    assert parse_options({"upright_only": "true"}).upright_only is True
    assert parse_options({"upright_only": False}).upright_only is False
    with pytest.raises(BadRequestError, match="upright_only"):
        parse_options({"upright_only": "sideways"})


# --------------------------------------------------------------------------- real photos


@pytest.fixture(scope="module")
def group_upright(detector, dev_annotations):
    rgb = read_rgb(GROUP)
    found = locate_faces(png_bytes(rgb), detector)
    return covered_count(truth_of(dev_annotations, GROUP), found.regions, found.width, found.height)


@pytest.mark.parametrize("turn", TURNS)
def test_a_turned_group_photo_has_its_faces_covered(detector, dev_annotations, group_upright, turn):
    rgb = read_rgb(GROUP)
    height, width = rgb.shape[:2]
    truth = [box_clockwise(b, turn, width, height) for b in truth_of(dev_annotations, GROUP)]
    found = locate_faces(png_bytes(clockwise(rgb, turn)), detector)
    covered = covered_count(truth, found.regions, found.width, found.height)
    assert covered >= group_upright - 1, f"{covered} covered turned, {group_upright} upright"
    assert group_upright >= 5  # of six: the comparison is with a photo that works


@pytest.mark.parametrize("turn", TURNS)
def test_landmarks_of_a_turned_face_map_back_onto_its_eyes(detector, turn):
    rgb = read_rgb(PORTRAIT)
    (reference,) = [f for f in upright(detector).detect(rgb) if f.score >= DEFAULT_THRESHOLD]
    faces = [f for f in detector.detect(clockwise(rgb, turn)) if f.score >= DEFAULT_THRESHOLD]
    face = max(faces, key=lambda f: f.score)
    assert face.turn == turn
    # Turn the found eyes back onto the upright photo: they land on the upright eyes.
    turned_height, turned_width = clockwise(rgb, turn).shape[:2]
    for name in ("left_eye", "right_eye"):
        x, y = face.landmarks[name]
        point = box_clockwise([x, y, 0, 0], (360 - turn) % 360, turned_width, turned_height)
        expected = reference.landmarks[name]
        distance = np.hypot(point[0] - expected[0], point[1] - expected[1])
        assert distance <= 0.12 * reference.box[3], f"{name} {point[:2]} vs {expected}"


def test_a_sideways_face_is_padded_towards_its_hair(detector):
    rgb = clockwise(read_rgb(PORTRAIT), 90)  # the head now points right
    found = locate_faces(png_bytes(rgb), detector)
    sideways = [i for i, f in enumerate(found.faces) if f.turn == 90]
    assert sideways, f"no face found turned 90 degrees: {found.faces}"
    x, _, w, _ = found.faces[sideways[0]].box
    region_x, _, region_w, _ = found.regions[sideways[0]]
    assert (region_x + region_w) - (x + w) > 1.5 * (x - region_x)


def test_a_wrong_orientation_tag_does_not_leave_faces_visible(detector, dev_annotations):
    """Tag 6 on upright pixels: decoding turns the photo sideways, the faces are still hidden."""
    rgb = read_rgb(GROUP)
    height, width = rgb.shape[:2]
    data = png_bytes(rgb, orientation=6)
    shown = decode(data).pixels  # what every door shows and returns: turned 90 clockwise
    assert np.array_equal(shown, clockwise(rgb, 90))
    truth = [box_clockwise(b, 90, width, height) for b in truth_of(dev_annotations, GROUP)]
    result = anonymise_image(data, detector)
    out = decode(result.data).pixels
    assert covered_count(truth, result.regions, result.width, result.height) >= len(truth) - 1
    mask = region_mask(result.height, result.width, result.regions, DEFAULT_SHAPE)
    assert np.array_equal(out[~mask], shown[~mask])  # nothing outside the regions changed
    for x, y, w, h in truth:
        face = (slice(int(y), int(y + h)), slice(int(x), int(x + w)))
        changed = np.abs(out[face].astype(int) - shown[face].astype(int)).max(axis=2) > 8
        if mask[face].mean() >= 0.7:
            assert changed.mean() >= 0.5  # the covered face's pixels really are replaced


def test_the_off_switch_gives_the_upright_detector(detector, dev_annotations):
    rgb = clockwise(read_rgb(GROUP), 270)
    data = png_bytes(rgb)
    plain = upright(detector)
    assert isinstance(detector, AnyAngleDetector) and plain is detector.upright
    assert upright(plain) is plain
    switched_off = locate_faces(data, detector, Options(upright_only=True))
    today = [f for f in plain.detect(rgb) if f.score >= Options().threshold]
    assert switched_off.faces == today
    assert all(f.turn == 0 for f in switched_off.faces)
    switched_on = locate_faces(data, detector)
    assert len(switched_on.faces) > len(switched_off.faces)
    assert any(f.turn == 270 for f in switched_on.faces)


def test_the_json_of_a_face_says_which_way_it_lies(detector):
    """API users read the turn: on the returned (upright) pixels, and as stored."""
    rgb = read_rgb(PORTRAIT)
    lying = locate_faces(png_bytes(clockwise(rgb, 90)), detector)
    (record,) = [r for r in faces_to_json(lying) if r["score"] >= 0.5]
    assert record["turn"] == 90  # its head points right
    assert faces_to_json(lying, as_stored=True) == faces_to_json(lying)  # no tag
    # Upright pixels with tag 6: decoding turns the face to lie head right (turn 90);
    # in the pixels as stored it stands upright, and its box is the upright one.
    tagged = locate_faces(png_bytes(rgb, orientation=6), detector)
    shown = [r for r in faces_to_json(tagged) if r["score"] >= 0.5]
    stored = [r for r in faces_to_json(tagged, as_stored=True) if r["score"] >= 0.5]
    assert [r["turn"] for r in shown] == [90] and [r["turn"] for r in stored] == [0]
    (reference,) = [f for f in upright(detector).detect(rgb) if f.score >= 0.5]
    x, y, w, h = stored[0]["box"]
    rx, ry, rw, rh = reference.box
    assert abs(x + w / 2 - (rx + rw / 2)) < 0.2 * rw and abs(y + h / 2 - (ry + rh / 2)) < 0.2 * rh


def test_a_glance_boxes_the_face_in_the_turned_photos_pixels(detector):
    """The glance shrinks the photo first and turns the small copy: its boxes are still
    those of the turned photo at full size."""
    s = detector.settings
    _, (face,) = composed_photo((150,), size=(600, 900), seed=4)  # 900 px > glance_side
    turned_rgb, _ = composed_photo((150,), size=(600, 900), seed=4, turn=90)
    # Turned back 90 degrees, the face stands upright again.
    (seen,) = upright(detector).glance(turned_rgb, 90, s.glance_side, s.glance_threshold)
    x, y, w, h = seen.box
    fx, fy, fw, fh = face
    assert abs(x + w / 2 - (fx + fw / 2)) < 0.15 * fw and abs(y + h / 2 - (fy + fh / 2)) < 0.15 * fh
    assert 0.7 * fh < h < 1.5 * fh


def test_glances_beside_the_passes_see_what_they_see_one_at_a_time(detector):
    """The networks' calls run side by side (`detect_glancing`): the faces and glances are
    those of the same calls made one after the other, and so are the turns chosen."""
    rgb = clockwise(read_rgb(GROUP), 90)
    s = detector.settings
    faces, glances = upright(detector).detect_glancing(
        rgb, TURNS, s.glance_side, s.glance_threshold
    )
    assert faces == upright(detector).detect(rgb)
    alone = [
        upright(detector).glance(rgb, turn, s.glance_side, s.glance_threshold) for turn in TURNS
    ]
    assert glances == alone
    assert any(glances)  # the turned group is seen by some glance: the check compares faces
    turns = detector.turns_worth_a_pass(rgb, faces)
    assert detector.worth_a_pass(rgb, glances, faces) == turns
    assert 270 in turns  # the faces, turned 90 clockwise, stand upright turned back
