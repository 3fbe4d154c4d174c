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
from faceblur.anonymise import region_mask
from faceblur.cli import main
from faceblur.image import decode
from faceblur.options import METHOD_INFO, METHOD_NAMES, Options

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
    assert "broken.jpg" in done.stderr and "not an image" in done.stderr
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
        assert set(face) == {"box", "region", "score", "landmarks"}
        assert len(face["box"]) == 4 and len(face["region"]) == 4


def test_whole_image_mode_keeps_names_and_needs_no_detector(tmp_path: Path, capsys) -> None:
    sources = [ATT_FACES / "s1" / "1.pgm", ATT_FACES / "s2" / "1.pgm"]
    code = main(["blur", "--whole-image", *map(str, sources), "-o", str(tmp_path)])
    assert code == 1, "two photos with one name must not overwrite each other silently"
    assert "already written" in capsys.readouterr().err
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
        (["blur", "x.png", "--padding", "wide"], "padding must be a number"),
        (["detect", "x.png", "--padding", "-1"], "padding must be a number"),
        (["detect", "x.png", "--crowd-padding", "1.2"], "unrecognized arguments"),
        (["blur", "x.png", "--threshold", "2"], "threshold must be a number"),
        (["blur", "x.png", "--method", "smear"], "invalid choice"),
        (["detect"], "required"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_inputs_fail_without_loading_anything(tmp_path: Path, capsys) -> None:
    assert main(["blur", "--whole-image", str(tmp_path / "nothing-*.jpg")]) == 1
    assert "no photos found" in capsys.readouterr().err


def test_never_overwrites_the_original(tmp_path: Path) -> None:
    image = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(image, "PNG")
    photo = tmp_path / "me.png"
    photo.write_bytes(image.getvalue())
    assert main(["blur", "--whole-image", str(photo), "-o", str(tmp_path)]) == 1
    assert photo.read_bytes() == image.getvalue()
