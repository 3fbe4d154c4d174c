"""What a new user tripped over, in Chromium (issue 23, points 15, 16 and 17):

- applying a correction replaces the copy it corrects (the old one is deleted, never left
  in the gallery beside the new one);
- the gallery deletes a result, with the upload page's confirmation;
- "Delete all my photos and results" asks first.
"""

from __future__ import annotations

import io
import uuid

import requests
from PIL import Image
from playwright.sync_api import expect
from test_browser import (
    FACES_DEV,
    RESULT_TIMEOUT_MS,
    apply_and_wait,
    frontend_url,  # noqa: F401 - the module's page, used as a fixture
    portraits_with_large_faces,
    send,
    wait_for_cards,
)
from test_browser_accounts import PASSWORD, accounts_frontend, sign_in  # noqa: F401


def test_a_correction_replaces_the_old_copy_in_the_gallery(page, frontend_url, s3_server):  # noqa: F811
    s3_server.empty_buckets()
    photo = FACES_DEV / portraits_with_large_faces(1)[0]["image"]
    send(page, frontend_url, [photo])
    wait_for_cards(page, 1)
    card = page.locator(".card").first
    assert "done" in card.get_attribute("class"), card.inner_text()
    first_key = card.get_attribute("data-key")
    first_url = card.locator("img.result").get_attribute("src")
    assert requests.get(first_url, timeout=10).status_code == 200
    # Remove one hidden area (as if it were not a face) and apply: a new, different copy.
    card.get_by_role("button", name="Remove hidden area 1").click()
    apply_and_wait(card)
    new_key = card.get_attribute("data-key")
    assert new_key != first_key
    store = s3_server.store()
    assert not store.exists("results", first_key)
    assert requests.get(first_url, timeout=10).status_code == 404
    page.get_by_role("link", name="Gallery").click()
    items = page.locator(".gallery-item")
    expect(items).to_have_count(1)
    assert items.first.get_attribute("data-key") == new_key


def a_stored_result(s3_server) -> str:
    """A result and its original, as the function stores them (a real, small JPEG)."""
    image_id = uuid.uuid4().hex
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(picture, "JPEG")
    store = s3_server.store()
    store.put("originals", f"{image_id}.jpg", picture.getvalue(), "image/jpeg")
    key = f"{image_id}/0123456789abcdef.jpg"
    store.put("results", key, picture.getvalue(), "image/jpeg")
    return key


def test_the_gallery_deletes_a_result_after_asking(page, frontend_url, s3_server):  # noqa: F811
    s3_server.empty_buckets()
    key = a_stored_result(s3_server)
    page.goto(f"{frontend_url}/gallery")
    item = page.locator(f'.gallery-item[data-key="{key}"]')
    expect(item).to_have_count(1)
    item.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete your photo")).to_be_visible()
    expect(page.get_by_text("It cannot be undone")).to_be_visible()
    page.get_by_role("link", name="Keep them and go back").click()
    expect(page).to_have_url(f"{frontend_url}/gallery")
    expect(item).to_have_count(1)  # going back keeps it
    assert s3_server.store().exists("results", key)
    item.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete my photo and its copies").click()
    expect(page.get_by_role("heading", name="Deleted")).to_be_visible()
    page.get_by_role("link", name="Back to the gallery").click()
    expect(page.locator(".gallery-item")).to_have_count(0)
    assert s3_server.snapshot()["results"] == [] and s3_server.snapshot()["originals"] == []


def test_delete_all_my_photos_asks_to_confirm(page, accounts_frontend, auth_stack, s3_server):  # noqa: F811
    s3_server.empty_buckets()
    name = f"ann-{uuid.uuid4().hex[:6]}"
    auth_stack.accounts.add_user(name, PASSWORD)
    prefix = auth_stack.accounts.user(name).prefix
    store = s3_server.store()
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(picture, "JPEG")
    image_id = uuid.uuid4().hex
    store.put("originals", f"{prefix}{image_id}.jpg", picture.getvalue(), "image/jpeg")
    store.put(
        "results", f"{prefix}{image_id}/0123456789abcdef.jpg", picture.getvalue(), "image/jpeg"
    )
    sign_in(page, accounts_frontend, name, PASSWORD)
    page.get_by_role("link", name=f"Account ({name})").click()
    page.get_by_role("link", name="Delete all my photos and results").click()
    expect(page.get_by_text("It cannot be undone")).to_be_visible()
    assert len(store.keys("results", prefix=prefix)) == 1  # one click deleted nothing
    page.get_by_role("link", name="Keep them and go back").click()
    expect(page).to_have_url(f"{accounts_frontend}/account")
    assert len(store.keys("results", prefix=prefix)) == 1
    page.get_by_role("link", name="Delete all my photos and results").click()
    page.get_by_role("button", name="Delete all my photos and results").click()
    expect(page.get_by_role("status")).to_contain_text(
        "Deleted 2 stored files", timeout=RESULT_TIMEOUT_MS
    )
    assert (
        store.keys("results", prefix=prefix) == [] and store.keys("originals", prefix=prefix) == []
    )
