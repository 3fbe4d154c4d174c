"""The core behaviours on free pictures only, so they hold on any clone of the repository.

Every picture here is composed from scikit-image's astronaut (tests/data.py): faces pasted
at known places and sizes, darkened, turned, filmed. The same behaviours are measured on
the licensed benchmark photos elsewhere; these tests never skip for want of them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import ExifTags, Image
from test_handler import assert_anonymised, assert_stored, bad_requests
from test_video import assert_faces_hidden, audio_packets

from bench.clips import make_clip
from data import ASTRONAUT_FACE, astronaut, composed_photo, encoded
from faceblur.anonymise import anonymise, region_mask
from faceblur.cli.main import main
from faceblur.media.container import probe
from faceblur.media.photo import anonymise_image, locate_faces
from faceblur.media.video import anonymise_video
from faceblur.options import Options

Box = tuple[int, int, int, int]


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    across = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    down = max(0, min(ay + ah, by + bh) - max(ay, by))
    return across * down / (aw * ah + bw * bh - across * down)


@pytest.fixture(scope="module")
def crowd() -> tuple[np.ndarray, list[Box]]:
    """Five faces from 140 down to 32 px high."""
    return composed_photo((140, 100, 70, 48, 32), size=(900, 420))


def test_the_astronaut_face_is_where_the_builders_put_it(detector) -> None:
    best = max(detector.detect(astronaut()), key=lambda face: face.score)
    assert iou(best.box, ASTRONAUT_FACE) > 0.8


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
@pytest.mark.parametrize("brightness", [1.0, 0.35])
def test_every_face_it_was_given_is_found(detector, turn: int, brightness: float) -> None:
    picture, truth = composed_photo((120, 80, 50, 30), brightness=brightness, turn=turn)
    found = locate_faces(encoded(picture), detector)
    boxes = [face.box for face in found.faces]
    for box in truth:
        assert max((iou(box, b) for b in boxes), default=0) >= 0.5, f"{box} not in {boxes}"
    assert len(boxes) <= len(truth) + 1, f"the backdrop holds no faces: {boxes}"


def test_outside_the_regions_nothing_moves_and_every_face_changes(detector, crowd) -> None:
    picture, truth = crowd
    original = encoded(picture)
    result = anonymise_image(original, detector)
    assert len(result.faces) >= len(truth)
    for box in truth:
        assert_anonymised(original, result.data, box, result.regions)


def test_the_surroundings_only_choice_keeps_nothing_of_the_faces(detector, crowd) -> None:
    """Whatever the faces were, smudge's output is the same: the same draw over noise. (The
    default, haze, keeps each face's mean colour and nothing else: test_anonymise.py's
    test_the_default_keeps_only_each_face_mean_colour proves it on a composed photo too.)"""
    picture, _ = crowd
    regions = locate_faces(encoded(picture), detector).regions
    inside = region_mask(picture.shape[0], picture.shape[1], regions, Options().shape)
    other = picture.copy()
    other[inside] = np.random.default_rng(3).integers(0, 256, (int(inside.sum()), 3))
    first = anonymise(picture, regions, "smudge", rng=np.random.default_rng(11))
    second = anonymise(other, regions, "smudge", rng=np.random.default_rng(11))
    assert np.array_equal(first, second)
    assert not np.array_equal(first[inside], picture[inside])


def test_location_and_comments_do_not_survive_the_pipeline(detector, crowd) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    source = encoded(crowd[0], "JPEG", exif=exif, comment=b"at home")
    assert b"at home" in source and b"Exif\x00\x00" in source  # the input really has them
    result = anonymise_image(source, detector).data
    assert b"at home" not in result and b"Exif\x00\x00" not in result
    with Image.open(io.BytesIO(result)) as anonymised:
        assert anonymised.format == "JPEG" and not anonymised.getexif()


# -- the doors ---------------------------------------------------------------------------


@pytest.fixture
def url(function_server: str) -> str:
    return f"{function_server}/function/faceblur"


def test_the_function_hides_composed_faces_and_stores_the_pair(s3, url, crowd) -> None:
    picture, truth = crowd
    original = encoded(picture)
    response = requests.post(url, data=original, headers={"Content-Type": "image/png"}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_stored(s3, body, original)
    result = s3.store().read("results", body["result_key"])
    for box in truth:
        assert_anonymised(original, result, box, [face["region"] for face in body["faces"]])


def test_the_function_answers_every_bad_input_and_stores_nothing(s3, url, crowd) -> None:
    before = s3.snapshot()
    for name, (request, status) in bad_requests(encoded(crowd[0], "JPEG")).items():
        response = requests.post(url, timeout=120, **request)
        assert response.status_code == status, (name, response.text)
        assert isinstance(response.json()["error"], str), name
        assert s3.snapshot() == before, name


def test_the_cli_detects_and_blurs_a_folder_of_composed_photos(tmp_path: Path, capsys) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    truths = {}
    for name, heights in (("two.png", (130, 60)), ("dark.png", (90,))):
        picture, truths[name] = composed_photo(heights, brightness=0.5 if "dark" in name else 1)
        (inbox / name).write_bytes(encoded(picture))

    assert main(["detect", "--json", str(inbox)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(Path(r["path"]).name for r in records) == sorted(truths)
    assert main(["blur", str(inbox), "-o", str(out)]) == 0
    for record in records:
        name = Path(record["path"]).name
        found = [face["box"] for face in record["faces"]]
        regions = [face["region"] for face in record["faces"]]
        for box in truths[name]:
            assert max(iou(box, b) for b in found) >= 0.5
            assert_anonymised((inbox / name).read_bytes(), (out / name).read_bytes(), box, regions)


@pytest.mark.video
def test_a_composed_clip_keeps_its_frames_and_sound_and_loses_its_faces(
    tmp_path: Path, detector
) -> None:
    picture, faces = composed_photo((150, 110, 80), size=(820, 460))
    source, result = tmp_path / "clip.mp4", tmp_path / "out.mp4"
    truth = make_clip(picture, faces, source, (640, 360), frames=6, rate=24)
    outcome = anonymise_video(source, result, detector)
    before, after = probe(source), probe(result)
    assert outcome.frames == 6 and (after.width, after.height) == (before.width, before.height)
    assert after.rate == before.rate
    copied = audio_packets(result)
    assert copied and copied == audio_packets(source)
    assert assert_faces_hidden(source, result, truth) >= 3 * 6
