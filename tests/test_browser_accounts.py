"""Signing in, sending a photo and seeing only one's own gallery, in Chromium.

The page runs under waitress with accounts on, in front of the function with keys on
(tests/account_fixtures.py's `auth_stack`) and the real S3 server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import expect
from test_browser import (
    FACES_DEV,
    portraits_with_large_faces,
    send,
    wait_for_cards,
)

from stack_fixtures import running_frontend, scaled_photo

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def accounts_frontend(s3_server, auth_stack, tmp_path_factory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("frontend-accounts") / "waitress.log"
    env = {
        **os.environ,
        **s3_server.env,
        **auth_stack.env,
        "FACEBLUR_GATEWAY_URL": auth_stack.url,
        "FACEBLUR_FRONTEND_SECRET_KEY": "browser-accounts-secret",
        "PYTHONUNBUFFERED": "1",
    }
    with running_frontend(env, log_path, ready_seconds=60) as url:
        yield url


def sign_in(tab, url: str, name: str, password: str) -> None:
    tab.goto(url)
    expect(tab).to_have_url(f"{url}/signin")
    tab.get_by_label("Name").fill(name)
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()


def test_sign_in_send_a_photo_see_only_mine_sign_out(
    page,  # noqa: F811 - the fixture imported above
    accounts_frontend,
    auth_stack,
    s3_server,
    dev_annotations,
):
    s3_server.empty_buckets()
    name, other = f"ann-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    auth_stack.accounts.add_user(name, PASSWORD)
    auth_stack.accounts.add_user(other, PASSWORD)
    # Someone else's result, sent with their API key: it must not show for ann.
    entry = next(e for e in dev_annotations if e["n_faces"] == 1 and not e["ignore"])
    theirs = requests.post(
        f"{auth_stack.url}/function/faceblur",
        data=scaled_photo(entry, 240, "JPEG")[0],
        headers={
            "Content-Type": "image/jpeg",
            "Authorization": f"Bearer {auth_stack.accounts.create_key(other)}",
        },
        timeout=120,
    ).json()["result_key"]

    sign_in(page, accounts_frontend, name, "not the password")
    expect(page.get_by_role("alert")).to_contain_text("do not match")

    sign_in(page, accounts_frontend, name, PASSWORD)
    expect(page).to_have_url(f"{accounts_frontend}/")
    expect(page.get_by_role("link", name=f"Account ({name})")).to_be_visible()

    photo = FACES_DEV / portraits_with_large_faces(1)[0]["image"]
    send(page, accounts_frontend, [photo])
    wait_for_cards(page, 1)
    assert "done" in page.locator(".card").first.get_attribute("class")

    page.get_by_role("link", name="Gallery").click()
    items = page.locator(".gallery-item")
    expect(items).to_have_count(1)
    mine = items.first.get_attribute("data-key")
    assert mine.startswith(auth_stack.accounts.user(name).prefix) and mine != theirs

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{accounts_frontend}/signin")
    page.goto(f"{accounts_frontend}/gallery")
    expect(page).to_have_url(f"{accounts_frontend}/signin")
