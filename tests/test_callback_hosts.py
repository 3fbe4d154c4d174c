"""The async route posts results only to hosts the operator lists (FACEBLUR_CALLBACK_HOSTS):
a caller must not be able to make it post to services behind it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions" / "local"))

from template_runner import create_app  # noqa: E402

from faceblur.config import load_settings  # noqa: E402


def runner(allowed: set[str], calls: list):
    def handle(event, context):
        calls.append(event)
        return {"body": {"ok": True}}

    return create_app(handle, "demo", allowed).test_client()


@pytest.mark.parametrize(
    ("allowed", "url"),
    [
        (set(), "http://hooks.example.org/done"),  # empty list: no callback at all
        ({"hooks.example.org"}, "http://169.254.169.254/latest/meta-data/"),
        ({"hooks.example.org"}, "http://minio.faceblur.svc.cluster.local:9000/originals"),
        ({"hooks.example.org"}, "http://hooks.example.org.evil.test/done"),
        ({"hooks.example.org"}, "http://hooks.example.org@127.0.0.1:9000/"),
        ({"hooks.example.org"}, "file:///etc/passwd"),
        ({"hooks.example.org"}, "gopher://hooks.example.org/"),
    ],
)
def test_a_callback_to_an_unlisted_host_is_refused_and_nothing_runs(allowed, url) -> None:
    calls: list = []
    response = runner(allowed, calls).post(
        "/async-function/demo", data=b"x", headers={"X-Callback-Url": url}
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "callback_not_allowed"
    assert "X-Call-Id" not in response.headers
    assert calls == []


@pytest.mark.parametrize(
    "headers", [{"X-Callback-Url": "https://HOOKS.example.org:8443/done?x=1"}, {}]
)
def test_a_listed_host_or_no_callback_is_accepted(headers) -> None:
    calls: list = []
    response = runner({"hooks.example.org"}, calls).post(
        "/async-function/demo", data=b"x", headers=headers
    )
    assert response.status_code == 202 and response.headers["X-Call-Id"]


def test_the_setting_is_a_comma_separated_list_and_empty_by_default(tmp_path) -> None:
    assert load_settings(environ={}, secrets_dir=tmp_path).callback_hosts == frozenset()
    listed = load_settings(
        environ={"FACEBLUR_CALLBACK_HOSTS": " Hooks.example.org, ,ci.example.net "},
        secrets_dir=tmp_path,
    )
    assert listed.callback_hosts == {"hooks.example.org", "ci.example.net"}
