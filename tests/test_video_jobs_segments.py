"""Split video jobs (issue 25): planned by the inbox event's call, one call per segment,
retried alone, joined by the call that finishes the last one; against a real s3rver.

The calls here run in this process, taken in order from the list the job posts them to
(the gateway's async route in the cluster); tests/test_video_jobs_stack.py-style real
function processes are at the end: two workers behind one async route.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

import av
import pytest
import requests

from bench.clips import make_clip
from data import composed_photo
from faceblur.accounts import remove_owned
from faceblur.errors import CorruptVideoError
from faceblur.media.segments import Segment
from faceblur.service.entry import Engine
from faceblur.service.video_jobs import job_answer, read_status
from faceblur.service.video_segments import process_segment
from faceblur.service.videos import process_video_object
from faceblur.store.keys import (
    inbox_key,
    new_job_id,
    owner_prefix,
    segments_prefix,
    status_key,
)
from stack_fixtures import start_local_s3, workers_behind_one_route

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

RATE = 12
FRAMES = 36  # 3 s: three segments of 1 s
JOB_SECONDS = 400  # bound of every wait on the stack


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = start_local_s3(tmp_path_factory.mktemp("segments-s3"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def settings(s3):
    return replace(s3.settings, video_segment_seconds=1, video_segment_tries=2)


@pytest.fixture(scope="module")
def engine(detector) -> Engine:
    loaded: Future = Future()
    loaded.set_result(detector)
    return Engine(loaded)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    photo, faces = composed_photo((70, 50), size=(640, 400))
    path = tmp_path_factory.mktemp("segments-clip") / "walk.mp4"
    make_clip(photo, faces, path, (320, 180), frames=FRAMES, rate=RATE)
    return path


@dataclass
class Failing:
    """The real engine, except that segment `index` fails its first `times` tries, as a
    replica that runs out of memory or meets a bad disk would."""

    engine: Engine
    index: int
    times: int

    def anonymise_video(self, *args, **kwargs):
        return self.engine.anonymise_video(*args, **kwargs)

    def encode_segment(self, source, target, segment: Segment, options, on_progress, seed=None):
        if segment.index == self.index and self.times > 0:
            self.times -= 1
            raise CorruptVideoError("the worker's disk gave wrong bytes")
        return self.engine.encode_segment(source, target, segment, options, on_progress, seed)


def start_job(
    s3, settings, clip: Path, anonymiser, prefix: str = ""
) -> tuple[str, str, list[dict]]:
    job, calls = new_job_id(), []
    key = inbox_key(prefix, job, clip.name)
    s3.store().fput("inbox", key, clip, "video/mp4")
    answer = process_video_object(key, anonymiser, s3.store(), settings, dispatch=calls.append)
    assert answer["state"] == "running" and answer["segments"] == 3
    return job, key, calls


def run_calls(s3, settings, anonymiser, calls: list[dict]) -> list[dict]:
    """Take the posted calls in order, as one queue worker would (bounded)."""
    answers = []
    for _ in range(20):
        if not calls:
            return answers
        payload = calls.pop(0)
        answers.append(
            process_segment(
                payload["segment"], anonymiser, s3.store(), settings, dispatch=calls.append
            )
        )
    raise AssertionError("the job kept posting calls")


def test_a_split_job_runs_segment_by_segment_and_is_joined(s3, settings, engine, clip) -> None:
    store = s3.store()
    job, key, calls = start_job(s3, settings, clip, engine)
    assert calls == [{"segment": {"job": job, "index": i}} for i in range(3)]
    status = job_answer(job, store, settings, None)
    assert status["state"] == "running"
    assert (status["segments_done"], status["segments_total"]) == (0, 3)
    assert status["frames_total"] == FRAMES
    assert len(store.keys("originals", prefix=segments_prefix(job))) == 3  # their statuses
    # One secret seed for all its segments' draws: kept in the status, never shown.
    assert read_status(store, settings, job).seed is not None and "seed" not in status

    answers = run_calls(s3, settings, engine, calls)
    assert [a["state"] for a in answers] == ["done", "done", "done"]
    status = job_answer(job, store, settings, None)
    assert status["state"] == "done", status
    assert status["frames_done"] == status["frames_total"] == FRAMES
    assert status["segments_done"] == status["segments_total"] == 3
    assert read_status(store, settings, job).seed is None  # dropped with the plan
    result = Path(clip.parent / f"{job}.mp4")
    store.fget("results", status["result_key"], result)
    with av.open(str(result)) as joined, av.open(str(clip)) as original:
        assert [f.pts for f in joined.decode(video=0)] == [f.pts for f in original.decode(video=0)]
    with av.open(str(result)) as joined, av.open(str(clip)) as original:
        assert [bytes(p) for p in joined.demux(audio=0) if p.size] == [
            bytes(p) for p in original.demux(audio=0) if p.size
        ]
    assert store.keys("originals", prefix=segments_prefix(job)) == []
    assert not store.exists("inbox", key)
    # A late repeat of a call (the queue delivering it again) changes nothing.
    late = process_segment({"job": job, "index": 1}, engine, store, settings, dispatch=calls.append)
    assert late["state"] == "skipped" and calls == []


def test_a_segment_that_fails_once_is_retried_alone_and_the_job_finishes(
    s3, settings, engine, clip
) -> None:
    failing = Failing(engine, index=1, times=1)
    job, _, calls = start_job(s3, settings, clip, failing)
    answers = run_calls(s3, settings, failing, calls)
    assert [a["state"] for a in answers] == ["done", "retried", "done", "done"]
    assert answers[1]["segment"] == 1 and "wrong bytes" in answers[1]["reason"]
    status = job_answer(job, s3.store(), settings, None)
    assert status["state"] == "done" and status["frames_done"] == FRAMES


def test_a_segment_out_of_tries_fails_the_job_with_its_reason_and_keeps_nothing(
    s3, settings, engine, clip
) -> None:
    store = s3.store()
    kept_before = set(store.keys("originals")) | set(store.keys("results"))
    failing = Failing(engine, index=2, times=99)
    job, key, calls = start_job(s3, settings, clip, failing)
    answers = run_calls(s3, settings, failing, calls)
    assert [a["state"] for a in answers] == ["done", "done", "retried", "failed"]
    status = job_answer(job, store, settings, None)
    assert status["state"] == "failed"
    assert status["reason"] == "segment 3 of 3: the worker's disk gave wrong bytes"
    assert status["code"] == "corrupt_video" and status["result_url"] is None
    kept = set(store.keys("originals")) | set(store.keys("results"))
    assert kept - kept_before == {status_key(job)}  # no segment, no half result
    assert not store.exists("inbox", key)


@dataclass
class DeletingMidway:
    """The real engine, except that while segment `index` renders, the owner's account is
    removed by another caller (the admin page), as if at any moment of a long job."""

    engine: Engine
    index: int
    delete: object
    deleted: bool = False

    def anonymise_video(self, *args, **kwargs):
        return self.engine.anonymise_video(*args, **kwargs)

    def encode_segment(self, source, target, segment: Segment, options, on_progress, seed=None):
        def progress(done: int, total: int) -> None:
            if segment.index == self.index and not self.deleted:
                self.deleted = bool(self.delete())
            on_progress(done, total)

        return self.engine.encode_segment(source, target, segment, options, progress, seed)


@pytest.mark.parametrize("index", [0, 2])  # a first segment; the last, whose call would join
def test_an_account_removed_while_a_segment_renders_leaves_nothing_of_the_job(
    s3, settings, engine, clip, index: int
) -> None:
    store = s3.store()
    prefix = owner_prefix(f"leaving-{index}")
    deleting = DeletingMidway(engine, index, lambda: remove_owned(s3.store(), prefix))
    job, key, calls = start_job(s3, settings, clip, deleting, prefix)
    answers = run_calls(s3, settings, deleting, calls)
    assert deleting.deleted
    states = [a["state"] for a in answers]
    assert states[index] == "deleted" and answers[index]["code"] == "gone"
    assert set(states) <= {"done", "deleted", "skipped"}, answers  # no join, no retry
    for bucket in ("inbox", "originals", "results"):
        left = [k for k in store.keys(bucket) if job in k or k.startswith(prefix)]
        assert left == [], (bucket, left)


# -- two function processes behind one async route --------------------------------------


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Iterator[tuple[object, str, list]]:
    folder = tmp_path_factory.mktemp("two-workers")
    env = {"FACEBLUR_VIDEO_SEGMENT_SECONDS": "1"}
    with workers_behind_one_route(folder, 2, env) as (s3, workers):
        yield s3, f"{workers[0].url}/function/faceblur", workers


def test_two_function_workers_share_one_videos_segments(two_workers, clip) -> None:
    s3, url, workers = two_workers
    job = new_job_id()
    s3.store().fput("inbox", inbox_key("", job, clip.name), clip, "video/mp4")
    deadline, state = time.monotonic() + JOB_SECONDS, "queued"
    while time.monotonic() < deadline and state not in ("done", "failed"):
        response = requests.get(url, params={"job": job}, timeout=10)
        state = response.json()["state"] if response.status_code == 200 else "queued"
        time.sleep(0.5)
    status = requests.get(url, params={"job": job}, timeout=10).json()
    assert status["state"] == "done", status
    assert status["frames_done"] == FRAMES and status["segments_total"] == 3
    # Both processes took calls: the event's (the plan) and segments' went to each.
    for worker in workers:
        assert "async call" in worker.log(), worker.log()[-2000:]
    assert s3.store().keys("originals", prefix=segments_prefix(job)) == []
