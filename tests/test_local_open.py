"""`make run` with accounts off: open to whoever reaches its ports, so loopback only unless
the operator says so; and the local S3 server takes the page's uploads from its origin only."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from run_stack import OPEN_ANYWAY, open_binds_refused
from s3_server import start_s3_server

from stack_fixtures import LOCAL, ROOT, free_port, run_stack_env


def test_accounts_off_is_refused_beyond_loopback_unless_told():
    hosts = ["127.0.0.1", "0.0.0.0"]
    refused = open_binds_refused(hosts, accounts_on=False, environ={})
    assert refused and refused.startswith("refusing to listen on 0.0.0.0 with")
    assert "open to anyone who can reach" in refused and OPEN_ANYWAY in refused
    assert open_binds_refused(hosts, accounts_on=False, environ={OPEN_ANYWAY: "yes"}) is None
    assert open_binds_refused(hosts, accounts_on=True, environ={}) is None
    assert open_binds_refused(["127.0.0.1", "localhost"], accounts_on=False, environ={}) is None


def test_make_run_stops_before_listening_on_another_address_with_accounts_off(tmp_path):
    ports = {"s3": free_port(), "function": free_port(), "frontend": free_port()}
    env = run_stack_env(
        ports, tmp_path / "data", {"FACEBLUR_S3_ENDPOINT": f"0.0.0.0:{ports['s3']}"}
    )
    env |= {  # beyond loopback the stack wants the operator's own S3 credentials
        "FACEBLUR_S3_ACCESS_KEY": "an-operator-chosen-key",
        "FACEBLUR_S3_SECRET_KEY": "an-operator-chosen-secret-long-enough",
    }
    for name in ("FACEBLUR_AUTH", OPEN_ANYWAY):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, str(LOCAL / "run_stack.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to listen on 0.0.0.0" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was started


@pytest.fixture
def cors_s3(tmp_path):
    server = start_s3_server(
        tmp_path / "s3",
        access_key="cors-test-key",
        secret_key="cors-test-secret-long-enough",
        buckets=("inbox",),
        upload_bucket="inbox",
        upload_origin="http://127.0.0.1:5000",
    )
    yield f"http://{server.endpoint}"
    server.stop()


def preflight(url: str, origin: str) -> requests.Response:
    return requests.options(
        f"{url}/inbox",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )


def test_s3rver_answers_uploads_from_the_pages_origin_only(cors_s3):
    assert preflight(cors_s3, "http://127.0.0.1:5000").status_code == 200
    for stranger in ("http://evil.example", "http://127.0.0.1:5001", "null"):
        assert preflight(cors_s3, stranger).status_code == 403, stranger
    # The form post itself: only the page's origin may read the answer.
    form = {"key": "videos/x/clip.mp4", "Content-Type": "video/mp4"}
    for origin, allowed in (("http://127.0.0.1:5000", True), ("http://evil.example", False)):
        sent = requests.post(
            f"{cors_s3}/inbox",
            data=form,
            files={"file": ("clip.mp4", b"data")},
            headers={"Origin": origin},
            timeout=10,
        )
        assert sent.status_code in (200, 204)
        assert (sent.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    # PUT is no longer the page's way in.
    put = requests.options(
        f"{cors_s3}/inbox/videos/x/clip.mp4",
        headers={"Origin": "http://127.0.0.1:5000", "Access-Control-Request-Method": "PUT"},
        timeout=10,
    )
    assert put.status_code == 403


def test_an_upload_bucket_needs_the_pages_origin(tmp_path):
    with pytest.raises(ValueError, match="origin"):
        start_s3_server(
            tmp_path, "k", "secret-secret", ("inbox",), upload_bucket="inbox", upload_origin=None
        )
