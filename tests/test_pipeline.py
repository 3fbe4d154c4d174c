"""The pipeline end to end on real photos: every known face hidden, nothing else touched."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import FACES_DEV
from data import composed_photo, encoded, require_data
from faceblur.anonymise import region_mask
from faceblur.errors import NotAnImageError, TooLargeError
from faceblur.geometry import padded_region
from faceblur.media.image import decode
from faceblur.media.photo import anonymise_image, anonymise_whole_image, faces_to_json, locate_faces
from faceblur.options import Options, parse_options


def as_png(path) -> bytes:
    out = io.BytesIO()
    with Image.open(path) as photo:
        photo.convert("RGB").save(out, "PNG")
    return out.getvalue()


def box_coverage(box, mask: np.ndarray) -> float:
    x, y, w, h = (int(round(v)) for v in box)
    inside = mask[max(y, 0) : y + h, max(x, 0) : x + w]
    return float(inside.mean()) if inside.size else 0.0


@pytest.fixture(scope="module")
def small_group(dev_annotations) -> dict:
    """A real photo with a few faces, all at least 40 px high."""
    for entry in dev_annotations:
        faces = entry["faces"]
        if 2 <= len(faces) <= 5 and min(h for _, _, _, h in faces) >= 40 and not entry["ignore"]:
            return entry
    raise AssertionError("faces-dev has no small group photo")


def test_every_known_face_is_hidden_and_nothing_else_changes(detector, small_group) -> None:
    data = as_png(FACES_DEV / small_group["image"])
    result = anonymise_image(data, detector)
    original, anonymised = decode(data).pixels, decode(result.data).pixels
    assert result.format == "PNG" and result.mime_type == "image/png"
    assert (result.width, result.height) == (small_group["width"], small_group["height"])
    assert len(result.faces) >= len(small_group["faces"])

    mask = region_mask(result.height, result.width, result.regions, Options().shape)
    for box in small_group["faces"]:
        assert box_coverage(box, mask) >= 0.9
        x, y, w, h = (int(v) for v in box)
        assert (
            np.abs(
                anonymised[y : y + h, x : x + w].astype(int) - original[y : y + h, x : x + w]
            ).mean()
            > 10
        ), "a known face is still there"
    assert np.array_equal(anonymised[~mask], original[~mask])


def test_locate_faces_agrees_with_anonymise_image(detector, small_group) -> None:
    data = (FACES_DEV / small_group["image"]).read_bytes()
    found = locate_faces(data, detector)
    result = anonymise_image(data, detector, Options(method="solid"))
    assert [f.box for f in found.faces] == [f.box for f in result.faces]
    assert found.regions == result.regions


def test_every_region_is_its_face_grown_by_the_padding(detector, dev_annotations) -> None:
    """No crowd rule: in a real crowd each region is its own face's box plus the padding."""
    crowd = next(e for e in dev_annotations if e["image"].endswith("0_Parade_Parade_0_317.jpg"))
    data = (FACES_DEV / crowd["image"]).read_bytes()
    for padding in (Options().padding, 1.2):
        found = locate_faces(data, detector, Options(padding=padding))
        assert len(found.faces) >= 3
        assert found.regions == [
            padded_region(face.box, padding, found.width, found.height) for face in found.faces
        ]


def test_faces_json_is_plain_json_with_region_around_box(detector, small_group) -> None:
    found = locate_faces((FACES_DEV / small_group["image"]).read_bytes(), detector)
    records = faces_to_json(found)
    assert json.loads(json.dumps(records)) == records
    for record in records:
        assert set(record) == {"box", "region", "score", "turn", "landmarks"}
        assert record["turn"] in (0, 90, 180, 270)
        assert all(type(v) is int for v in record["box"] + record["region"])
        bx, by, bw, bh = record["box"]
        rx, ry, rw, rh = record["region"]
        assert rx <= bx and ry <= by and rx + rw >= bx + bw and ry + rh >= by + bh
        assert 0.0 <= record["score"] <= 1.0


def test_threshold_one_keeps_fewer_faces(detector, small_group) -> None:
    data = (FACES_DEV / small_group["image"]).read_bytes()
    everything = locate_faces(data, detector, parse_options({"threshold": 1.0}))
    assert len(everything.faces) <= len(locate_faces(data, detector).faces)
    assert all(face.score >= 1.0 for face in everything.faces)


def test_whole_image_mode_changes_the_frame_without_detection() -> None:
    require_data()
    data = (FACES_DEV.parent / "att-faces" / "s1" / "1.pgm").read_bytes()
    result = anonymise_whole_image(data, Options(shape="box"))
    assert result.faces == [] and result.anonymised == [(0, 0, 92, 112)]
    assert result.format == "PPM"
    before, after = decode(data).pixels, decode(result.data).pixels
    assert np.abs(after.astype(int) - before).mean() > 10


def test_errors_come_out_typed_before_any_detection(detector) -> None:
    with pytest.raises(NotAnImageError):
        anonymise_image(b"definitely not a photo", detector)
    data = encoded(composed_photo()[0], "JPEG")
    with pytest.raises(TooLargeError):
        anonymise_image(data, detector, max_pixels=1000)
