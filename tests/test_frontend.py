"""The web page at the Flask level: views, CSRF, limits, error pages, sanitising.

Services that must be "down" are ports on 127.0.0.1 that nobody listens on; the
upload and gallery round trips run against the real local stack (S3 server and
function, from tests/stack_fixtures.py).
"""

from __future__ import annotations

import io
import re
import socket
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

# `frontend` is not an installed package: it sits at the repository root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from faceblur.anonymise import METHOD_INFO, METHODS, SHAPES  # noqa: E402
from faceblur.config import ConfigError, load_settings  # noqa: E402
from frontend.app import create_app  # noqa: E402
from frontend.safety import download_name, is_safe_key  # noqa: E402

SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*-anonymised\.png")
SECRET = "a-test-secret-key-that-is-long-enough"


def closed_port() -> int:
    """A loopback port with no listener: connecting to it fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_settings(tmp_path: Path, **overrides: str):
    port = closed_port()
    environ = {
        "FACEBLUR_GATEWAY_URL": f"http://127.0.0.1:{port}",
        "FACEBLUR_S3_ENDPOINT": f"127.0.0.1:{port}",
        "FACEBLUR_MAX_BYTES": str(4096),
        "FACEBLUR_FRONTEND_SECRET_KEY": SECRET,
    }
    environ.update(overrides)
    return load_settings(environ={k: v for k, v in environ.items() if v}, secrets_dir=tmp_path)


@pytest.fixture
def app(tmp_path):
    return create_app({"FACEBLUR_SETTINGS": make_settings(tmp_path)})


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert match, "the page carries its CSRF token for the script"
    return match.group(1)


class FormAudit(HTMLParser):
    """Collects inputs and labels, to check that every control has a label."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.label_targets: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea"):
            self.inputs.append(attributes)
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"])


# --- views ------------------------------------------------------------------------


def test_upload_page_offers_every_method_with_its_reidentification_note(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for method in METHODS:
        assert f'value="{method}"' in page
        assert METHOD_INFO[method] in page
    for shape in SHAPES:
        assert f'value="{shape}"' in page
    assert 'accept="image/*"' in page and "multiple" in page
    assert "4 KB" in page  # the size limit is shown before anything is sent


def test_every_visible_control_has_a_label(client):
    audit = FormAudit()
    audit.feed(client.get("/").get_data(as_text=True))
    visible = [i for i in audit.inputs if i.get("type") != "hidden"]
    assert visible
    # The card template's toggle gets its id and label from the script.
    unlabelled = [
        i
        for i in visible
        if i.get("id") not in audit.label_targets and "outline-toggle" not in (i.get("class") or "")
    ]
    assert unlabelled == []


def test_healthz_answers_json(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_pages_send_a_content_security_policy(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy


# --- CSRF -------------------------------------------------------------------------


def test_post_without_csrf_token_is_refused(client):
    photo = (io.BytesIO(b"\xff\xd8\xff" + b"0" * 100), "a.jpg", "image/jpeg")
    api = client.post("/api/anonymise", data={"photo": photo}, content_type="multipart/form-data")
    assert api.status_code == 400
    assert "expired" in api.get_json()["error"]

    photo = (io.BytesIO(b"\xff\xd8\xff" + b"0" * 100), "a.jpg", "image/jpeg")
    form = client.post("/upload", data={"photo": photo}, content_type="multipart/form-data")
    assert form.status_code == 400
    assert "reload the page" in form.get_data(as_text=True)


def test_post_with_a_forged_csrf_token_is_refused(client):
    client.get("/")
    response = client.post(
        "/api/anonymise",
        data={"photo": (io.BytesIO(b"x"), "a.jpg", "image/jpeg")},
        headers={"X-CSRFToken": "forged"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400


# --- limits and plain-words errors ------------------------------------------------


def test_a_request_above_max_content_length_gets_413_with_the_limit(client, app):
    token = csrf_token(client)
    too_big = app.config["MAX_CONTENT_LENGTH"] + 1
    photo = (io.BytesIO(b"\xff" * too_big), "big.jpg", "image/jpeg")
    api = client.post(
        "/api/anonymise",
        data={"photo": photo},
        headers={"X-CSRFToken": token},
        content_type="multipart/form-data",
    )
    assert api.status_code == 413
    assert api.get_json() == {"error": "This photo is too large. The limit is 4 KB."}

    photo = (io.BytesIO(b"\xff" * too_big), "big.jpg", "image/jpeg")
    page = client.post(
        "/upload",
        data={"photo": photo, "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert page.status_code == 413
    assert "The limit is 4 KB" in page.get_data(as_text=True)


def test_a_photo_just_over_the_limit_is_refused_before_the_function(client):
    # Within MAX_CONTENT_LENGTH (which allows for the form) but over the per-photo limit;
    # the gateway port is closed, so reaching it would give 503, not 413.
    photo = (io.BytesIO(b"\xff" * 4097), "big.jpg", "image/jpeg")
    response = client.post(
        "/api/anonymise",
        data={"photo": photo},
        headers={"X-CSRFToken": csrf_token(client)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "4 KB" in response.get_json()["error"]


def test_function_down_is_service_unavailable_in_plain_words(client):
    token = csrf_token(client)
    photo = (io.BytesIO(b"\xff\xd8\xff" + b"0" * 100), "a.jpg", "image/jpeg")
    api = client.post(
        "/api/anonymise",
        data={"photo": photo, "method": "blur", "shape": "box"},
        headers={"X-CSRFToken": token},
        content_type="multipart/form-data",
    )
    assert api.status_code == 503
    assert "not available right now" in api.get_json()["error"]

    photo = (io.BytesIO(b"\xff\xd8\xff" + b"0" * 100), "a.jpg", "image/jpeg")
    page = client.post(
        "/upload",
        data={"photo": photo, "csrf_token": token},
        content_type="multipart/form-data",
    )
    # The no-script form shows each photo's own error on the results page.
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "not available right now" in text and "Traceback" not in text


def test_an_unknown_method_is_a_bad_request(client):
    response = client.post(
        "/api/anonymise",
        data={"photo": (io.BytesIO(b"x"), "a.jpg", "image/jpeg"), "method": "swirl"},
        headers={"X-CSRFToken": csrf_token(client)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "offered methods" in response.get_json()["error"]


def test_storage_down_gallery_says_so_in_plain_words(client):
    response = client.get("/gallery")
    assert response.status_code == 503
    text = response.get_data(as_text=True)
    assert "photo store is not available" in text
    assert "Traceback" not in text and "Errno" not in text


def test_unknown_page_and_unexpected_failure_are_plain(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("internal detail that must not leak")

    client = app.test_client()
    missing = client.get("/no-such-page")
    assert missing.status_code == 404
    assert "There is no such page." in missing.get_data(as_text=True)
    failure = client.get("/boom")
    assert failure.status_code == 500
    text = failure.get_data(as_text=True)
    assert "Something went wrong on our side" in text
    assert "internal detail" not in text and "Traceback" not in text


# --- secret key -------------------------------------------------------------------


def test_refuses_to_start_without_a_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    settings = make_settings(tmp_path, FACEBLUR_FRONTEND_SECRET_KEY="")
    assert settings.frontend_secret_key is None
    with pytest.raises(ConfigError, match="faceblur-frontend-secret-key"):
        create_app({"FACEBLUR_SETTINGS": settings})


def test_starts_without_a_secret_key_only_in_test_or_debug(tmp_path):
    settings = make_settings(tmp_path, FACEBLUR_FRONTEND_SECRET_KEY="")
    testing = create_app({"FACEBLUR_SETTINGS": settings, "TESTING": True})
    debug = create_app({"FACEBLUR_SETTINGS": settings, "DEBUG": True})
    # A random key per process, never a fixed well-known one.
    assert testing.secret_key and debug.secret_key
    assert testing.secret_key != debug.secret_key


def test_secret_key_is_read_from_the_secret_file(tmp_path):
    (tmp_path / "faceblur-frontend-secret-key").write_text("from-the-file\n")
    settings = make_settings(tmp_path, FACEBLUR_FRONTEND_SECRET_KEY="")
    assert create_app({"FACEBLUR_SETTINGS": settings}).secret_key == "from-the-file"


# --- sanitising -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_name", "expected"),
    [
        ("holiday.jpg", "holiday-anonymised.jpg"),
        ("../../etc/passwd.jpg", "passwd-anonymised.jpg"),
        ("C:\\Users\\me\\My Photo.JPG", "My_Photo-anonymised.jpg"),
        ("..", "photo-anonymised.jpg"),
        ("", "photo-anonymised.jpg"),
        (None, "photo-anonymised.jpg"),
    ],
)
def test_download_names_keep_only_a_safe_stem(user_name, expected):
    # The extension comes from our key, never from the person's file name.
    assert download_name(user_name, "0123abcd/99ff.jpg") == expected


@given(st.text(max_size=300))
def test_any_user_name_becomes_a_plain_file_name(user_name):
    name = download_name(user_name, "0123abcd/99ff.png")
    assert SAFE_FILE_NAME.fullmatch(name), name
    assert ".." not in name and len(name) <= 100


@pytest.mark.parametrize(
    "key",
    ["../originals/x.jpg", "/etc/passwd", "a//b.jpg", "a/../b.jpg", "a\\b.jpg", "a b.jpg", "", "."],
)
def test_unsafe_keys_are_refused(key):
    assert not is_safe_key(key)


def test_function_made_keys_are_accepted():
    assert is_safe_key("3f2a9c0d1e/7b8c9d.jpg")
    assert is_safe_key("abc.png")


@pytest.mark.parametrize(
    "path",
    [
        "/results/..%2Foriginals%2Fx.jpg",
        "/results/a%20b.jpg",
        "/results.zip?key=../originals/x.jpg",
        "/results.zip",
    ],
)
def test_unsafe_download_requests_never_reach_storage(client, path):
    # Storage is down in this app: reaching it would answer 503, not 400/404.
    response = client.get(path)
    assert response.status_code in (400, 404)
    assert "Traceback" not in response.get_data(as_text=True)


def test_no_route_names_the_originals_bucket(app):
    rules = " ".join(str(rule) for rule in app.url_map.iter_rules())
    assert "original" not in rules


# --- round trips on the real local stack ------------------------------------------

__all__ = ["io", "zipfile"]
