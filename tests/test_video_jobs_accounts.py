"""Video jobs where accounts are on: the caller's key queues a video under their prefix,
and only they can see its status."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests
from account_fixtures import AUTH_RATE_PER_MINUTE, AuthStack
from test_event_path import minio_event, post_like_minio

from bench.clips import make_clip

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

PASSWORD = "correct horse battery staple"
JOB_SECONDS = 300


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def status(stack: AuthStack, job: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(
        f"{stack.url}/function/faceblur", params={"job": job}, headers=headers, timeout=10
    )


def test_a_video_is_queued_for_its_owner_and_seen_by_them_alone(auth_stack, s3, tmp_path):
    path = tmp_path / "owned.mkv"
    make_clip(np.full((180, 320, 3), 90, np.uint8), [], path, frames=1, audio=False)
    video = path.read_bytes()
    auth_stack.accounts.add_user("filmmaker", PASSWORD)
    auth_stack.accounts.add_user("neighbour", PASSWORD)
    mine = auth_stack.accounts.create_key("filmmaker")
    theirs = auth_stack.accounts.create_key("neighbour")
    owner = auth_stack.accounts.user("filmmaker")
    url = f"{auth_stack.url}/function/faceblur"
    headers = {"Content-Type": "video/x-matroska"}

    refused = requests.post(url, data=video, headers=headers, timeout=30)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}

    response = requests.post(url, data=video, headers={**headers, **bearer(mine)}, timeout=30)
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    (key,) = s3.store().keys("inbox")
    assert key == f"{owner.prefix}videos/{job}/video.mkv"

    # Polled more often than the rate limit allows requests: polls do not count.
    for _ in range(AUTH_RATE_PER_MINUTE + 2):
        answer = status(auth_stack, job, bearer(mine))
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "queued" and answer.json()["prefix"] == owner.prefix
    assert status(auth_stack, job, bearer(theirs)).status_code == 404
    assert status(auth_stack, job, {}).status_code == 401

    # MinIO's notification of that put, as the cluster sends it (no webhook here).
    assert post_like_minio(auth_stack.url, minio_event("inbox", key, len(video))).status_code == 202
    deadline = time.monotonic() + JOB_SECONDS
    while (state := status(auth_stack, job, bearer(mine)).json()["state"]) not in (
        "done",
        "failed",
    ):
        assert time.monotonic() < deadline, f"job {job} still {state}"
        time.sleep(0.3)
    done = status(auth_stack, job, bearer(mine)).json()
    assert done["state"] == "done" and done["result_key"].startswith(owner.prefix)
    assert status(auth_stack, job, bearer(theirs)).status_code == 404
    assert s3.store().keys("inbox") == []
