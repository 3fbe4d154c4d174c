"""The event door and the order of a POST (issue 23, points 1 and 2).

A bucket notification is taken only with the S3 server's webhook token (MinIO's
MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>, s3rver's S3RVER_WEBHOOK_TOKEN): without it the
answer is 401, nothing is read from the store, nothing is said about the object. A
person's key is checked before the body is parsed, and a body is held to the photo limit
unless its Content-Type may carry a video.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from account_fixtures import AuthStack

from data import composed_entries
from stack_fixtures import LocalS3, scaled_photo, webhook_headers

KEY = "private/holiday 2024.jpg"
ASYNC_WAIT_SECONDS = 60


def runner_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    """What the session's function runners printed (the async route logs each call)."""
    logs = sorted(tmp_path_factory.getbasetemp().glob("function*/runner.log"))
    return "\n".join(path.read_text(errors="replace") for path in logs)


def event(key: str = KEY) -> dict:
    return {
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": "inbox"}, "object": {"key": key}},
            }
        ]
    }


@pytest.fixture
def dropped(s3: LocalS3) -> bytes:
    photo = scaled_photo(composed_entries(1)[0], 240, "JPEG")[0]
    s3.store().put("inbox", KEY, photo, "image/jpeg")
    return photo


WITHOUT_TOKEN = {
    "no header": {},
    "another scheme": {"Authorization": "Basic YTpi"},
    "a wrong token": {"Authorization": "Bearer not-the-webhook-token"},
}


def assert_refused(response: requests.Response, s3: LocalS3, before: dict) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    # Nothing said about the object (not even that it is or is not in the inbox).
    assert "holiday" not in response.text and "inbox" not in response.text
    assert s3.snapshot() == before


@pytest.mark.parametrize("headers", WITHOUT_TOKEN.values(), ids=WITHOUT_TOKEN)
def test_an_event_without_the_webhook_token_is_refused_accounts_off(
    function_server: str, s3: LocalS3, dropped: bytes, headers: dict
) -> None:
    before = s3.snapshot()
    for key in (KEY, "not-there.png"):
        response = requests.post(
            f"{function_server}/function/faceblur", json=event(key), headers=headers, timeout=60
        )
        assert_refused(response, s3, before)
        assert response.json()["code"] == "webhook_token"


def test_an_event_with_the_webhook_token_is_processed(
    function_server: str, s3: LocalS3, dropped: bytes
) -> None:
    response = requests.post(
        f"{function_server}/function/faceblur",
        json=event(),
        headers=webhook_headers(),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert [p["key"] for p in response.json()["processed"]] == [KEY]
    assert s3.snapshot()["inbox"] == []


def test_an_event_with_a_persons_key_is_refused_accounts_on(
    auth_stack: AuthStack, s3: LocalS3, dropped: bytes
) -> None:
    auth_stack.accounts.add_user("eventposter", "correct horse battery staple")
    key = auth_stack.accounts.create_key("eventposter")
    before = s3.snapshot()
    url = f"{auth_stack.url}/function/faceblur"
    for headers in [*WITHOUT_TOKEN.values(), {"Authorization": f"Bearer {key}"}]:
        response = requests.post(url, json=event(), headers=headers, timeout=60)
        assert_refused(response, s3, before)


def test_the_key_is_checked_before_the_body_is_parsed(auth_stack: AuthStack, s3: LocalS3) -> None:
    # Malformed JSON: parsed first, it would be a 400 that tells the body was read.
    for body in (b"{not json", b"[" * 10_000):
        response = requests.post(
            f"{auth_stack.url}/function/faceblur",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "unauthorized"


def test_a_photo_body_is_held_to_the_photo_limit_before_parsing(
    function_server: str, s3_server: LocalS3
) -> None:
    limit = s3_server.settings.max_bytes
    # A JSON photo a little over the photo limit once base64-encoded, and malformed: the
    # limit refuses it before the parser (and the decoder) would hold it again in memory.
    body = b'{"image": "' + b"A" * (limit * 4 // 3 + 128 * 1024)
    url = f"{function_server}/function/faceblur"
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=120
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "max_bytes"
    # The same bytes as image/*: a photo, the photo limit.
    response = requests.post(url, data=body, headers={"Content-Type": "image/jpeg"}, timeout=120)
    assert response.status_code == 413 and response.json()["code"] == "max_bytes"
    # Naming a "video" field, the body may be a video's size: it is parsed (and malformed).
    video_body = b'{"video": "' + body[len(b'{"image": "') :]
    response = requests.post(
        url, data=video_body, headers={"Content-Type": "application/json"}, timeout=120
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_json"
    assert json.loads(response.text)["error"].startswith("malformed JSON")


def test_an_event_through_the_async_route_without_the_token_does_nothing(
    function_server: str, s3: LocalS3, dropped: bytes, tmp_path_factory
) -> None:
    """The route MinIO posts to: the call is queued (202), then refused (401) in the
    background, and the inbox object stays where it was."""
    before = s3.snapshot()
    response = requests.post(
        f"{function_server}/async-function/faceblur",
        json=event(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 202
    done = f"async call {response.headers['X-Call-Id']}: "
    deadline = time.monotonic() + ASYNC_WAIT_SECONDS
    while done not in (log := runner_log(tmp_path_factory)):
        assert time.monotonic() < deadline, "the queued call did not finish"
        time.sleep(0.2)
    assert f"{done}401" in log
    assert s3.snapshot() == before
