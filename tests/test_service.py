"""The use cases, called directly with the real pipeline and the real local S3 server."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from faceblur.media.photo import PhotoResult, anonymise_image
from faceblur.options import Options
from faceblur.service.events import ObjectEvent, process_bucket_events
from faceblur.service.photos import anonymise_and_store
from faceblur.store.keys import content_id
from faceblur.store.null import NullStore
from stack_fixtures import scaled_photo


@dataclass
class Pipeline:
    """The real pipeline with the session's detector: what a door hands the service."""

    detector: object

    def anonymise(self, data: bytes, options: Options, max_pixels: int) -> PhotoResult:
        return anonymise_image(data, self.detector, options, max_pixels=max_pixels)


@pytest.fixture(scope="module")
def portrait(portrait_annotations: list[dict]) -> bytes:
    entry = next(
        e for e in portrait_annotations if e["n_faces"] == 1 and 150 <= e["faces"][0][3] <= 450
    )
    return scaled_photo(entry, 480, "PNG")[0]


def test_the_null_store_keeps_nothing(s3, detector, portrait) -> None:
    outcome = anonymise_and_store(
        portrait, Options(), Pipeline(detector), NullStore(), s3.settings.max_pixels
    )
    assert outcome.kept is None
    assert outcome.result.faces and outcome.result.data != portrait
    assert {"detect", "pipeline", "storage"} <= set(outcome.timings)
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}
    with pytest.raises(KeyError):
        NullStore().result_url("anything")


def test_a_store_keeps_the_pair_with_its_face_count(s3, detector, portrait) -> None:
    store = s3.store()
    outcome = anonymise_and_store(
        portrait, Options(method="solid"), Pipeline(detector), store, s3.settings.max_pixels
    )
    kept = outcome.kept
    assert kept is not None and kept.pair.image_id == content_id(portrait)
    assert store.read("originals", kept.pair.original_key) == portrait
    assert store.read("results", kept.pair.result_key) == outcome.result.data
    assert store.face_count(kept.pair.result_key) == len(outcome.result.faces) >= 1
    assert kept.result_url.startswith(s3.settings.s3_public_url)


def test_an_inbox_object_moves_out_of_the_inbox_once(s3, detector, portrait) -> None:
    store = s3.store()
    store.client.put_object(
        bucket_name="inbox", object_name="in/a.png", data=io.BytesIO(portrait), length=len(portrait)
    )
    events = [
        ObjectEvent("inbox", "in/a.png", "s3:ObjectCreated:Put"),
        ObjectEvent("inbox", "in/a.png", "s3:ObjectCreated:Put"),  # a repeated notification
        ObjectEvent("results", "x/y.png"),
        ObjectEvent("elsewhere", "z.png"),
        ObjectEvent("inbox", "gone.png", "s3:ObjectRemoved:Delete"),
    ]
    answer = process_bucket_events(events, Pipeline(detector), store, s3.settings)
    (done,) = answer["processed"]
    assert done["key"] == "in/a.png" and done["faces"] >= 1
    assert [item["code"] for item in answer["ignored"]] == [
        "gone",
        "output_bucket",
        "not_inbox",
        "not_created",
    ]
    snapshot = s3.snapshot()
    assert snapshot["inbox"] == []
    assert snapshot["originals"] == [done["original_key"]]
    assert snapshot["results"] == [done["result_key"]]
    assert store.face_count(done["result_key"]) == done["faces"]


def test_an_inbox_object_that_is_no_image_is_reported_and_removed(s3, detector) -> None:
    # Removed (issue 23): nobody fetches it back, and sealed originals must not stay in clear.
    store = s3.store()
    store.client.put_object(
        bucket_name="inbox", object_name="notes.txt", data=io.BytesIO(b"text"), length=4
    )
    answer = process_bucket_events(
        [ObjectEvent("inbox", "notes.txt")], Pipeline(detector), store, s3.settings
    )
    assert answer["processed"] == [] and answer["ignored"][0]["key"] == "notes.txt"
    assert answer["ignored"][0]["code"] == "not_an_image"
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}
