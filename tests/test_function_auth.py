"""The function with accounts on: API keys, owners' prefixes, the rate limit, events."""

from __future__ import annotations

import time

import pytest
import requests
from account_fixtures import AUTH_RATE_PER_MINUTE, AuthStack

from data import composed_entries
from faceblur.accounts import KEY_CACHE_SECONDS
from stack_fixtures import scaled_photo, webhook_headers

PASSWORD = "correct horse battery staple"


@pytest.fixture
def photo() -> bytes:
    # Any photo of a face: a composed one (tests/data.py), so these run on any clone.
    return scaled_photo(composed_entries(1)[0], 240, "JPEG")[0]


def post(stack: AuthStack, data: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{stack.url}/function/faceblur",
        data=data,
        headers={"Content-Type": "image/jpeg", **headers},
        timeout=120,
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_user(stack: AuthStack, name: str) -> str:
    """A fresh user (unique per test) and one API key of theirs."""
    stack.accounts.add_user(name, PASSWORD)
    return stack.accounts.create_key(name)


def test_without_a_valid_key_the_answer_is_401_json_and_nothing_is_stored(auth_stack, s3, photo):
    for headers in ({}, bearer("fbk_made-up"), {"Authorization": "Basic YTpi"}):
        response = post(auth_stack, photo, headers)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}


def test_a_valid_key_stores_under_its_owners_prefix(auth_stack, s3, photo):
    key = new_user(auth_stack, "keyholder")
    owner = auth_stack.accounts.user("keyholder")
    response = post(auth_stack, photo, bearer(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result_key"].startswith(owner.prefix)
    assert body["original_key"].startswith(owner.prefix)
    assert s3.snapshot()["results"] == [body["result_key"]]
    usage = {u.identity.name: u.images_processed for u in auth_stack.accounts.users()}
    assert usage["keyholder"] == 1


def test_two_owners_of_the_same_photo_get_separate_objects(auth_stack, s3, photo):
    first, second = new_user(auth_stack, "twin-a"), new_user(auth_stack, "twin-b")
    a = post(auth_stack, photo, bearer(first)).json()
    b = post(auth_stack, photo, bearer(second)).json()
    assert a["result_key"] != b["result_key"]
    assert sorted(s3.snapshot()["results"]) == sorted([a["result_key"], b["result_key"]])


def test_a_revoked_key_stops_within_the_cache_bound(auth_stack, s3, photo):
    key = new_user(auth_stack, "revoker")
    assert post(auth_stack, photo, bearer(key)).status_code == 200
    auth_stack.accounts.revoke_key(key)
    # Waiting out the bound is what the promise is: not a speed measurement.
    time.sleep(KEY_CACHE_SECONDS + 0.2)
    assert post(auth_stack, photo, bearer(key)).status_code == 401


def test_a_disabled_users_key_stops(auth_stack, s3, photo):
    key = new_user(auth_stack, "to-disable")
    auth_stack.accounts.set_disabled("to-disable")
    assert post(auth_stack, photo, bearer(key)).status_code == 401


def test_the_rate_limit_answers_429_with_retry_after(auth_stack, s3, photo):
    key = new_user(auth_stack, "busy")
    # store=false: the limit counts requests, not what is kept.
    statuses = []
    for _ in range(AUTH_RATE_PER_MINUTE + 1):
        response = requests.post(
            f"{auth_stack.url}/function/faceblur?store=false",
            data=photo,
            headers={"Content-Type": "image/jpeg", **bearer(key)},
            timeout=120,
        )
        statuses.append(response.status_code)
    assert statuses == [200] * AUTH_RATE_PER_MINUTE + [429]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["code"] == "rate_limited"
    assert response.json()["retry_after"] == int(response.headers["Retry-After"])
    # Another key is not held back by this one.
    assert post(auth_stack, photo, bearer(new_user(auth_stack, "idle"))).status_code == 200


def test_the_internal_token_acts_for_the_named_active_user_only(auth_stack, s3, photo):
    new_user(auth_stack, "page-user")
    owner = auth_stack.accounts.user("page-user")
    token = bearer(auth_stack.internal_token)
    answer = post(auth_stack, photo, {**token, "X-Faceblur-Owner": "page-user"})
    assert answer.status_code == 200 and answer.json()["result_key"].startswith(owner.prefix)
    assert post(auth_stack, photo, {**token, "X-Faceblur-Owner": "nobody"}).status_code == 401
    assert post(auth_stack, photo, token).status_code == 401


def test_bucket_events_stay_keyless(auth_stack, s3, photo):
    s3.store().put("inbox", "dropped.jpg", photo, "image/jpeg")
    event = {
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": "inbox"}, "object": {"key": "dropped.jpg"}},
            }
        ]
    }
    url = f"{auth_stack.url}/function/faceblur"
    response = requests.post(url, json=event, headers=webhook_headers(), timeout=120)
    assert response.status_code == 200, response.text
    assert [p["key"] for p in response.json()["processed"]] == ["dropped.jpg"]
