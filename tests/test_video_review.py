"""Video review: tracks as data, a track shown, a missed region hidden over frames.

The clips are made here: two people of a dev photo crossing (bench/clips.py), and a
textured patch moving over a still background that no detector takes for a face.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from bench.clips import EXPOSED, central_detail_kept, displayed_frames, make_crossing_clip
from conftest import FACES_DEV
from faceblur.cli.main import main
from faceblur.detection.base import Face
from faceblur.media.follow import video_tracks
from faceblur.media.video import anonymise_video
from faceblur.options import HideEdit, Options, VideoEdits

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

PHOTO = "images/20_Family_Group_Family_Group_20_100.jpg"
# 48 frames: the two cross the frame in two seconds, a brisk walk (the detector runs on
# every 12th frame; optical flow carries them in between).
CROSSING_FRAMES = 48


@pytest.fixture(scope="module")
def crossing(tmp_path_factory, dev_annotations) -> dict:
    entry = next(e for e in dev_annotations if e["image"] == PHOTO)
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / PHOTO)), cv2.COLOR_BGR2RGB)
    folder = tmp_path_factory.mktemp("crossing")
    clip = folder / "crossing.mp4"
    truth = make_crossing_clip(photo, entry["faces"][:2], clip, frames=CROSSING_FRAMES)
    return {"clip": clip, "truth": truth, "folder": folder}


@pytest.fixture(scope="module")
def listed(crossing) -> dict:
    """`faceblur tracks --json --thumbnails` on the crossing clip, its lines parsed."""
    thumbnails = crossing["folder"] / "thumbs"
    out = crossing["folder"] / "tracks.jsonl"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["tracks", str(crossing["clip"]), "--json", "--thumbnails", str(thumbnails)])
    assert code == 0
    out.write_text(printed.getvalue())
    lines = [json.loads(line) for line in printed.getvalue().splitlines()]
    return {"tracks": lines, "thumbnails": thumbnails}


def person_of(box: list[int], truth: list) -> list[int]:
    """The people whose face centre lies in a track's [frame, x, y, w, h]."""
    frame, x, y, w, h = box
    inside = []
    for person, (fx, fy, fw, fh) in enumerate(truth[frame]):
        cx, cy = fx + fw / 2, fy + fh / 2
        if x <= cx <= x + w and y <= cy <= y + h:
            inside.append(person)
    return inside


def track_of_person(tracks: list[dict], truth: list, person: int) -> dict:
    """The track that holds `person` alone in most of its frames."""
    return max(
        tracks,
        key=lambda t: sum(person_of(box, truth) == [person] for box in t["boxes"]),
    )


def test_two_people_crossing_keep_their_own_track_ids(crossing, listed) -> None:
    tracks, truth = listed["tracks"], crossing["truth"]
    assert [set(t) for t in tracks] == [{"track", "first", "last", "frames", "boxes"}] * len(tracks)
    first, second = (track_of_person(tracks, truth, person) for person in (0, 1))
    assert first["track"] != second["track"]
    for track, person in ((first, 0), (second, 1)):
        assert (track["first"], track["last"], track["frames"]) == (0, CROSSING_FRAMES - 1, 48)
        # Never the other person alone: where the two overlap a region may hold both.
        assert all(person in person_of(box, truth) for box in track["boxes"])
        assert [box[0] for box in track["boxes"]] == list(range(CROSSING_FRAMES))


def test_tracks_are_the_same_for_the_same_clip_and_options(crossing, listed, detector) -> None:
    again = [record.to_json() for record in video_tracks(crossing["clip"], detector).records()]
    assert again == listed["tracks"]


def test_each_track_has_a_thumbnail_of_its_largest_region(listed) -> None:
    for track in listed["tracks"]:
        thumbnail = cv2.imread(str(listed["thumbnails"] / f"track-{track['track']}.png"))
        largest = max(track["boxes"], key=lambda box: box[3] * box[4])
        assert thumbnail is not None and thumbnail.shape[:2] == (largest[4], largest[3])


def test_showing_one_track_keeps_that_face_and_hides_the_other(
    crossing, listed, tmp_path: Path
) -> None:
    truth = crossing["truth"]
    shown = track_of_person(listed["tracks"], truth, 0)["track"]
    log = tmp_path / "audit.log"
    out = tmp_path / "out"
    args = ["blur", str(crossing["clip"]), "-o", str(out), "--show-track", str(shown)]
    args += ["--reason", "subject access request 12", "--audit-log", str(log)]
    assert main(["keys", "new", str(tmp_path / "keys"), "--insecure-no-passphrase"]) == 0
    args += ["--operator", "reviewer", "--audit-key", str(tmp_path / "keys" / "audit.key")]
    assert main(args) == 0
    frames = zip(
        displayed_frames(crossing["clip"]),
        displayed_frames(out / "crossing.mp4"),
        truth,
        strict=True,
    )
    kept = [[central_detail_kept(a, b, box) for box in boxes] for a, b, boxes in frames]
    kept_shown, kept_other = [k[0] for k in kept], [k[1] for k in kept]
    keeps_detail = sum(kept is not None and kept > 0.5 for kept in kept_shown)
    assert keeps_detail >= 0.95 * len(truth)
    assert all(kept is not None and kept <= EXPOSED for kept in kept_other)
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert (entry["outcome"], entry["track"], entry["operator"]) == ("shown", shown, "reviewer")
    assert entry["reason"] == "subject access request 12"
    assert entry["output_sha256"] == hashlib.sha256((out / "crossing.mp4").read_bytes()).hexdigest()
    assert (
        main(["audit", "verify", str(log), "--audit-pub", str(tmp_path / "keys" / "audit.pub")])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["crossing.mp4"]  # nothing staged left


def test_showing_a_track_without_reason_or_log_is_refused(crossing, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["blur", str(crossing["clip"]), "-o", str(out), "--show-track", "0"]) == 2
    assert not out.exists()


class NoFaces:
    """A detector that finds nothing: what a missed face looks like to the pipeline."""

    def detect(self, image: np.ndarray) -> list[Face]:
        return []


def moving_patch_clip(path: Path, frames: int = 20, step: int = 6) -> list[tuple[int, ...]]:
    """A textured 60x60 patch moving `step` px a frame to the right over a still textured
    background; each frame's patch box."""
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8), (0, 0), 2)
    patch = rng.integers(0, 255, (60, 60, 3), dtype=np.uint8)
    boxes = []
    with av.open(str(path), mode="w") as output:
        stream = output.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for t in range(frames):
            frame = background.copy()
            x = 20 + step * t
            frame[60:120, x : x + 60] = patch
            boxes.append((x, 60, 60, 60))
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = t, Fraction(1, 25)
            output.mux(stream.encode(picture))
        output.mux(stream.encode(None))
    return boxes


def test_a_hide_edit_follows_missed_content_over_its_frames_only(tmp_path: Path) -> None:
    source, target = tmp_path / "patch.mp4", tmp_path / "out.mp4"
    boxes = moving_patch_clip(source)
    first, last = 3, 15
    edits = VideoEdits(hide=(HideEdit(first, last, boxes[first]),))
    anonymise_video(source, target, NoFaces(), Options(method="solid", shape="box"), edits=edits)
    results = displayed_frames(target)
    for index, (x, y, w, h) in enumerate(boxes):
        # The patch's middle (the edges may keep a pixel or two of drift).
        middle = results[index][y + 8 : y + h - 8, x + 8 : x + w - 8].astype(float)
        if first <= index <= last:
            assert middle.mean() < 20, f"frame {index}: the moving patch shows through"
        else:
            assert middle.std() > 30, f"frame {index}: hidden outside the edit's frames"


def test_a_hide_edit_outside_the_frame_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "patch.mp4", tmp_path / "out.mp4"
    moving_patch_clip(source, frames=2)
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"hide": [{"frames": [0, 1], "region": [300, 0, 40, 40]}]}))
    assert main(["blur", str(source), "-o", str(tmp_path / "out"), "--edits", str(edits)]) == 1
    assert not target.exists() and not (tmp_path / "out" / "patch.mp4").exists()


def test_cli_edits_file_hides_its_region_over_its_frames(tmp_path: Path) -> None:
    source = tmp_path / "patch.mp4"
    boxes = moving_patch_clip(source, frames=12)
    edits = tmp_path / "edits.json"
    edits.write_text(json.dumps({"hide": [{"frames": [2, 8], "region": list(boxes[2])}]}))
    out = tmp_path / "out"
    args = ["blur", str(source), "-o", str(out), "--edits", str(edits), "--method", "solid"]
    assert main([*args, "--shape", "box"]) == 0
    results = displayed_frames(out / "patch.mp4")
    for index, (x, y, w, h) in enumerate(boxes):
        middle = results[index][y + 8 : y + h - 8, x + 8 : x + w - 8].astype(float)
        assert (middle.mean() < 20) == (2 <= index <= 8), index
