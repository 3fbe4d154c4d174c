"""Every path keeps its owner (issue 23, point 4): inbox photos are stored under the
prefix of the key they arrived at, a failed inbox object does not stay in the inbox, and
removing an owner's objects takes their inbox uploads and video job statuses too."""

from __future__ import annotations

import io
from dataclasses import dataclass

from data import composed_entries
from faceblur.accounts import remove_owned
from faceblur.media.photo import PhotoResult, anonymise_image
from faceblur.options import Options
from faceblur.service.events import ObjectEvent, process_bucket_events
from faceblur.service.video_jobs import JobStatus, write_status
from faceblur.store.keys import inbox_key, new_job_id, status_key
from faceblur.store.s3 import Store
from stack_fixtures import LocalS3, scaled_photo

OWNER = "u/ab12cd34/"
OTHER = "u/ffee0099/"


@dataclass
class Pipeline:
    """The real photo pipeline with the session's detector, as a door hands it over."""

    detector: object

    def anonymise(self, data: bytes, options: Options, max_pixels: int) -> PhotoResult:
        return anonymise_image(data, self.detector, options, max_pixels=max_pixels)


def put(store: Store, bucket: str, key: str, data: bytes) -> None:
    store.client.put_object(
        bucket_name=bucket, object_name=key, data=io.BytesIO(data), length=len(data)
    )


def events(store: Store, settings, detector, key: str) -> dict:
    event = ObjectEvent("inbox", key, "s3:ObjectCreated:Put")
    return process_bucket_events([event], Pipeline(detector), store, settings)


def test_an_inbox_photo_is_stored_under_its_owners_prefix(s3: LocalS3, detector) -> None:
    store = s3.store()
    photo = scaled_photo(composed_entries(1)[0], 240, "JPEG")[0]
    key = f"{OWNER}videos/{new_job_id()}/portrait.jpg"  # the page's upload path
    put(store, "inbox", key, photo)
    answer = events(store, s3.settings, detector, key)
    [done] = answer["processed"]
    assert done["original_key"].startswith(OWNER) and done["result_key"].startswith(OWNER)
    snapshot = s3.snapshot()
    assert snapshot["inbox"] == []
    assert snapshot["results"] == [done["result_key"]]
    assert snapshot["originals"] == [done["original_key"]]


def test_an_inbox_object_that_fails_is_removed(s3: LocalS3, detector) -> None:
    store = s3.store()
    for key, data in ((f"{OWNER}notes.txt", b"not an image"), ("cut.jpg", b"\xff\xd8\xff\xe0")):
        put(store, "inbox", key, data)
        answer = events(store, s3.settings, detector, key)
        assert answer["processed"] == []
        assert answer["ignored"][0]["key"] == key
        assert answer["ignored"][0]["code"] in ("not_an_image", "corrupt_image")
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}


def test_removing_an_owner_takes_inbox_uploads_and_job_statuses(s3: LocalS3) -> None:
    store, settings = s3.store(), s3.settings
    theirs, others = new_job_id(), new_job_id()
    for owner, job in ((OWNER, theirs), (OTHER, others)):
        put(store, "results", f"{owner}a.jpg", b"r")
        put(store, "originals", f"{owner}a.jpg", b"o")
        put(store, "inbox", inbox_key(owner, job, "clip.mp4"), b"v")
        write_status(store, settings, JobStatus(job, "running", prefix=owner))
    assert remove_owned(store, OWNER) == 4
    assert s3.snapshot() == {
        "inbox": [inbox_key(OTHER, others, "clip.mp4")],
        "originals": sorted([f"{OTHER}a.jpg", status_key(others)]),
        "results": [f"{OTHER}a.jpg"],
    }
