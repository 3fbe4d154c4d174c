"""Bad requests the adversarial pass found: each a 400 with a clear message, never a 500."""

from __future__ import annotations

import json
import time
from urllib.parse import quote_plus

import pytest
import requests

from stack_fixtures import LocalS3, webhook_headers

LOG_WAIT_SECONDS = 10


@pytest.fixture
def url(function_server: str) -> str:
    return f"{function_server}/function/faceblur"


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        '{"image": ' + "[" * 100_000,
        '{"image": "aGk=", "method": ' + "[" * 500 + "]" * 500 + "}",
    ],
    ids=["deep array", "deep value", "deep but parseable option"],
)
def test_deeply_nested_json_is_a_clear_400(url, body) -> None:
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "json_too_deep"


def event(*keys: str, bucket: str = "inbox") -> str:
    records = [
        {
            "eventName": "s3:ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}},
        }
        for key in keys
    ]
    return json.dumps({"Records": records})


def function_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    logs = sorted(tmp_path_factory.getbasetemp().glob("function*/runner.log"))
    return "\n".join(path.read_text(errors="replace") for path in logs)


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "a/./b.png", "line\nbreak"])
def test_an_event_for_an_unsafe_key_is_ignored_logged_and_a_400(
    s3_server: LocalS3, url, key, tmp_path_factory
) -> None:
    before = s3_server.snapshot()
    response = requests.post(url, data=event(key), headers=webhook_headers(), timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "unsafe_key"
    assert s3_server.snapshot() == before
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while "bucket event ignored" not in function_log(tmp_path_factory):
        assert time.monotonic() < deadline, "the reason was not logged"
        time.sleep(0.2)


def test_an_unsafe_key_beside_a_good_record_is_ignored_with_its_reason(s3_server, url) -> None:
    response = requests.post(
        url,
        data=event("../../etc/passwd", "not-there.png"),
        headers=webhook_headers(),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    codes = [item["code"] for item in response.json()["ignored"]]
    assert codes == ["unsafe_key", "gone"]


def test_a_call_naming_an_unlisted_callback_host_does_no_work(s3_server, url) -> None:
    """The header the queue worker passes on: nothing is read, stored or sent there."""
    before = s3_server.snapshot()
    response = requests.post(
        url,
        data=event("a.png"),
        headers={
            **webhook_headers(),
            "X-Callback-Url": "http://169.254.169.254/latest/meta-data/",
        },
        timeout=60,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "callback_not_allowed"
    assert s3_server.snapshot() == before
