"""A finished video job's tracks and a new render with a reviewer's edits, on the bucket
path against the real local S3 server: the owner's alone. Deleting the video (or its
owner) while that render waits, runs, or is being queued leaves no object of the job."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import cv2
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.clips import EXPOSED, central_detail_kept, displayed_frames, make_crossing_clip
from conftest import FACES_DEV
from faceblur.accounts import remove_owned
from faceblur.errors import BadRequestError, EditsError, NotFoundError, RegionsError
from faceblur.sealing.audit import AuditCutError
from faceblur.sealing.log import BucketAuditLog
from faceblur.service.entry import Engine
from faceblur.service.events import ObjectEvent, process_bucket_events
from faceblur.service.video_jobs import job_answer
from faceblur.service.videos import process_video_object, queue_edits, tracks_answer
from faceblur.store.keys import edits_key, inbox_key, new_job_id, status_key, tracks_key

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

PHOTO = "images/20_Family_Group_Family_Group_20_100.jpg"
OWNER, STRANGER = "u/ab12/", "u/other/"


def content_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_inbox(store, settings, detector, key: str) -> None:
    built: Future = Future()
    built.set_result(detector)
    engine = Engine(built)
    event = ObjectEvent("inbox", key, "s3:ObjectCreated:Put")
    process_bucket_events([event], engine, store, settings, videos=engine)


@pytest.fixture(scope="module")
def crossing(tmp_path_factory, dev_annotations) -> tuple[bytes, list]:
    entry = next(e for e in dev_annotations if e["image"] == PHOTO)
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / PHOTO)), cv2.COLOR_BGR2RGB)
    path = tmp_path_factory.mktemp("crossing") / "crossing.mp4"
    truth = make_crossing_clip(photo, entry["faces"][:2], path, frames=36)
    return path.read_bytes(), truth


def test_tracks_and_edits_round_trip_for_the_owner_alone(
    s3, detector, crossing, tmp_path: Path
) -> None:
    data, truth = crossing
    # The function's own audit key (the secret faceblur-audit-key): it signs the log's head.
    audit_key = Ed25519PrivateKey.generate()
    pem = audit_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    store, settings = s3.store(), dataclasses.replace(s3.settings, audit_key=pem.decode())
    job = new_job_id()
    key = inbox_key(OWNER, job, "crossing.mp4")
    store.client.put_object(
        bucket_name="inbox", object_name=key, data=io.BytesIO(data), length=len(data)
    )
    with pytest.raises(BadRequestError) as not_done:
        tracks_answer(job, store, settings, OWNER)
    assert not_done.value.code == "job_not_done"
    run_inbox(store, settings, detector, key)

    answer = tracks_answer(job, store, settings, OWNER)
    assert answer["job"] == job and answer["edits"] is None
    assert (answer["width"], answer["height"], answer["orientation"]) == (480, 270, 1)
    tracks = answer["tracks"]
    assert len(tracks) == 2 and all(t["frames"] == len(truth) for t in tracks)
    for stranger in (STRANGER, ""):
        with pytest.raises(NotFoundError):
            tracks_answer(job, store, settings, stranger)
        with pytest.raises(NotFoundError):
            queue_edits(job, {"show": [0]}, store, settings, stranger)
    with pytest.raises(EditsError):
        queue_edits(job, {"show": "all"}, store, settings, OWNER)
    outside = {"hide": [{"frames": [0, 1], "region": [470, 0, 20, 20]}]}
    with pytest.raises(RegionsError):
        queue_edits(job, outside, store, settings, OWNER)
    assert not store.exists("originals", edits_key(job))
    first_result = job_answer(job, store, settings, OWNER)["result_key"]

    # The first person's track left visible.
    shown = next(t["track"] for t in tracks if t["boxes"][0][1] < 100)
    with pytest.raises(BadRequestError) as no_reason:
        queue_edits(job, {"show": [shown]}, store, settings, OWNER)
    assert no_reason.value.code == "reason_required"
    queued = queue_edits(job, {"show": [shown]}, store, settings, OWNER, "court order 4")
    assert queued.job == job and job_answer(job, store, settings, OWNER)["state"] == "queued"
    (waiting,) = store.keys("inbox")
    assert waiting == key
    run_inbox(store, settings, detector, waiting)

    done = job_answer(job, store, settings, OWNER)
    assert done["state"] == "done" and done["result_key"] == first_result  # replaced
    again = tracks_answer(job, store, settings, OWNER)
    assert again["edits"] == {"show": [shown], "hide": []}
    assert again["tracks"] == tracks  # the same ids for the same clip
    result = tmp_path / "result.mp4"
    result.write_bytes(store.read("results", done["result_key"]))
    source = tmp_path / "source.mp4"
    source.write_bytes(data)
    frames = zip(displayed_frames(source), displayed_frames(result), truth, strict=True)
    kept = [[central_detail_kept(a, b, box) for box in boxes] for a, b, boxes in frames]
    assert sum(k[0] is not None and k[0] > 0.5 for k in kept) >= 0.95 * len(truth)
    assert all(k[1] is not None and k[1] <= EXPOSED for k in kept)
    assert store.keys("inbox") == []
    logged, head = store.keys("originals", prefix="audit/")
    assert head == "audit/head.json"
    entry = json.loads(store.read("originals", logged))
    assert (entry["outcome"], entry["track"], entry["operator"]) == ("shown", shown, OWNER)
    assert entry["reason"] == "court order 4" and entry["result_sha256"] == content_sha(data)
    # What `faceblur audit verify s3://originals/audit/ --audit-pub` checks: the chain and
    # the head signed with the function's key; an entry cut from the end is seen.
    log = BucketAuditLog(store, "originals", "audit/", audit_key.public_key())
    assert log.entries() == [entry]
    entry_bytes = store.read("originals", logged)
    store.remove("originals", logged)
    with pytest.raises(AuditCutError):
        log.entries()
    store.put("originals", logged, entry_bytes, "application/json")
    assert set(store.keys("originals", prefix="jobs/")) == {
        status_key(job),
        tracks_key(job),
        edits_key(job),
    }
    assert json.loads(store.read("originals", edits_key(job)))["show"] == [shown]


def test_tracks_of_unknown_or_malformed_jobs_are_refused(s3) -> None:
    store, settings = s3.store(), s3.settings
    with pytest.raises(NotFoundError):
        tracks_answer(new_job_id(), store, settings, None)
    with pytest.raises(BadRequestError):
        tracks_answer("../etc", store, settings, None)
    with pytest.raises(NotFoundError):
        queue_edits(new_job_id(), {"show": [1]}, store, settings, None)
    assert s3.snapshot()["originals"] == []


def test_the_function_answers_tracks_and_edits_with_plain_errors(function_server, s3) -> None:
    """Over HTTP: an unknown job's tracks are 404, edits malformed 400, for nobody's job 404."""
    unknown = new_job_id()
    function_server = f"{function_server}/function/faceblur"
    tracks = requests.get(function_server, params={"job": unknown, "tracks": "1"}, timeout=30)
    assert tracks.status_code == 404 and tracks.json()["code"] == "not_found"
    edits = requests.post(
        function_server, json={"job": unknown, "edits": {"show": "everyone"}}, timeout=30
    )
    assert edits.status_code == 400 and edits.json()["code"] == "edits"
    assert edits.json()["problem"] == "bad_show"
    nobody = requests.post(function_server, json={"job": unknown, "edits": {}}, timeout=30)
    assert nobody.status_code == 404
    extra = requests.post(
        function_server, json={"job": unknown, "edits": {}, "video": "x"}, timeout=30
    )
    assert extra.status_code == 400
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}


# -- deleting a video while its render with edits waits or runs ---------------------------


@pytest.fixture(scope="module")
def short_crossing(tmp_path_factory, dev_annotations) -> bytes:
    entry = next(e for e in dev_annotations if e["image"] == PHOTO)
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / PHOTO)), cv2.COLOR_BGR2RGB)
    path = tmp_path_factory.mktemp("short") / "crossing.mp4"
    make_crossing_clip(photo, entry["faces"][:2], path, frames=12)
    return path.read_bytes()


def finished_job(s3, detector, data: bytes) -> tuple[str, str, dict]:
    """A job run to done on the real store, with edits queued for it: its id, inbox key
    and the result it had."""
    store, settings = s3.store(), s3.settings
    job = new_job_id()
    key = inbox_key(OWNER, job, "crossing.mp4")
    store.client.put_object(
        bucket_name="inbox", object_name=key, data=io.BytesIO(data), length=len(data)
    )
    run_inbox(store, settings, detector, key)
    done = job_answer(job, store, settings, OWNER)
    assert done["state"] == "done"
    edits = {"show": [0], "hide": [{"frames": [0, 5], "region": [10, 10, 40, 40]}]}
    queue_edits(job, edits, store, settings, OWNER, "court order 7")
    assert store.keys("inbox") == [key]
    queued = json.loads(store.read("originals", status_key(job)))
    assert (queued["state"], queued["replaces"]) == ("queued", done["result_key"])
    assert job_answer(job, store, settings, OWNER)["state"] == "queued"
    return job, key, done


def nothing_of_the_job_is_left(s3, job: str) -> None:
    """No object of the job in any bucket: no inbox copy, original, result, status,
    tracks, edits or segment. The audit log of tracks shown stays (it is not the job's)."""
    kept = s3.snapshot()
    assert kept["inbox"] == [] and kept["results"] == []
    assert all(key.startswith("audit/") for key in kept["originals"]), kept
    assert not any(job in key for bucket in kept.values() for key in bucket)


def test_a_video_deleted_while_its_edits_wait_leaves_nothing_of_its_job(
    s3, detector, short_crossing
) -> None:
    store, settings = s3.store(), s3.settings
    job, key, done = finished_job(s3, detector, short_crossing)
    assert store.remove_photo(done["result_key"])  # the page's Delete
    nothing_of_the_job_is_left(s3, job)
    with pytest.raises(NotFoundError):
        job_answer(job, store, settings, OWNER)
    # The inbox's event for the copy arrives late: nothing to run, nothing written.
    run_inbox(store, settings, detector, key)
    nothing_of_the_job_is_left(s3, job)


class DeletedMidway:
    """The session's engine, with `delete` called (by another caller, as the page's Delete
    or an account's removal would) as soon as the render reports its first frames."""

    def __init__(self, engine: Engine, delete: Callable[[], object]) -> None:
        self.engine, self.delete = engine, delete
        self.deleted = False

    def anonymise_video(self, source, target, options, on_progress, **rest):
        def progress(done: int, total: int) -> None:
            if not self.deleted:
                self.deleted = bool(self.delete())
            on_progress(done, total)

        return self.engine.anonymise_video(source, target, options, progress, **rest)


@pytest.mark.parametrize("deleter", ["the video", "its owner's account"])
def test_a_video_deleted_while_its_edits_render_leaves_nothing_of_its_job(
    s3, detector, short_crossing, deleter: str
) -> None:
    store, settings = s3.store(), s3.settings
    job, key, done = finished_job(s3, detector, short_crossing)
    built: Future = Future()
    built.set_result(detector)
    other = s3.store()  # another caller's connection
    if deleter == "the video":
        midway = DeletedMidway(Engine(built), lambda: other.remove_photo(done["result_key"]))
    else:
        midway = DeletedMidway(Engine(built), lambda: remove_owned(other, OWNER))
    answer = process_video_object(key, midway, store, settings)
    assert midway.deleted
    assert (answer["state"], answer["code"]) == ("deleted", "gone")
    nothing_of_the_job_is_left(s3, job)
    # The event as the bucket path sees it: reported gone, nothing written.
    report = process_bucket_events(
        [ObjectEvent("inbox", key, "s3:ObjectCreated:Put")], Engine(built), store, settings
    )
    assert report["ignored"][0]["code"] == "gone"
    nothing_of_the_job_is_left(s3, job)


def test_edits_queued_for_a_video_deleted_meanwhile_are_taken_back(
    s3, detector, short_crossing
) -> None:
    """The delete lands while the reviewer's copy goes up: nothing of the job stays, and
    the reviewer is told the job is gone."""
    store, settings = s3.store(), s3.settings
    job, key, done = finished_job(s3, detector, short_crossing)
    run_inbox(store, settings, detector, key)  # the first edits ran: done again
    assert job_answer(job, store, settings, OWNER)["state"] == "done"

    class DeletingStore(type(store)):
        def fput(self, bucket, object_key, path, mime_type, metadata=None):
            super().fput(bucket, object_key, path, mime_type, metadata)
            if bucket == "inbox":
                self.remove_photo(done["result_key"])  # a Delete from another tab

    deleting = DeletingStore(settings)
    with pytest.raises(NotFoundError):
        queue_edits(job, {"hide": []}, deleting, settings, OWNER)
    nothing_of_the_job_is_left(s3, job)
