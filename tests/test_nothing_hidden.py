"""A request that hides nothing (issue 23, point 9): with FACEBLUR_REFUSE_UNHIDDEN_FACES on
it is refused where the detector finds faces, and a result that hides nothing is marked
so in its metadata."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
import pytest
from PIL import Image

from data import composed_entries
from faceblur.errors import NothingHiddenError
from faceblur.media.photo import PhotoResult, anonymise_image
from faceblur.options import Options
from faceblur.service.entry import Request, serve
from faceblur.service.videos import process_video_object
from faceblur.store.keys import inbox_key, new_job_id
from faceblur.store.s3 import NOTHING_HIDDEN_METADATA
from stack_fixtures import LocalS3, scaled_photo


@dataclass
class Pipeline:
    detector: object

    def anonymise(self, data: bytes, options: Options, max_pixels: int) -> PhotoResult:
        return anonymise_image(data, self.detector, options, max_pixels=max_pixels)


@pytest.fixture(scope="module")
def face() -> bytes:
    return scaled_photo(composed_entries(1)[0], 320, "JPEG")[0]


def blank() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((120, 160, 3), 128, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def marked(s3: LocalS3, key: str) -> str | None:
    stat = s3.store().client.stat_object(bucket_name="results", object_name=key)
    metadata = {name.lower(): value for name, value in (stat.metadata or {}).items()}
    return metadata.get(f"x-amz-meta-{NOTHING_HIDDEN_METADATA}")


UNHIDING = {"detect off, no regions": {"detect": "false"}, "threshold 1": {"threshold": "1"}}


@pytest.mark.parametrize("options", UNHIDING.values(), ids=UNHIDING)
def test_a_request_hiding_no_face_is_refused_when_the_setting_is_on(
    s3: LocalS3, detector, face: bytes, options: dict
) -> None:
    settings = replace(s3.settings, refuse_unhidden_faces=True)
    with pytest.raises(NothingHiddenError) as refused:
        serve(Request(face, options), Pipeline(detector), s3.store(), settings)
    assert refused.value.status == 400 and refused.value.code == "nothing_hidden"
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}


def test_what_hides_something_or_shows_no_face_is_served(
    s3: LocalS3, detector, face: bytes
) -> None:
    settings = replace(s3.settings, refuse_unhidden_faces=True)
    pipeline, store = Pipeline(detector), s3.store()
    drawn = serve(
        Request(face, {"detect": "false", "regions": "[[0, 0, 50, 50]]"}), pipeline, store, settings
    )
    assert marked(s3, drawn.kept.pair.result_key) is None
    empty = serve(Request(blank(), {"detect": "false"}), pipeline, store, settings)
    assert empty.result.anonymised == []
    assert marked(s3, empty.kept.pair.result_key) == "true"


def test_with_the_setting_off_a_result_hiding_nothing_is_marked(
    s3: LocalS3, detector, face: bytes
) -> None:
    assert s3.settings.refuse_unhidden_faces is False  # the default, as `make run` has it
    outcome = serve(Request(face, {"detect": "false"}), Pipeline(detector), s3.store(), s3.settings)
    assert outcome.result.anonymised == []
    assert marked(s3, outcome.kept.pair.result_key) == "true"
    hidden = serve(Request(face, {}), Pipeline(detector), s3.store(), s3.settings)
    assert hidden.result.anonymised and marked(s3, hidden.kept.pair.result_key) is None


def test_a_video_result_hiding_nothing_is_marked(s3: LocalS3, detector, tmp_path) -> None:
    from test_video_jobs import Videos, put_inbox
    from test_video_limits import live_clip

    store, job = s3.store(), new_job_id()
    key = inbox_key("", job, "grey.mkv")
    put_inbox(store, key, live_clip(tmp_path / "grey.mkv").read_bytes())
    done = process_video_object(key, Videos(detector, store, job), store, s3.settings)
    assert done["state"] == "done", done
    assert marked(s3, done["result_key"]) == "true"
