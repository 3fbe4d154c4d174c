"""Videos on the page at the Flask level: POST /videos, GET /videos/<job>, the gallery.

POST /videos only presigns (pure computation): its URL is checked by sending a file to
it on the real local S3 server. GET /videos/<job> is checked against the real function
(session fixture, once the function answers `?job=`) and, for the states a job goes
through, against the real template runner serving a handler that answers the
video-job contract's status documents (docs in HELPERS' contract: state, frames,
result_key, prefix, reason) from a file: the page's half of the contract, tested alone.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from s3_server import free_port, stop_process

from bench.clips import make_clip
from faceblur.accounts import AccountSettings, open_accounts
from faceblur.config import load_settings
from faceblur.service.video_jobs import JobStatus, SegmentStatus, write_status
from faceblur.service.videos import queue_video
from faceblur.store.keys import (
    edits_key,
    inbox_key,
    inbox_name,
    job_keys,
    new_job_id,
    segment_status_key,
    tracks_key,
)
from frontend.app import create_app
from frontend.base import VIDEO_STARTS_PER_HOUR
from frontend.videos import VIDEO_QUOTA_FACTOR

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "functions" / "local" / "template_runner.py"
SECRET = "a-test-secret-key-that-is-long-enough"
PASSWORD = "correct horse battery staple"
JOB = re.compile(r"[0-9a-f]{32}")
VIDEO_LIMIT = 10_000


def page_settings(tmp_path: Path, gateway: str | None = None, **env: str):
    environ = {
        "FACEBLUR_GATEWAY_URL": gateway or f"http://127.0.0.1:{free_port()}",
        "FACEBLUR_FRONTEND_SECRET_KEY": SECRET,
        "FACEBLUR_MAX_VIDEO_BYTES": str(VIDEO_LIMIT),
        **env,
    }
    return load_settings(environ=environ, secrets_dir=tmp_path)


def csrf_token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def start_video(client, name="holiday clip.mp4", size=5000, kind="video/mp4", token=None):
    return client.post(
        "/videos",
        json={"name": name, "size": size, "type": kind},
        headers={"X-CSRFToken": csrf_token(client) if token is None else token},
    )


@pytest.fixture
def client(s3, tmp_path):
    settings = page_settings(tmp_path, **s3.env)
    return create_app({"FACEBLUR_SETTINGS": settings}).test_client()


# --- POST /videos ---------------------------------------------------------------------


def post_form(upload: dict, data: bytes, name: str = "clip.mp4") -> requests.Response:
    """What the page's script sends: the form's fields, then the file."""
    return requests.post(
        upload["url"], data=upload["fields"], files={"file": (name, data)}, timeout=10
    )


def upload_key(body: dict) -> str:
    return body["upload"]["fields"]["key"]


def policy_of(body: dict) -> dict:
    return json.loads(base64.b64decode(body["upload"]["fields"]["policy"]))


def test_a_video_gets_a_job_and_an_upload_form_that_puts_it_into_the_inbox(client, s3):
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(4000)
    answer = start_video(client, size=len(data))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert JOB.fullmatch(body["job"])
    assert body["status_url"] == f"/videos/{body['job']}"
    sent = post_form(body["upload"], data)
    assert sent.status_code in (200, 204), sent.text
    key = f"videos/{body['job']}/holiday_clip.mp4"
    assert upload_key(body) == key
    assert s3.snapshot()["inbox"] == [key]
    assert s3.store().read("inbox", key) == data


def test_the_upload_form_allows_the_declared_size_type_and_key_for_minutes(s3, tmp_path):
    """MinIO checks this policy on every upload: a file of another size, another key or
    type, or an upload begun after it expired, is refused (400 EntityTooLarge/Small,
    AccessDenied). One form is one upload of one file."""
    public = "https://media.example.org:9443"
    settings = page_settings(tmp_path, **s3.env, FACEBLUR_S3_PUBLIC_URL=public)
    client = create_app({"FACEBLUR_SETTINGS": settings}).test_client()
    asked = datetime.now(UTC)
    body = start_video(client, name="../../etc/passwd\\x.MOV", size=4321).get_json()
    assert body["upload"]["url"] == f"{public}/inbox"
    fields = body["upload"]["fields"]
    key = f"videos/{body['job']}/x.MOV"
    assert fields["key"] == key and fields["Content-Type"] == "video/mp4"
    assert fields["x-amz-signature"] and fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert fields["x-amz-credential"].endswith("/us-east-1/s3/aws4_request")
    policy = policy_of(body)
    conditions = policy["conditions"]
    assert ["content-length-range", 4321, 4321] in conditions
    assert ["eq", "$key", key] in conditions and ["eq", "$bucket", "inbox"] in conditions
    assert ["eq", "$Content-Type", "video/mp4"] in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(minutes=5) <= expires - asked <= timedelta(minutes=11)
    # The page may call that origin (upload) and play videos from it.
    policy = client.get("/").headers["Content-Security-Policy"]
    assert f"connect-src 'self' {public}" in policy and f"media-src 'self' blob: {public}" in policy


def test_s3rver_takes_any_size_with_a_form_so_the_function_is_the_local_guard(client, s3):
    """Found here: s3rver 3.7 ignores a POST form's policy (its postObject marks `policy`
    "unimplemented" and checks no signature), so under `make run` a form declared for
    100 bytes stores 5000. The guards that hold locally are the page's own checks of the
    declared size, the per-person limits below, and the function's size check before it
    downloads a byte (a video over FACEBLUR_MAX_VIDEO_BYTES fails and leaves the inbox)."""
    body = start_video(client, size=100).get_json()
    assert ["content-length-range", 100, 100] in policy_of(body)["conditions"]
    sent = post_form(body["upload"], bytes(5000))
    assert sent.status_code in (200, 204)
    assert s3.store().size("inbox", upload_key(body)) == 5000


@pytest.mark.parametrize(
    "name", ["holiday clip.mp4", "../../etc/passwd\\x.MOV", "Zoë's clip (1).mp4", "семья.mp4", ""]
)
def test_the_page_and_the_function_give_a_video_the_same_inbox_name(client, s3, tmp_path, name):
    """Both doors into the inbox (the page's presigned POST, the function's POST) name a
    video's inbox object by the same rule (faceblur.store.keys), so its job keeps one name."""
    body = start_video(client, name=name, kind="video/mp4").get_json()
    page_key = upload_key(body)
    clip = tmp_path / "clip.mp4"
    make_clip(np.full((72, 128, 3), 90, np.uint8), [], clip, (128, 72), frames=1, audio=False)
    queued = queue_video(clip.read_bytes(), "video/mp4", name, s3.store(), s3.settings, "")
    (function_key,) = s3.store().keys("inbox")
    assert page_key == inbox_key("", body["job"], inbox_name(name, "video/mp4"))
    assert function_key == inbox_key("", queued.job, inbox_name(name, "video/mp4"))
    assert page_key.rsplit("/", 1)[1] == function_key.rsplit("/", 1)[1]


def test_starting_videos_is_rate_limited_per_person(client, s3):
    """POST /videos had no limit: each answer is a form for another upload."""
    statuses = [start_video(client).status_code for _ in range(VIDEO_STARTS_PER_HOUR + 1)]
    assert statuses == [200] * VIDEO_STARTS_PER_HOUR + [429]
    refused = start_video(client)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "many videos" in refused.get_json()["error"]


def test_what_waits_in_the_inbox_is_held_to_a_quota(client, s3):
    """A person's videos waiting in the inbox (uploaded, not yet processed) may take at most
    VIDEO_QUOTA_FACTOR times the video limit; the next is refused until they are done."""
    quota = VIDEO_QUOTA_FACTOR * VIDEO_LIMIT
    body = start_video(client, size=VIDEO_LIMIT).get_json()
    assert post_form(body["upload"], bytes(VIDEO_LIMIT)).status_code in (200, 204)
    body = start_video(client, size=quota - VIDEO_LIMIT).get_json()
    assert post_form(body["upload"], bytes(quota - VIDEO_LIMIT)).status_code in (200, 204)
    refused = start_video(client, size=1)
    assert refused.status_code == 429, refused.get_json()
    assert "waiting" in refused.get_json()["error"]
    s3.store().remove("inbox", upload_key(body))  # one is processed: room again
    assert start_video(client, size=1).status_code == 200


def test_each_video_gets_its_own_job(client):
    jobs = {start_video(client).get_json()["job"] for _ in range(3)}
    assert len(jobs) == 3


def test_too_large_video_is_413_and_a_photo_type_is_415(client, s3):
    too_large = start_video(client, size=VIDEO_LIMIT + 1)
    assert too_large.status_code == 413
    assert "too large" in too_large.get_json()["error"] and "KB" in too_large.get_json()["error"]
    assert start_video(client, size=VIDEO_LIMIT).status_code == 200
    for kind in ("image/jpeg", "", "application/octet-stream", None):
        refused = start_video(client, kind=kind)
        assert refused.status_code == 415 and "not a video" in refused.get_json()["error"]
    assert s3.snapshot()["inbox"] == []


@pytest.mark.parametrize("size", [0, -1, "100", None, True, 1.5])
def test_a_wrong_size_is_400_json(client, size):
    answer = start_video(client, size=size)
    assert answer.status_code == 400 and answer.get_json()["error"]


def test_posting_without_the_csrf_token_is_refused(client):
    for token in ("", "forged"):
        answer = start_video(client, token=token)
        assert answer.status_code == 400 and "expired" in answer.get_json()["error"]
    answer = client.post("/videos", data="not json", headers={"X-CSRFToken": csrf_token(client)})
    assert answer.status_code == 400 and answer.get_json()["error"]


def test_without_the_script_a_video_gets_a_plain_refusal(client, s3):
    answer = client.post(
        "/upload",
        data={
            "csrf_token": csrf_token(client),
            "photo": (
                io.BytesIO(b"\x00\x00\x00\x18ftypmp42" + bytes(100)),
                "clip.mp4",
                "video/mp4",
            ),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200
    assert "please turn on JavaScript" in answer.get_data(as_text=True)
    assert s3.snapshot()["inbox"] == []


# --- accounts -------------------------------------------------------------------------


@pytest.fixture
def accounts_app(s3, tmp_path):
    """The page with accounts on (SQLite); the gateway is given by each test."""
    database = f"sqlite:///{tmp_path / 'accounts.db'}"
    account_settings = AccountSettings(
        enabled=True,
        signup=False,
        rate_per_minute=60,
        database_url=database,
        internal_token="internal-token-for-the-test",
    )
    people = open_accounts(database)

    def build(gateway: str | None = None):
        settings = page_settings(tmp_path, gateway, **s3.env)
        app = create_app({"FACEBLUR_SETTINGS": settings, "FACEBLUR_ACCOUNTS": account_settings})
        return app, people

    yield build
    people.engine.dispose()


def signed_in(app, people, name: str):
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    people.add_user(name, PASSWORD)
    client = app.test_client()
    page = client.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/signin", data={"csrf_token": token, "name": name, "password": PASSWORD})
    assert answer.status_code == 302
    client.name, client.prefix = name, people.user(name).prefix
    return client


def test_with_accounts_the_inbox_key_carries_the_owner_prefix(accounts_app, s3):
    app, people = accounts_app()
    ann = signed_in(app, people, "ann")
    assert ann.prefix.startswith("u/")
    body = start_video(ann, name="clip.webm", kind="video/webm").get_json()
    assert upload_key(body) == f"{ann.prefix}videos/{body['job']}/clip.webm"
    signed_out = app.test_client()
    page = signed_out.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = start_video(signed_out, token=token)
    assert answer.status_code == 401 and "sign in" in answer.get_json()["error"]
    assert signed_out.get(f"/videos/{body['job']}").status_code == 401


# --- GET /videos/<job> ------------------------------------------------------------------

CONTRACT_HANDLER = """
import json, os

def handle(event, context):
    statuses = json.loads(open(os.environ["JOB_STATUSES"]).read())
    job = event.query.get("job", "")
    seen = dict(event.headers)
    with open(os.environ["JOB_STATUSES"] + ".seen", "a") as log:
        log.write(json.dumps({"job": job, "owner": seen.get("X-Faceblur-Owner"),
                              "auth": seen.get("Authorization")}) + "\\n")
    if len(job) != 32:
        return {"statusCode": 400, "body": {"error": "malformed job id"}}
    if job in statuses:
        return {"statusCode": 200, "body": statuses[job]}
    if "*" in statuses:  # any other job: this status (e.g. queued: its upload is in)
        return {"statusCode": 200, "body": dict(statuses["*"], job=job)}
    return {"statusCode": 404, "body": {"error": "no such job"}}
"""


class ContractFunction:
    """The template runner serving CONTRACT_HANDLER; `statuses` are what it answers."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / "statuses.json"
        self.file.write_text("{}")
        handler = folder / "handler.py"
        handler.write_text(CONTRACT_HANDLER)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "JOB_STATUSES": str(self.file)}
        command = [sys.executable, str(RUNNER), "--handler", str(handler), "--port", str(port)]
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/function/faceblur?job=x", timeout=1)
                Path(f"{self.file}.seen").unlink()  # that call was only to see it is up
                return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the template runner did not start")

    def answer(self, statuses: dict[str, dict]) -> None:
        self.file.write_text(json.dumps(statuses))

    def seen(self) -> list[dict]:
        path = Path(f"{self.file}.seen")
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def contract_function(tmp_path) -> Iterator[ContractFunction]:
    function = ContractFunction(tmp_path)
    yield function
    function.stop()


def status(job: str, state: str, prefix: str = "", **fields) -> dict:
    return {
        "job": job,
        "state": state,
        "frames_done": 0,
        "frames_total": 0,
        "result_key": None,
        "reason": None,
        "prefix": prefix,
        "name": "holiday_clip.mp4",
        **fields,
    }


def test_job_status_through_the_function_for_each_state(contract_function, s3, tmp_path):
    settings = page_settings(tmp_path, contract_function.url, **s3.env)
    client = create_app({"FACEBLUR_SETTINGS": settings}).test_client()
    image_id = uuid.uuid4().hex
    key = f"{image_id}/0123456789abcdef.mp4"
    queued, running, split, done, failed = (uuid.uuid4().hex for _ in range(5))
    segments = {"segments_done": 2, "segments_total": 5}
    contract_function.answer(
        {
            queued: status(queued, "queued"),
            running: status(running, "running", frames_done=7, frames_total=15),
            split: status(split, "running", frames_done=130, frames_total=300, **segments),
            done: status(done, "done", frames_done=15, frames_total=15, result_key=key),
            failed: status(failed, "failed", reason="the video is longer than 600 s"),
        }
    )
    assert client.get(f"/videos/{queued}").get_json() == {
        "job": queued,
        "state": "queued",
        "frames_done": 0,
        "frames_total": 0,
        "segments_done": 0,
        "segments_total": 0,
    }
    progress = client.get(f"/videos/{running}").get_json()
    assert (progress["state"], progress["frames_done"], progress["frames_total"]) == (
        "running",
        7,
        15,
    )
    assert (progress["segments_done"], progress["segments_total"]) == (0, 0)  # not split
    in_parts = client.get(f"/videos/{split}").get_json()
    frames = {"frames_done": 130, "frames_total": 300}
    assert in_parts == {"job": split, "state": "running", **frames, **segments}
    finished = client.get(f"/videos/{done}").get_json()
    assert finished["state"] == "done" and finished["key"] == key
    assert finished["result_url"].startswith(f"http://{s3.endpoint}/results/{key}?")
    assert finished["download_url"] == f"/results/{key}?name=holiday_clip.mp4"
    assert finished["download_name"] == "holiday_clip-anonymised.mp4"
    assert finished["delete_url"] == f"/delete/{key}"
    gone = client.get(f"/videos/{failed}").get_json()
    assert gone["state"] == "failed" and gone["reason"] == "the video is longer than 600 s"
    unknown = client.get(f"/videos/{uuid.uuid4().hex}")
    assert unknown.status_code == 404 and "no such video" in unknown.get_json()["error"]


def test_a_done_job_with_a_key_we_do_not_trust_is_not_linked(contract_function, s3, tmp_path):
    settings = page_settings(tmp_path, contract_function.url, **s3.env)
    client = create_app({"FACEBLUR_SETTINGS": settings}).test_client()
    job = uuid.uuid4().hex
    contract_function.answer({job: status(job, "done", result_key="../originals/x.mp4")})
    answer = client.get(f"/videos/{job}")
    assert answer.status_code == 503 and "result_url" not in answer.get_json()
    contract_function.answer({job: {"job": job, "state": "exploded"}})
    assert client.get(f"/videos/{job}").status_code == 503


def test_another_owners_job_is_404(accounts_app, contract_function):
    app, people = accounts_app(contract_function.url)
    ann, bob = signed_in(app, people, "ann"), signed_in(app, people, "bob")
    job = uuid.uuid4().hex
    contract_function.answer({job: status(job, "running", prefix=ann.prefix, frames_total=9)})
    assert ann.get(f"/videos/{job}").get_json()["frames_total"] == 9
    refused = bob.get(f"/videos/{job}")
    assert refused.status_code == 404 and "no such video" in refused.get_json()["error"]
    # The page asks the function for its signed-in person, with the internal token.
    seen = contract_function.seen()
    assert [call["owner"] for call in seen] == [ann.name, bob.name]
    assert {call["auth"] for call in seen} == {"Bearer internal-token-for-the-test"}


@pytest.mark.parametrize("job", ["abc", "0" * 31, "0" * 33, "G" * 32, "A" * 32])
def test_a_malformed_job_id_is_400_and_the_function_is_not_asked(
    contract_function, s3, tmp_path, job
):
    settings = page_settings(tmp_path, contract_function.url, **s3.env)
    client = create_app({"FACEBLUR_SETTINGS": settings}).test_client()
    answer = client.get(f"/videos/{job}")
    assert answer.status_code == 400 and answer.get_json()["error"]
    assert contract_function.seen() == []


def test_function_down_is_503_in_plain_words(client):
    answer = client.get(f"/videos/{uuid.uuid4().hex}")
    assert answer.status_code == 503
    assert "not available right now" in answer.get_json()["error"]


def test_the_real_function_says_an_unknown_job_is_404(function_server, s3, tmp_path):
    """Needs the function's `GET ?job=` (vjobs' side of issue 13)."""
    settings = page_settings(tmp_path, function_server, **s3.env)
    client = create_app({"FACEBLUR_SETTINGS": settings}).test_client()
    answer = client.get(f"/videos/{uuid.uuid4().hex}")
    assert answer.status_code == 404, answer.get_data(as_text=True)


def test_the_real_function_tells_the_page_a_split_jobs_segments(function_server, s3, tmp_path):
    """A split job as the function stores it (its status and one object per segment):
    the function sums the segments, the page passes them on for its progress bar."""
    store, job = s3.store(), new_job_id()
    running = JobStatus(job, "running", frames_total=90, segments_total=3, name="clip.mp4")
    write_status(store, s3.settings, running)
    segments = [SegmentStatus("done", 1, 30, 30), SegmentStatus("running", 1, 12, 30)]
    for index, segment in enumerate([*segments, SegmentStatus("queued")]):
        key = segment_status_key(job, index)
        store.put(s3.settings.bucket_originals, key, segment.to_bytes(), "application/json")
    settings = page_settings(tmp_path, function_server, **s3.env)
    client = create_app({"FACEBLUR_SETTINGS": settings}).test_client()
    answer = client.get(f"/videos/{job}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == {
        "job": job,
        "state": "running",
        "frames_done": 42,
        "frames_total": 90,
        "segments_done": 1,
        "segments_total": 3,
    }


# --- gallery, download, delete ------------------------------------------------------------


def test_gallery_plays_a_stored_video_result_and_it_downloads_and_deletes(client, s3):
    store = s3.store()
    image_id = uuid.uuid4().hex
    original, result = f"{image_id}.mp4", f"{image_id}/0123456789abcdef.mp4"
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(2000)  # never decoded by the page
    store.put("originals", original, video, "video/mp4")
    store.put("results", result, video, "video/mp4")
    page = client.get("/gallery").get_data(as_text=True)
    assert re.search(
        r'<video class="thumb" src="http://[^"]*/results/' + re.escape(result) + r'\?[^"]*"'
        r' controls preload="metadata"',
        page,
    ), page
    assert f"/thumbnails/{result}" not in page
    assert client.get(f"/thumbnails/{result}").status_code == 404
    download = client.get(f"/results/{result}?name=holiday.mov")
    assert download.status_code == 200 and download.data == video
    assert download.mimetype == "video/mp4" and download.content_length == len(video)
    assert "filename=holiday-anonymised.mp4" in download.headers["Content-Disposition"]
    named = client.get(f"/results/{result}?name=fête d'été.mov").headers["Content-Disposition"]
    assert 'filename="fete d_ete-anonymised.mp4"' in named, named
    assert "filename*=UTF-8''f%C3%AAte%20d_%C3%A9t%C3%A9-anonymised.mp4" in named, named
    assert client.get(f"/results/{image_id}/fedcba9876543210.mp4").status_code == 404
    token = csrf_token(client)
    deleted = client.post(f"/delete/{result}", data={"csrf_token": token})
    assert deleted.status_code == 200
    assert s3.snapshot()["originals"] == [] and s3.snapshot()["results"] == []


def finished_video_job(s3, prefix: str = "") -> tuple[str, str, str]:
    """A video job as the function leaves it in the real store: original, result, status,
    tracks, a reviewer's edits, and a segment status a split run left behind. Its result
    key, original key and job id."""
    store, job, image_id = s3.store(), new_job_id(), uuid.uuid4().hex
    original, result = f"{prefix}{image_id}.mp4", f"{prefix}{image_id}/0123456789abcdef.mp4"
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(2000)  # never decoded by the page
    store.put("originals", original, video, "video/mp4")
    store.put("results", result, video, "video/mp4")
    done = JobStatus(job, "done", 30, 30, result, original, prefix, name="clip.mp4")
    write_status(store, s3.settings, done)
    store.put("originals", tracks_key(job), b'{"tracks": []}', "application/json")
    store.put("originals", edits_key(job), b'{"show": [1], "hide": []}', "application/json")
    store.put("originals", segment_status_key(job, 0), b'{"state": "done"}', "application/json")
    return result, original, job


def test_deleting_a_video_takes_its_jobs_status_tracks_and_edits(client, s3):
    gone, _, _ = finished_video_job(s3)
    kept, kept_original, kept_job = finished_video_job(s3)
    deleted = client.post(f"/delete/{gone}", data={"csrf_token": csrf_token(client)})
    assert deleted.status_code == 200
    assert s3.snapshot()["results"] == [kept]
    kept_parts = [kept_original, segment_status_key(kept_job, 0), *job_keys(kept_job)]
    assert s3.snapshot()["originals"] == sorted(kept_parts)


def test_deleting_all_of_ones_results_takes_ones_video_jobs_whole(accounts_app, s3):
    app, people = accounts_app()
    ann, bob = signed_in(app, people, "ann"), signed_in(app, people, "bob")
    finished_video_job(s3, ann.prefix)
    kept, kept_original, kept_job = finished_video_job(s3, bob.prefix)
    done = ann.post(
        "/account/results/delete", data={"csrf_token": csrf_token(ann), "confirm": "yes"}
    )
    assert done.status_code == 200 and "Deleted 6 stored files" in done.get_data(as_text=True)
    assert s3.snapshot()["results"] == [kept]
    kept_parts = [kept_original, segment_status_key(kept_job, 0), *job_keys(kept_job)]
    assert s3.snapshot()["originals"] == sorted(kept_parts)
