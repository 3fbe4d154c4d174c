"""The `faceblur` command end to end, as a user runs it (the installed console script)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ATT_FACES, FACES_DEV
from data import require_data
from faceblur.anonymise import region_mask
from faceblur.cli.main import main
from faceblur.media.image import decode
from faceblur.options import METHOD_INFO, METHOD_NAMES, Options
from faceblur.orientation import box_as_shown, box_as_stored

FACEBLUR = Path(sys.executable).parent / "faceblur"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(FACEBLUR), *args], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def photos(dev_annotations) -> list[dict]:
    """Two real photos with a handful of clear faces each."""
    chosen = [
        entry
        for entry in dev_annotations
        if 1 <= len(entry["faces"]) <= 4 and min(h for *_, h in entry["faces"]) >= 50
    ]
    assert len(chosen) >= 2
    return chosen[:2]


def png_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as photo:
        photo.convert("RGB").save(target, "PNG")


def test_blur_a_folder_skips_a_bad_file_and_hides_every_known_face(
    tmp_path: Path, photos: list[dict]
) -> None:
    inbox, outdir = tmp_path / "in", tmp_path / "out"
    png_copy(FACES_DEV / photos[0]["image"], inbox / "first.png")
    png_copy(FACES_DEV / photos[1]["image"], inbox / "nested" / "second.png")
    (inbox / "broken.jpg").write_text("this is not a photo")

    done = run("blur", str(inbox), "-o", str(outdir))

    assert done.returncode == 1, "a failed file must make the batch fail"
    assert "broken.jpg" in done.stderr and "[not_an_image]" in done.stderr
    assert "2 photo(s) anonymised" in done.stderr and "1 failed" in done.stderr
    assert sorted(p.relative_to(outdir).as_posix() for p in outdir.rglob("*.png")) == [
        "first.png",
        "nested/second.png",
    ]

    listing = run("detect", str(inbox / "first.png"), str(inbox / "nested"), "--json")
    records = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["first.png", "second.png"]
    for record, entry, result in zip(
        records, photos, [outdir / "first.png", outdir / "nested" / "second.png"], strict=True
    ):
        assert (record["width"], record["height"]) == (entry["width"], entry["height"])
        regions = [tuple(face["region"]) for face in record["faces"]]
        assert len(regions) >= len(entry["faces"])
        mask = region_mask(record["height"], record["width"], regions, Options().shape)
        for x, y, w, h in entry["faces"]:
            assert mask[int(y) : int(y + h), int(x) : int(x + w)].mean() >= 0.9
        original = decode(Path(record["path"]).read_bytes()).pixels
        anonymised = decode(result.read_bytes()).pixels
        assert np.array_equal(anonymised[~mask], original[~mask])
        assert not np.array_equal(anonymised[mask], original[mask])


def test_detect_json_lines_have_exactly_the_documented_fields(tmp_path: Path, photos) -> None:
    photo = FACES_DEV / photos[0]["image"]
    done = run("detect", str(photo), "--json")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    record = json.loads(line)
    assert set(record) == {"path", "width", "height", "faces"}
    assert record["path"] == str(photo)
    for face in record["faces"]:
        assert set(face) == {"box", "region", "score", "turn", "landmarks"}
        assert len(face["box"]) == 4 and len(face["region"]) == 4


def test_whole_image_mode_keeps_names_and_needs_no_detector(tmp_path: Path, capsys) -> None:
    require_data()
    sources = [ATT_FACES / "s1" / "1.pgm", ATT_FACES / "s2" / "1.pgm"]
    code = main(["blur", "--whole-image", *map(str, sources), "-o", str(tmp_path)])
    assert code == 1, "two photos with one name must not overwrite each other silently"
    assert "[already_written]" in capsys.readouterr().err
    assert decode((tmp_path / "1.pgm").read_bytes()).width == 92
    (tmp_path / "1.pgm").unlink()
    code = main(["blur", "--whole-image", str(ATT_FACES / "s1"), "-o", str(tmp_path)])
    assert code == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in (ATT_FACES / "s1").iterdir() if p.suffix == ".pgm")
    before = decode((ATT_FACES / "s1" / "3.pgm").read_bytes()).pixels
    after = decode((tmp_path / "3.pgm").read_bytes()).pixels
    assert after.shape == before.shape and np.abs(after.astype(int) - before).mean() > 10
    assert "photo(s) anonymised" in capsys.readouterr().err


def test_help_explains_every_method_with_its_measured_risk(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["blur", "--help"])
    assert done.value.code == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    for name in METHOD_NAMES:
        assert f"{name}: {METHOD_INFO[name]}" in lines


@pytest.mark.parametrize(
    "args,message",
    [
        (["blur", "x.png", "--padding", "wide"], "[bad_option option=padding]"),
        (["detect", "x.png", "--padding", "-1"], "[bad_option option=padding]"),
        (["detect", "x.png", "--crowd-padding", "1.2"], "--crowd-padding"),
        (["blur", "x.png", "--threshold", "2"], "[bad_option option=threshold]"),
        (["blur", "x.png", "--method", "smear"], "'smear'"),
        (["detect"], "PATH"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_inputs_fail_without_loading_anything(tmp_path: Path, capsys) -> None:
    assert main(["blur", "--whole-image", str(tmp_path / "nothing-*.jpg")]) == 1
    assert "[no_input]" in capsys.readouterr().err


def test_never_overwrites_the_original(tmp_path: Path) -> None:
    image = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(image, "PNG")
    photo = tmp_path / "me.png"
    photo.write_bytes(image.getvalue())
    assert main(["blur", "--whole-image", str(photo), "-o", str(tmp_path)]) == 1
    assert photo.read_bytes() == image.getvalue()


def sideways_png(source: Path, target: Path) -> np.ndarray:
    """`source` stored turned, as a phone stores a portrait photo (EXIF orientation 6);
    returns the upright pixels a viewer shows."""
    with Image.open(source) as photo:
        upright = photo.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # the viewer turns the stored pixels 90 degrees clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(target, "PNG", exif=exif)
    return np.asarray(upright)


def test_detect_edit_blur_round_trip_on_a_sideways_photo(tmp_path: Path, dev_annotations) -> None:
    entry = next(
        e
        for e in dev_annotations
        if 2 <= len(e["faces"]) <= 4 and min(h for *_, h in e["faces"]) >= 60 and not e["ignore"]
    )
    photo = tmp_path / "phone.png"
    upright = sideways_png(FACES_DEV / entry["image"], photo)
    height, width = upright.shape[:2]

    listing = run("detect", str(photo), "--json")
    assert listing.returncode == 0, listing.stderr
    record = json.loads(listing.stdout)
    assert (record["width"], record["height"]) == (height, width), "sizes are as stored"
    # The person's edit: keep every face but the one nearest the first known face, and
    # add a region of their own, all in the stored pixels detect printed.
    kept_x, kept_y, kept_w, kept_h = (int(v) for v in entry["faces"][0])
    stored_kept = box_as_stored((kept_x, kept_y, kept_w, kept_h), width, height, 6)

    def overlap(face: dict) -> int:
        x, y, w, h = face["region"]
        sx, sy, sw, sh = stored_kept
        return max(0, min(x + w, sx + sw) - max(x, sx)) * max(0, min(y + h, sy + sh) - max(y, sy))

    dropped = max(record["faces"], key=overlap)
    assert overlap(dropped) > 0, "the first known face was found"
    record["faces"] = [face for face in record["faces"] if face is not dropped]
    added = [5, 7, 30, 20]
    record["faces"].append({"region": added})
    edited = tmp_path / "faces.json"
    edited.write_text(json.dumps(record))

    outdir = tmp_path / "out"
    # A solid fill of a skin tone no pixel of this photo has by chance (not the default's
    # random head, not black): this test is about where the regions go.
    done = run(
        "blur",
        str(photo),
        "--regions",
        str(edited),
        "--no-detect",
        "--method",
        "solid",
        "--strength",
        "medium",
        "-o",
        str(outdir),
    )
    assert done.returncode == 0, done.stderr
    result = decode((outdir / "phone.png").read_bytes()).pixels
    assert result.shape == upright.shape, "the result is upright"

    regions = [box_as_shown(tuple(f["region"]), height, width, 6) for f in record["faces"]]
    mask = region_mask(height, width, regions, Options().shape)
    assert np.array_equal(result[~mask], upright[~mask]), "nothing else changed"
    changed = np.any(result != upright, axis=2)
    ax, ay, aw, ah = box_as_shown(tuple(added), height, width, 6)
    # The added region is hidden wherever its outline (the mask) reaches, and that is most
    # of it: an oval, continued past the frame where it meets the border.
    added_area = (slice(ay, ay + ah), slice(ax, ax + aw))
    assert changed[added_area][mask[added_area]].all()
    assert mask[added_area].mean() > 0.75
    for x, y, w, h in entry["faces"][1:]:
        x, y, w, h = int(x), int(y), int(w), int(h)
        assert changed[y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4].mean() > 0.5
    # The dropped face stays as it was, apart from where another face's region reaches.
    kept = (slice(kept_y, kept_y + kept_h), slice(kept_x, kept_x + kept_w))
    assert not changed[kept][~mask[kept]].any()
    assert (~mask[kept]).mean() > 0.5


def blur_flat_photo_with_regions(
    tmp_path: Path, regions: str, colour: tuple[int, int, int], *options: str
) -> int:
    """`faceblur blur` of a plain 50x40 photo in `colour` with the regions file `regions`
    and no detection, into tmp_path/out; the exit code."""
    photo = tmp_path / "flat.png"
    Image.new("RGB", (50, 40), colour).save(photo)
    regions_file = tmp_path / "regions.json"
    regions_file.write_text(regions)
    command = ["blur", str(photo), "--regions", str(regions_file), "--no-detect", *options]
    return main([*command, "-o", str(tmp_path / "out")])


def test_a_plain_list_of_regions_without_detection(tmp_path: Path) -> None:
    code = blur_flat_photo_with_regions(
        tmp_path, "[[10, 5, 20, 15]]", (200, 180, 160), "--method", "solid", "--shape", "box"
    )
    assert code == 0
    changed = np.any(
        decode((tmp_path / "out" / "flat.png").read_bytes()).pixels != (200, 180, 160), axis=2
    )
    expected = np.zeros_like(changed)
    expected[5:20, 10:30] = True
    assert np.array_equal(changed, expected)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[10, 5, 20]]", "[regions problem=not_four_numbers region=1]"),
        ("[[45, 5, 20, 15]]", "[regions problem=outside region=1]"),
        ('{"faces": [{"box": [1, 2, 3, 4]}]}', "[regions problem=not_a_list]"),
        ("not json", "[regions problem=bad_json]"),
    ],
)
def test_a_bad_regions_file_is_refused_with_its_reason(
    tmp_path: Path, capsys, content: str, message: str
) -> None:
    try:
        code = blur_flat_photo_with_regions(tmp_path, content, (0, 0, 0))
    except SystemExit as stop:
        code = stop.code
    assert code != 0
    assert message in capsys.readouterr().err
