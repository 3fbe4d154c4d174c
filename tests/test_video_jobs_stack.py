"""Video jobs on the local stack: s3rver posts each inbox put to the function's async
route (as MinIO's webhook does in the cluster), and clients poll `GET ?job=`.

One function process for the module (loading the model is the slow part), with small
video limits so that refusals need no large files.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import requests

from bench.clips import make_clip
from data import composed_photo
from faceblur.service.video_jobs import job_answer
from faceblur.store.keys import inbox_key, job_of_key, new_job_id, status_key, tracks_key
from stack_fixtures import LocalS3, free_port, start_function, start_local_s3, wait_until_empty

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

PHOTO = "images/20_Family_Group_Family_Group_20_100.jpg"  # five faces, 70 to 134 px
SIZE = (640, 360)
FRAMES = 12
JOB_SECONDS = 300  # bound of every poll: a 12-frame job takes seconds, a busy box more
LIMITS = {
    "FACEBLUR_MAX_VIDEO_BYTES": "2000000",
    "FACEBLUR_MAX_VIDEO_SECONDS": "5",
    "FACEBLUR_MAX_VIDEO_PIXELS": str(640 * 360),
}
STATES = ("queued", "running", "done")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[LocalS3, str]]:
    """s3rver whose inbox puts go to the function's async route, and that function."""
    folder = tmp_path_factory.mktemp("video-stack")
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/async-function/faceblur"
    s3 = start_local_s3(folder / "s3", webhook_url=webhook, webhook_bucket="inbox")
    try:
        function = start_function(s3, folder / "runner.log", LIMITS, port=port)
        try:
            yield s3, f"{function.url}/function/faceblur"
        finally:
            function.stop()
    finally:
        s3.stop()


@pytest.fixture(scope="module")
def family() -> tuple[np.ndarray, list]:
    photo, _ = composed_photo((134, 110, 90, 70), size=(860, 400))
    return photo, []


def clip_bytes(folder: Path, name: str, size=SIZE, frames=FRAMES, rate=12, photo=None) -> bytes:
    path = folder / name
    picture = photo if photo is not None else np.full((size[1], size[0], 3), 90, np.uint8)
    make_clip(picture, [], path, size, frames=frames, rate=rate, audio=False)
    return path.read_bytes()


def poll(url: str, job: str, until: set[str], unknown_first: bool = False) -> list[str]:
    """The states `GET ?job=` answers, in order, until one of `until` (bounded).

    `unknown_first`: a 404 is expected until the job starts (a video dropped outside
    `videos/<job>/`, whose job id only the function derives, is not seen queued)."""
    seen: list[str] = []
    slow_store = 0
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        response = requests.get(url, params={"job": job}, timeout=10)
        if unknown_first and not seen and response.status_code == 404:
            time.sleep(0.3)
            continue
        # A store too slow to answer within the S3 timeout (a loaded machine) is a plain
        # 503 "try again later", as a client is told: a few are retried, never more.
        if response.status_code == 503 and response.json()["code"] == "unavailable":
            slow_store += 1
            assert slow_store <= 3, response.text
            time.sleep(1)
            continue
        assert response.status_code == 200, response.text
        state = response.json()["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in until:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"job {job} not {until} after {JOB_SECONDS}s: {seen}")


def busy_worker(s3: LocalS3, url: str, folder: Path, family) -> str:
    """Start a job of the family clip and return its id once it runs: the runner's queue
    worker (like the CE queue worker) takes calls one at a time, in order, so what is
    queued next is seen waiting in the inbox, queued, for the seconds this one takes."""
    first = new_job_id()
    clip_bytes(folder, "first.mp4", photo=family[0])
    s3.store().fput("inbox", inbox_key("", first, "first.mp4"), folder / "first.mp4", "video/mp4")
    assert poll(url, first, {"running", "done", "failed"})[-1] == "running"
    return first


def test_a_posted_video_is_queued_then_done_and_plays(stack, family, tmp_path) -> None:
    s3, url = stack
    store = s3.store()
    first = busy_worker(s3, url, tmp_path, family)

    data = clip_bytes(tmp_path, "family.mp4", photo=family[0])
    response = requests.post(
        url, data=data, params={"name": "family.mp4"}, headers={"Content-Type": "video/mp4"}
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    job = answer["job"]
    assert answer == {"job": job, "state": "queued", "status_url": f"/function/faceblur?job={job}"}
    assert store.keys("inbox", prefix=f"videos/{job}/") == [f"videos/{job}/family.mp4"]

    seen = poll(url, job, {"done", "failed"})
    assert seen[0] == "queued" and seen[-1] == "done", seen
    assert seen == [state for state in STATES if state in seen]  # never backwards

    status = requests.get(url, params={"job": job}, timeout=10).json()
    assert status["frames_done"] == status["frames_total"] == FRAMES
    assert status["reason"] is None and status["prefix"] == ""
    assert status["name"] == "family.mp4"
    playable = tmp_path / "result.mp4"
    playable.write_bytes(requests.get(status["result_url"], timeout=30).content)
    with av.open(str(playable)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == FRAMES and frames[0].shape == (SIZE[1], SIZE[0], 3)

    # The status lives in the bucket: this process, not the function's, reads it.
    assert job_answer(job, s3.store(), s3.settings, None)["state"] == "done"
    assert poll(url, first, {"done", "failed"})[-1] == "done"
    # The inbox copy is the job's ticket: checked after the done status is written, then
    # removed, so a poll may see "done" a moment before the inbox is empty.
    assert wait_until_empty(store, "inbox", 30) == []
    # Each finished job keeps its status and its tracks (for review), nothing else.
    assert sorted(store.keys("originals", prefix="jobs/")) == sorted(
        [status_key(first), status_key(job), tracks_key(first), tracks_key(job)]
    )


def test_other_request_forms_queue_videos_too(stack, family, tmp_path) -> None:
    s3, url = stack
    first = busy_worker(s3, url, tmp_path, family)
    data = clip_bytes(tmp_path, "one.mkv", frames=1)
    forms = [
        {"files": {"file": ("Zoe's clip (1).mkv", data, "video/x-matroska")}},
        {"json": {"video": base64.b64encode(data).decode()}},
        {"data": data, "headers": {"Content-Type": "application/octet-stream"}},
    ]
    jobs = []
    for form, name in zip(forms, ["Zoe_s_clip_1.mkv", "video.mkv", "video.mkv"], strict=True):
        response = requests.post(url, timeout=30, **form)
        assert response.status_code == 202, response.text
        jobs.append(response.json()["job"])
        assert s3.store().keys("inbox", prefix=f"videos/{jobs[-1]}/") == [
            f"videos/{jobs[-1]}/{name}"
        ]
    for job in [first, *jobs]:
        assert poll(url, job, {"done", "failed"})[-1] == "done"


def test_refusals_over_http_are_json_and_leave_nothing(stack, tmp_path) -> None:
    s3, url = stack
    before = s3.snapshot()
    info = requests.get(url, timeout=10).json()["limits"]
    assert info["max_video_bytes"] == 2_000_000
    assert info["max_video_seconds"] == 5
    assert info["max_video_pixels"] == 640 * 360
    assert info["max_video_frames"] == 600 * 60 and info["video_job_seconds"] == 14 * 60

    for job, status, code in (
        ("nope", 400, "bad_job_id"),
        ("A" * 32, 400, "bad_job_id"),
        (new_job_id(), 404, "not_found"),
    ):
        response = requests.get(url, params={"job": job}, timeout=10)
        assert response.status_code == status and response.json()["code"] == code

    video_head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    refusals = [
        (video_head + bytes(2_000_001), 413, "max_video_bytes"),
        (video_head + bytes(range(256)) * 20, 415, "not_a_video"),
        (clip_bytes(tmp_path, "long.mp4", (160, 90), frames=7, rate=1), 413, "max_video_seconds"),
        (clip_bytes(tmp_path, "big.mp4", (960, 540), frames=1), 413, "max_video_pixels"),
    ]
    for body, status, code in refusals:
        response = requests.post(url, data=body, headers={"Content-Type": "video/mp4"}, timeout=30)
        assert response.status_code == status, response.text
        assert response.json()["code"] == code
        assert "127.0.0.1" not in response.text and "/tmp" not in response.text
    response = requests.post(
        url,
        data=clip_bytes(tmp_path, "c.mp4", frames=1),
        params={"method": "solid"},
        headers={"Content-Type": "video/mp4"},
    )
    assert response.status_code == 400 and response.json()["code"] == "video_options"
    assert s3.snapshot() == before


def test_a_video_over_a_limit_in_the_inbox_is_a_failed_job(stack, tmp_path) -> None:
    s3, url = stack
    store = s3.store()
    kept_before = set(store.keys("originals")) | set(store.keys("results"))
    key = "dropped/long clip.mp4"  # as an operator might, outside videos/<job>/
    long = tmp_path / "long.mp4"
    long.write_bytes(clip_bytes(tmp_path, "l.mp4", (160, 90), frames=7, rate=1))
    store.fput("inbox", key, long, "video/mp4")
    job = job_of_key(key)
    assert poll(url, job, {"failed", "done"}, unknown_first=True)[-1] == "failed"
    status = requests.get(url, params={"job": job}, timeout=10).json()
    assert "the limit is 5 seconds" in status["reason"]
    assert status["result_url"] is None and status["result_key"] is None
    assert not store.exists("inbox", key)
    kept = set(store.keys("originals")) | set(store.keys("results"))
    assert kept - kept_before == {status_key(job)}
