"""Video jobs on the bucket path, run in this process against the real local S3 server.

Clips are made in the test from a dev photo (bench/clips.py), short and small: the
detector is the slow part on two cores.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from bench.clips import EXPOSED, central_detail_kept, displayed_frames, make_clip
from conftest import FACES_DEV
from faceblur.config import ConfigError, load_settings
from faceblur.errors import (
    BadRequestError,
    NotFoundError,
    TooLargeError,
    UnavailableError,
    UnsupportedError,
)
from faceblur.formats import video_type
from faceblur.media.photo import PhotoResult, anonymise_image
from faceblur.media.video import anonymise_video
from faceblur.options import Options
from faceblur.sealing import seal, tracks
from faceblur.service.events import ObjectEvent, process_bucket_events
from faceblur.service.video_jobs import (
    STALE_REASON,
    STALE_SECONDS,
    JobStatus,
    job_answer,
    read_status,
    write_status,
)
from faceblur.service.videos import process_video_object, queue_edits
from faceblur.store.keys import (
    content_id,
    inbox_key,
    job_of_key,
    new_job_id,
    sealed_key,
    split_owner,
    status_key,
    tracks_key,
)
from faceblur.store.s3 import Store
from stack_fixtures import CuttingProxy, scaled_photo, start_local_s3

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

PHOTO = "images/20_Family_Group_Family_Group_20_100.jpg"  # five faces, 70 to 134 px
SIZE = (640, 360)
FRAMES = 12


@pytest.fixture(scope="module")
def family(dev_annotations) -> tuple[np.ndarray, list]:
    entry = next(e for e in dev_annotations if e["image"] == PHOTO)
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / PHOTO)), cv2.COLOR_BGR2RGB)
    return photo, entry["faces"]


@pytest.fixture(autouse=True)
def scratch(tmp_path, monkeypatch) -> Iterator[Path]:
    """Temporary files in a folder of the test's own, which every job must leave empty."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == []


@pytest.fixture(scope="module")
def clip(tmp_path_factory, family) -> tuple[bytes, list]:
    """A 640x360 MP4 of 12 frames panning over the family, with audio; its true boxes."""
    path = tmp_path_factory.mktemp("clip") / "family.mp4"
    truth = make_clip(*family, path, SIZE, frames=FRAMES, rate=12)
    return path.read_bytes(), truth


@dataclass
class Pipeline:
    """The real photo pipeline with the session's detector, as a door hands it over."""

    detector: object

    def anonymise(self, data: bytes, options: Options, max_pixels: int) -> PhotoResult:
        return anonymise_image(data, self.detector, options, max_pixels=max_pixels)


@dataclass
class Videos:
    """faceblur.video with the session's detector; notes the job's status at each frame."""

    detector: object
    store: Store
    job: str
    seen: list[dict] = field(default_factory=list)
    owner: str | None = None  # whose job, as the poller asks (None: accounts off)

    def anonymise_video(
        self,
        source: Path,
        target: Path,
        options: Options,
        on_progress,
        edits=None,
        observe=None,
        limits=None,
    ):
        def progress(done: int, total: int) -> None:
            on_progress(done, total)
            settings = self.store.settings
            self.seen.append(job_answer(self.job, self.store, settings, self.owner))

        return anonymise_video(
            source,
            target,
            self.detector,
            options,
            on_progress=progress,
            edits=edits,
            observe=observe,
            limits=limits,
        )


def put_inbox(store: Store, key: str, data: bytes) -> None:
    store.client.put_object(
        bucket_name="inbox", object_name=key, data=io.BytesIO(data), length=len(data)
    )


def run_events(store: Store, settings, detector, key: str, job: str) -> tuple[dict, Videos]:
    videos = Videos(detector, store, job, owner=split_owner(key)[0] or None)
    event = ObjectEvent("inbox", key, "s3:ObjectCreated:Put")
    answer = process_bucket_events([event], Pipeline(detector), store, settings, videos=videos)
    return answer, videos


def assert_failed_and_nothing_kept(s3, store: Store, job: str, code: str, name: str = "") -> str:
    """The job failed with a plain reason; the inbox is empty and no result exists."""
    status = read_status(store, s3.settings, job)
    assert status is not None and status.state == "failed"
    assert status.code == code and name in status.reason
    assert s3.endpoint not in status.reason and "/tmp" not in status.reason
    assert s3.snapshot() == {"inbox": [], "originals": [status_key(job)], "results": []}
    return status.reason


# -- the whole job -----------------------------------------------------------------------


def test_a_video_in_the_inbox_runs_to_done(s3, detector, clip) -> None:
    data, truth = clip
    store, settings = s3.store(), s3.settings
    job = new_job_id()
    key = inbox_key("", job, "family.mp4")
    put_inbox(store, key, data)
    assert job_answer(job, store, settings, None)["state"] == "queued"

    answer, videos = run_events(store, settings, detector, key, job)

    (done,) = answer["processed"]
    assert done["job"] == job and done["state"] == "done"
    # Running while the frames went through, with the total known from the start.
    assert videos.seen[0]["state"] == "running"
    assert videos.seen[0]["frames_total"] == FRAMES
    status = job_answer(job, store, settings, None)
    assert status["state"] == "done"
    assert status["frames_done"] == status["frames_total"] == FRAMES
    assert status["reason"] is None and status["prefix"] == ""
    assert status["result_url"].startswith(settings.s3_public_url)
    # The original moved out of the inbox, kept under its content id; the result beside.
    original_key = f"{content_id(data)}.mp4"
    assert status["result_key"].startswith(content_id(data) + "/")
    assert status["result_key"].endswith(".mp4")
    assert s3.snapshot() == {
        "inbox": [],
        "originals": sorted([original_key, status_key(job), tracks_key(job)]),
        "results": [status["result_key"]],
    }
    assert store.read("originals", original_key) == data
    assert store.face_count(status["result_key"]) >= 3  # tracks: this family shows five

    result = s3.server.directory / "result.mp4"
    store.fget("results", status["result_key"], result)
    with av.open(str(result)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == SIZE
        assert stream.codec_context.name == "h264"
    source = s3.server.directory / "source.mp4"
    source.write_bytes(data)
    before, after = displayed_frames(source), displayed_frames(result)
    assert len(after) == len(before) == FRAMES
    hidden = [
        central_detail_kept(b, a, box)
        for b, a, boxes in zip(before, after, truth, strict=True)
        for box in boxes
    ]
    checked = [kept for kept in hidden if kept is not None]
    assert len(checked) >= 3 * FRAMES and max(checked) <= EXPOSED
    result.unlink()
    source.unlink()

    # The status lives in the bucket: a new store (as a restarted function has) reads it.
    fresh = Store(load_settings(s3.env, secrets_dir="/nonexistent"))
    assert job_answer(job, fresh, fresh.settings, None)["state"] == "done"
    # A repeated notification finds nothing left in the inbox and changes nothing.
    again, _ = run_events(store, settings, detector, key, job)
    assert again["processed"] == [] and again["ignored"][0]["code"] == "gone"


def test_a_job_with_an_owner_is_theirs_alone(s3, detector, tmp_path, family) -> None:
    path = tmp_path / "short.mkv"
    make_clip(*family, path, SIZE, frames=2, audio=False)
    store, settings = s3.store(), s3.settings
    job = new_job_id()
    key = inbox_key("u/ab12/", job, "short.mkv")
    put_inbox(store, key, path.read_bytes())
    assert job_answer(job, store, settings, "u/ab12/")["state"] == "queued"
    with pytest.raises(NotFoundError):
        job_answer(job, store, settings, "u/other/")

    run_events(store, settings, detector, key, job)

    status = job_answer(job, store, settings, "u/ab12/")
    assert status["state"] == "done" and status["prefix"] == "u/ab12/"
    assert status["result_key"].startswith("u/ab12/")
    assert store.keys("originals", prefix="u/ab12/")
    with pytest.raises(NotFoundError):
        job_answer(job, store, settings, "u/other/")


# -- refusals on the bucket path: a failed job with its reason -------------------------------


@pytest.mark.parametrize(
    "limit,code",
    [
        ({"max_video_bytes": 1000}, "max_video_bytes"),
        ({"max_video_seconds": 1}, "max_video_seconds"),
        ({"max_video_pixels": 640 * 360 - 1}, "max_video_pixels"),
    ],
)
def test_a_video_over_a_limit_is_a_failed_job(s3, detector, clip, limit, code) -> None:
    data, _ = clip  # 12 frames at 12 fps: one second
    if "max_video_seconds" in limit:
        path = s3.server.directory / "long.mp4"
        make_clip(np.zeros((360, 640, 3), np.uint8), [], path, SIZE, frames=6, rate=3)
        data = path.read_bytes()
        path.unlink()
    store = s3.store()
    settings = replace(s3.settings, **limit)
    job = new_job_id()
    key = inbox_key("", job, "clip.mp4")
    put_inbox(store, key, data)
    answer, videos = run_events(store, settings, detector, key, job)
    assert answer["processed"] == [] and not videos.seen  # refused before any frame
    (refused,) = answer["ignored"]
    assert refused["job"] == job and refused["state"] == "failed" and refused["code"] == code
    assert_failed_and_nothing_kept(s3, store, job, code)


def test_a_truncated_video_is_a_failed_job(s3, detector, clip) -> None:
    data, _ = clip  # not faststart: its index is at the end, which the cut loses
    store = s3.store()
    job = new_job_id()
    key = inbox_key("", job, "cut.mp4")
    put_inbox(store, key, data[: len(data) // 2])
    run_events(store, s3.settings, detector, key, job)
    assert_failed_and_nothing_kept(s3, store, job, "not_a_video", "cut.mp4")


def test_garbage_behind_a_video_signature_is_a_failed_job(s3, detector) -> None:
    store = s3.store()
    key = "dropped by an operator/clip.mov"  # not under videos/<job>/: job from the key
    job = job_of_key(key)
    put_inbox(store, key, b"\x00\x00\x00\x18ftypqt  " + bytes(range(256)) * 40)
    run_events(store, s3.settings, detector, key, job)
    assert_failed_and_nothing_kept(s3, store, job, "not_a_video", "clip.mov")


def test_where_originals_are_sealed_a_video_is_kept_sealed_per_track(
    s3, detector, clip, tmp_path
) -> None:
    store = s3.store()
    authority = seal.new_authority_key()
    public = seal.public_key_pem(authority).decode()
    settings = replace(s3.settings, seal_public_key=public)
    job = new_job_id()
    key = inbox_key("", job, "clip.mp4")
    put_inbox(store, key, clip[0])
    process_video_object(key, Videos(detector, store, job), store, settings)
    status = job_answer(job, store, settings, None)
    assert status["state"] == "done"
    sealed = sealed_key(status["result_key"])
    assert s3.snapshot()["originals"] == sorted([sealed, status_key(job), tracks_key(job)])
    result, seal_file = tmp_path / "result.mp4", tmp_path / "result.sealed"
    result.write_bytes(store.read("results", status["result_key"]))
    seal_file.write_bytes(store.read("originals", sealed))
    track = min(tracks.read_sealed_video(seal_file).tracks)
    tracks.disclose_track(result, seal_file, track, authority, tmp_path / "one.mkv")
    assert len(displayed_frames(tmp_path / "one.mkv")) == FRAMES
    # Edits need the original, which a sealed store does not keep.
    with pytest.raises(UnsupportedError):
        queue_edits(job, {"show": [track]}, store, settings, None)


def test_a_photo_in_the_inbox_still_goes_the_photo_way(s3, detector, dev_annotations) -> None:
    entry = next(e for e in dev_annotations if e["image"] == PHOTO)
    photo = scaled_photo(entry, 480, "JPEG")[0]
    store = s3.store()
    put_inbox(store, "videos/not-a-video.jpg", photo)
    answer, videos = run_events(store, s3.settings, detector, "videos/not-a-video.jpg", "")
    (done,) = answer["processed"]
    assert done["faces"] >= 3 and "job" not in done and not videos.seen
    assert store.keys("originals") == [f"{content_id(photo)}.jpg"]


# -- status lookups ----------------------------------------------------------------------


def test_job_ids_are_checked_and_unknown_jobs_are_not_found(s3) -> None:
    store = s3.store()
    for bad in ("", "abc", "G" * 32, "A" * 32, "../" + "a" * 29):
        with pytest.raises(BadRequestError):
            job_answer(bad, store, s3.settings, None)
    with pytest.raises(NotFoundError):
        job_answer(new_job_id(), store, s3.settings, None)


def test_a_status_object_holds_the_contract_fields(s3, detector) -> None:
    store = s3.store()
    job = new_job_id()
    put_inbox(store, inbox_key("", job, "x.mkv"), b"\x1a\x45\xdf\xa3" + b"\x00" * 100)
    process_video_object(
        inbox_key("", job, "x.mkv"), Videos(detector, store, job), store, s3.settings
    )
    stored = json.loads(store.read("originals", status_key(job)))
    assert set(stored) == {
        "job",
        "state",
        "frames_done",
        "frames_total",
        "result_key",
        "original_key",
        "prefix",
        "reason",
        "updated",
        "name",
        "code",
        # A split job's (issue 25): its segments, counted from their own objects.
        "segments_done",
        "segments_total",
        "source_key",
        "plan",
        "seed",  # its segments' secret for the default method's draws, while it runs
        "replaces",  # a render with a reviewer's edits: the result it replaces (issue 26)
    }
    assert stored["state"] == "failed" and stored["updated"].endswith("Z")
    assert stored["name"] == "x.mkv"


# -- pure pieces --------------------------------------------------------------------------


def test_videos_are_told_by_their_bytes(tmp_path, family) -> None:
    photo, faces = family
    for name, codec, expected in (
        ("a.mp4", "libx264", "video/mp4"),
        ("a.mov", "libx264", "video/quicktime"),
        ("a.mkv", "libx264", "video/x-matroska"),
        ("a.webm", "libvpx-vp9", "video/webm"),
        ("a.avi", "mpeg4", "video/x-msvideo"),
    ):
        make_clip(photo, faces, tmp_path / name, frames=1, audio=False, codec=codec)
        assert video_type((tmp_path / name).read_bytes()[:64]) == expected, name
    png = scaled_photo({"image": PHOTO, "faces": []}, 64, "PNG")[0]
    assert video_type(png[:64]) is None
    assert video_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None
    assert video_type(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") is None  # a HEIF photo


def test_job_ids_come_from_the_key() -> None:
    job = new_job_id()
    assert job_of_key(f"videos/{job}/my clip.mp4") == job
    assert job_of_key(f"u/ab12/videos/{job}/my clip.mp4") == job
    other = job_of_key("elsewhere/clip.mp4")
    assert other == job_of_key("elsewhere/clip.mp4") != job_of_key("elsewhere/clip2.mp4")
    assert len(other) == 32 and int(other, 16) >= 0
    assert job_of_key(f"videos/{job.upper()}/clip.mp4") != job


def test_video_limits_are_settings(tmp_path) -> None:
    settings = load_settings({}, secrets_dir=tmp_path)
    assert settings.max_video_bytes == 500 * 1024 * 1024
    assert settings.max_video_seconds == 600
    assert settings.max_video_pixels == 3840 * 2160
    for name in (
        "FACEBLUR_MAX_VIDEO_BYTES",
        "FACEBLUR_MAX_VIDEO_SECONDS",
        "FACEBLUR_MAX_VIDEO_PIXELS",
    ):
        assert getattr(load_settings({name: "7"}, secrets_dir=tmp_path), name[9:].lower()) == 7
        for bad in ("0", "-3", "lots"):
            with pytest.raises(ConfigError, match=name):
                load_settings({name: bad}, secrets_dir=tmp_path)


@pytest.mark.parametrize(
    "frames,tick,expected",
    [
        # A clock that stands still: each twentieth of the frames (here every 2nd) is written.
        (40, 0.0, [0] + [2 * (i // 2) for i in range(2, 41)]),
        # One 3 s further at every look: each frame is written.
        (3, 3.0, [1, 2, 3]),
    ],
)
def test_progress_is_written_every_two_seconds_or_every_five_percent(
    s3, detector, frames, tick, expected
) -> None:
    """A short clip done in under 2 s still moves (it used to jump from 0 to done)."""
    path = s3.server.directory / "clip.mkv"
    make_clip(np.zeros((72, 128, 3), np.uint8), [], path, (128, 72), frames=frames, audio=False)
    store = s3.store()
    job = new_job_id()
    key = inbox_key("", job, "clip.mkv")
    put_inbox(store, key, path.read_bytes())
    path.unlink()
    now = [0.0]

    def clock() -> float:
        now[0] += tick
        return now[0]

    videos = Videos(detector, store, job)
    process_video_object(key, videos, store, s3.settings, clock=clock)
    assert [seen["frames_done"] for seen in videos.seen] == expected
    assert {seen["state"] for seen in videos.seen} == {"running"}
    assert {seen["frames_total"] for seen in videos.seen} == {frames}
    assert job_answer(job, store, s3.settings, None)["state"] == "done"


def test_a_running_job_gone_silent_is_told_as_failed(s3) -> None:
    """A job whose call was stopped (timeout, restart) must not be polled for ever."""
    store = s3.store()
    job = new_job_id()
    status = JobStatus(job, "running", frames_done=5, frames_total=50, updated="")
    write_status(store, s3.settings, status)
    updated = datetime.fromisoformat(read_status(store, s3.settings, job).updated)
    soon = updated + timedelta(seconds=STALE_SECONDS)
    assert job_answer(job, store, s3.settings, None, now=soon)["state"] == "running"
    later = job_answer(job, store, s3.settings, None, now=soon + timedelta(seconds=1))
    assert later["state"] == "failed" and later["reason"] == STALE_REASON
    assert later["code"] == "stale"
    assert later["frames_done"] == 5 and later["result_url"] is None


def test_files_stream_in_and_out_in_parts(s3, tmp_path) -> None:
    """Above the SDK's 5 MiB part size, fput sends parts; fget reads it back in pieces."""
    store = s3.store()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    store.fput("results", "x/big.mp4", big, "video/mp4", {"faceblur-faces": "2"})
    back = tmp_path / "back.bin"
    assert store.fget("results", "x/big.mp4", back) == big.stat().st_size
    assert back.read_bytes() == big.read_bytes()
    assert store.face_count("x/big.mp4") == 2
    with pytest.raises(TooLargeError):
        store.fget("results", "x/big.mp4", tmp_path / "no.bin", max_bytes=1024)
    with pytest.raises(BadRequestError):
        store.fget("results", "x/none.mp4", tmp_path / "no.bin")
    assert store.head("results", "x/big.mp4", 16) == big.read_bytes()[:16]
    for data in (b"", b"short"):
        put_inbox(store, "tiny", data)
        assert store.head("inbox", "tiny", 64) == data


def test_an_empty_inbox_object_is_refused_as_before(s3, detector) -> None:
    store = s3.store()
    put_inbox(store, "empty.jpg", b"")
    answer, videos = run_events(store, s3.settings, detector, "empty.jpg", "")
    assert answer["processed"] == [] and answer["ignored"][0]["code"] == "empty"


def test_a_store_dying_mid_job_leaves_no_half_pair_and_the_event_can_retry(
    tmp_path, detector, family
) -> None:
    own = start_local_s3(tmp_path / "s3")
    proxy = CuttingProxy(own.server.port)
    try:
        store = Store(replace(own.settings, s3_endpoint=proxy.endpoint))
        path = tmp_path / "two.mkv"
        make_clip(*family, path, SIZE, frames=2, audio=False)
        job = new_job_id()
        key = inbox_key("", job, "two.mkv")
        put_inbox(store, key, path.read_bytes())
        proxy.cut_on(b"PUT /results/")
        with pytest.raises(UnavailableError):
            run_events(store, store.settings, detector, key, job)
        proxy.restore()
        deadline = time.monotonic() + 30
        while store.pending_rollbacks and time.monotonic() < deadline:
            time.sleep(0.2)
        # No result, no original without it; the video still in the inbox for the retry.
        assert own.snapshot() == {"inbox": [key], "originals": [status_key(job)], "results": []}
        answer, _ = run_events(store, store.settings, detector, key, job)
        assert answer["processed"][0]["state"] == "done"
        assert own.snapshot()["inbox"] == [] and len(own.snapshot()["results"]) == 1
    finally:
        proxy.close()
        own.stop()
