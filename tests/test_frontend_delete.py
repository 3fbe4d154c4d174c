"""What the page says is kept matches what is kept, and a person can delete their upload
with its result: a CSRF-checked POST that removes both objects from the real local S3."""

from __future__ import annotations

import re

import pytest

from faceblur.config import load_settings
from faceblur.store.s3 import Store
from frontend.app import create_app

SECRET = "a-test-secret-key-that-is-long-enough"


@pytest.fixture
def client(s3_server, tmp_path):
    environ = {**s3_server.env, "FACEBLUR_FRONTEND_SECRET_KEY": SECRET}
    environ["FACEBLUR_RETENTION_DAYS"] = "12"
    settings = load_settings(environ=environ, secrets_dir=tmp_path)
    return create_app({"FACEBLUR_SETTINGS": settings}).test_client()


def put_pair(store: Store, photo: bytes, options: dict) -> tuple[str, str]:
    pair = store.put_pair(photo, "image/png", b"anonymised " + photo, "image/png", options)
    return pair.original_key, pair.result_key


def token(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page)[1]


def test_the_page_says_what_is_kept_where_and_how_long(client):
    for path in ("/", "/gallery"):
        text = " ".join(client.get(path).get_data(as_text=True).split())
        assert "12 days" in text
        assert "stays on your device" not in text and "never kept" not in text
    start = " ".join(client.get("/").get_data(as_text=True).split())
    assert "Each photo you send is stored on this service's server, unchanged" in start
    assert "Delete this photo and its copy" in start


def test_deleting_from_the_result_removes_the_upload_and_its_results(s3_server, client):
    store = s3_server.store()
    photo = b"a photo of somebody, as sent"
    original, result = put_pair(store, photo, {"method": "blur"})
    _, other_result = put_pair(store, photo, {"method": "solid"})  # same photo, other options
    kept_original, kept_result = put_pair(store, b"somebody else's photo", {})
    confirm = client.get(f"/delete/{result}")
    assert confirm.status_code == 200
    text = " ".join(confirm.get_data(as_text=True).split())
    assert "cannot be undone" in text and "12 days" in text
    # Without the CSRF token nothing happens.
    refused = client.post(f"/delete/{result}")
    assert refused.status_code == 400
    assert store.exists("originals", original)
    deleted = client.post(
        f"/delete/{result}", data={"csrf_token": token(client, confirm.request.path)}
    )
    assert deleted.status_code == 200
    assert "Your photo and its anonymised copies are deleted" in deleted.get_data(as_text=True)
    snapshot = s3_server.snapshot()
    assert original not in snapshot["originals"]
    assert result not in snapshot["results"] and other_result not in snapshot["results"]
    assert kept_original in snapshot["originals"] and kept_result in snapshot["results"]
    again = client.post(f"/delete/{result}", data={"csrf_token": token(client, "/")})
    assert again.status_code == 404
    store.remove("originals", kept_original)
    store.remove("results", kept_result)


@pytest.mark.parametrize("key", ["../originals/x.png", "abc/x.png", "results.png"])
def test_only_well_formed_result_keys_delete_anything(s3_server, client, key):
    store = s3_server.store()
    original, result = put_pair(store, b"bystander", {})
    response = client.post(f"/delete/{key}", data={"csrf_token": token(client, "/")})
    assert response.status_code == 404
    assert store.exists("originals", original) and store.exists("results", result)
    store.remove("originals", original)
    store.remove("results", result)


def test_every_result_links_to_its_deletion(client, s3_server):
    """The script's answer carries the link the result card shows."""
    from frontend import photos

    with client.application.test_request_context():
        outcome = photos._outcome({"result_key": "0" * 32 + "/abc.png"}, "me.png", "blur", "box")
    assert outcome["delete_url"] == f"/delete/{'0' * 32}/abc.png"
