"""Sealing a video per track and disclosing one person across the clip, on the record.

The clip is made here: two people of a dev photo crossing (bench/clips.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.clips import displayed_frames, make_crossing_clip
from conftest import FACES_DEV
from faceblur.cli.main import main

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

PHOTO = "images/20_Family_Group_Family_Group_20_100.jpg"


@pytest.fixture(scope="module")
def sealed(tmp_path_factory, dev_annotations) -> dict:
    entry = next(e for e in dev_annotations if e["image"] == PHOTO)
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / PHOTO)), cv2.COLOR_BGR2RGB)
    folder = tmp_path_factory.mktemp("sealed")
    clip = folder / "crossing.mp4"
    truth = make_crossing_clip(photo, entry["faces"][:2], clip, frames=30)
    assert main(["keys", "new", str(folder / "keys")]) == 0
    assert main(["keys", "new", str(folder / "other")]) == 0
    pub = folder / "keys" / "authority.pub"
    assert main(["blur", str(clip), "-o", str(folder / "out"), "--seal-to", str(pub)]) == 0
    return {"clip": clip, "truth": truth, "folder": folder, "result": folder / "out/crossing.mp4"}


def disclose(sealed: dict, tmp_path: Path, track: int, key: str = "keys") -> tuple[int, Path]:
    output = tmp_path / f"track-{track}.mkv"
    code = main(
        [
            "disclose",
            str(sealed["result"]),
            "--track",
            str(track),
            "--key",
            str(sealed["folder"] / key / "authority.key"),
            "--reason",
            "subject access request 7",
            "--audit-log",
            str(tmp_path / "audit.log"),
            "--operator",
            "dpo",
            "-o",
            str(output),
        ]
    )
    return code, output


def inside(box, centre_of) -> bool:
    x, y, w, h = box
    cx, cy = centre_of[0] + centre_of[2] / 2, centre_of[1] + centre_of[3] / 2
    return x <= cx <= x + w and y <= cy <= y + h


def test_a_sealed_clip_lists_its_tracks(sealed, capsys) -> None:
    assert (sealed["folder"] / "out/crossing.mp4.sealed").exists()
    assert main(["disclose", str(sealed["result"]), "--list"]) == 0
    said = capsys.readouterr().out
    assert "2 sealed track(s)" in said and "matches" in said


def test_disclosing_one_track_restores_that_person_alone_and_is_logged(
    sealed, tmp_path: Path, capsys
) -> None:
    truth = sealed["truth"]
    code, output = disclose(sealed, tmp_path, 0)
    assert code == 0, capsys.readouterr().err
    originals = displayed_frames(sealed["clip"])
    results = displayed_frames(sealed["result"])
    restored = displayed_frames(output)
    assert len(restored) == len(originals) == len(truth)
    (entry,) = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert (entry["outcome"], entry["track"], entry["operator"]) == ("disclosed", 0, "dpo")
    assert entry["face"] is None and entry["output_sha256"] and entry["sealed_sha256"]
    # Track 0 is whoever it holds in frame 0; the other person stays as in the result.
    person = 0 if abs(truth[0][0][0] - 16) < 40 else 1
    apart = restored_frames = 0
    for before, after, back, boxes in zip(originals, results, restored, truth, strict=True):
        x, y, w, h = (int(round(v)) for v in boxes[person])
        middle = (slice(y + h // 4, y + 3 * h // 4), slice(x + w // 4, x + 3 * w // 4))
        other = boxes[1 - person]
        ox, oy, ow, oh = (int(round(v)) for v in other)
        # Where the other's region covers this face, those pixels stay hidden (they are
        # the other's too): counted only where the two are apart.
        if abs(x - ox) > 2 * w:
            apart += 1
            if np.abs(back[middle].astype(int) - before[middle].astype(int)).mean() < 3:
                restored_frames += 1
        far = (slice(oy + oh // 4, oy + 3 * oh // 4), slice(ox + ow // 4, ox + 3 * ow // 4))
        if not inside((x, y, w, h), other):
            # The result as faceblur decodes it (OpenCV's YUV to RGB) beside PyAV's: +-3.
            assert np.abs(back[far].astype(int) - after[far].astype(int)).max() <= 3
    assert apart >= len(truth) // 2 and restored_frames == apart
    assert main(["audit", "verify", str(tmp_path / "audit.log")]) == 0


def test_the_wrong_key_is_refused_and_the_refusal_logged(sealed, tmp_path: Path) -> None:
    code, output = disclose(sealed, tmp_path, 1, key="other")
    assert code == 1 and not output.exists()
    (entry,) = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert entry["outcome"] == "refused" and "WrongKeyError" in entry["error"]
    assert main(["audit", "verify", str(tmp_path / "audit.log")]) == 0


def test_a_tampered_seal_or_result_is_refused(sealed, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    result = copy / "crossing.mp4"
    result.write_bytes(sealed["result"].read_bytes())
    lines = (sealed["folder"] / "out/crossing.mp4.sealed").read_bytes().splitlines(keepends=True)
    chunk = json.loads(lines[1])
    chunk["boxes"][0][1] += 1  # a region moved
    lines[1] = json.dumps(chunk, separators=(",", ":")).encode() + b"\n"
    (copy / "crossing.mp4.sealed").write_bytes(b"".join(lines))
    tampered = {**sealed, "result": result}
    code, output = disclose(tampered, tmp_path, 0)
    assert code == 1 and not output.exists()
    (copy / "crossing.mp4.sealed").write_bytes(
        (sealed["folder"] / "out/crossing.mp4.sealed").read_bytes()
    )
    result.write_bytes(result.read_bytes() + b"\0")
    code, output = disclose(tampered, tmp_path, 0)
    assert code == 1 and not output.exists()
    entries = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [e["outcome"] for e in entries] == ["refused", "refused"]
    assert "TamperedSealError" in entries[0]["error"]
    assert "ResultMismatchError" in entries[1]["error"]
