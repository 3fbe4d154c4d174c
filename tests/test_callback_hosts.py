"""The async route posts results only to hosts the operator lists (FACEBLUR_CALLBACK_HOSTS):
a caller must not be able to make it post to services behind it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions" / "local"))

from template_runner import create_app  # noqa: E402

from faceblur.config import ConfigError, load_settings  # noqa: E402


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
        # A listed host, another port: the web's own ports only, unless host:port is listed.
        ({"hooks.example.org"}, "http://hooks.example.org:6379/"),
        ({"hooks.example.org"}, "https://hooks.example.org:8443/done"),
        ({"hooks.example.org"}, "http://hooks.example.org:443/"),
        ({"hooks.example.org:8443"}, "https://hooks.example.org/done"),
        ({"hooks.example.org:8443"}, "https://hooks.example.org:9443/done"),
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


# The runner really posts the callback after answering: loopback names only, so the
# tests never reach beyond this machine (the post finds nothing listening).
@pytest.mark.parametrize(
    ("allowed", "headers"),
    [
        ({"localhost"}, {"X-Callback-Url": "https://LOCALHOST/done?x=1"}),
        ({"localhost"}, {"X-Callback-Url": "https://localhost:443/done"}),
        ({"localhost"}, {"X-Callback-Url": "http://localhost/done"}),
        ({"localhost:8443"}, {"X-Callback-Url": "https://LOCALHOST:8443/d"}),
        ({"localhost"}, {}),
    ],
)
def test_a_listed_host_on_an_allowed_port_or_no_callback_is_accepted(allowed, headers) -> None:
    calls: list = []
    response = runner(allowed, calls).post("/async-function/demo", data=b"x", headers=headers)
    assert response.status_code == 202 and response.headers["X-Call-Id"]


def test_a_refused_port_says_how_to_allow_it() -> None:
    response = runner({"hooks.example.org"}, []).post(
        "/async-function/demo",
        data=b"x",
        headers={"X-Callback-Url": "http://hooks.example.org:6379/"},
    )
    assert "host:port" in response.get_json()["error"]


def test_the_setting_is_a_comma_separated_list_and_empty_by_default(tmp_path) -> None:
    assert load_settings(environ={}, secrets_dir=tmp_path).callback_hosts == frozenset()
    listed = load_settings(
        environ={"FACEBLUR_CALLBACK_HOSTS": " Hooks.example.org, ,ci.example.net "},
        secrets_dir=tmp_path,
    )
    assert listed.callback_hosts == {"hooks.example.org", "ci.example.net"}
    with_port = load_settings(
        environ={"FACEBLUR_CALLBACK_HOSTS": "hooks.example.org:8443"}, secrets_dir=tmp_path
    )
    assert with_port.callback_hosts == {"hooks.example.org:8443"}


@pytest.mark.parametrize("value", ["hooks.example.org:https", "hooks.example.org:0", ":8443"])
def test_a_malformed_port_in_the_setting_is_refused_at_start(tmp_path, value) -> None:
    with pytest.raises(ConfigError, match="host:port"):
        load_settings(environ={"FACEBLUR_CALLBACK_HOSTS": value}, secrets_dir=tmp_path)


def test_the_handler_check_refuses_a_listed_host_on_another_port() -> None:
    """check_callback is what the function itself runs on the header the queue worker
    passes on (the runner above refuses earlier, with the same rule)."""
    from faceblur.api.callbacks import CALLBACK_CODE, check_callback
    from faceblur.errors import BadRequestError

    check_callback("https://hooks.example.org/done", {"hooks.example.org"})
    check_callback("https://hooks.example.org:8443/done", {"hooks.example.org:8443"})
    check_callback(None, set())
    with pytest.raises(BadRequestError) as refused:
        check_callback("http://hooks.example.org:22/", {"hooks.example.org"})
    assert refused.value.code == CALLBACK_CODE and refused.value.status == 400
