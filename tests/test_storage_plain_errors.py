"""Storage errors say what failed in plain words (the host, port and key go to the log),
and object keys named by callers are checked before they reach the store."""

from __future__ import annotations

import logging
import socket

import pytest

from faceblur.config import load_settings
from faceblur.errors import UnavailableError
from faceblur.store.keys import key_problem
from faceblur.store.s3 import Store


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("call", ["read", "exists", "keys", "put_pair", "check"])
def test_unavailable_errors_name_no_host_port_or_key(call, tmp_path, caplog) -> None:
    port = closed_port()
    store = Store(
        load_settings(environ={"FACEBLUR_S3_ENDPOINT": f"127.0.0.1:{port}"}, secrets_dir=tmp_path)
    )
    key = "c0ffee1234/secret-key-name.png"
    calls = {
        "read": lambda: store.read("results", key),
        "exists": lambda: store.exists("results", key),
        "keys": lambda: store.keys("results", prefix="c0ffee1234/"),
        "put_pair": lambda: store.put_pair(b"o", "image/png", b"r", "image/png", {}),
        "check": store.check,
    }
    with (
        caplog.at_level(logging.WARNING, logger="faceblur.storage"),
        pytest.raises(UnavailableError) as failed,
    ):
        calls[call]()
    message = str(failed.value)
    assert message.startswith("storage unavailable")
    for internal in (str(port), "127.0.0.1", "HTTPConnectionPool", "secret-key-name", "results"):
        assert internal not in message
    assert str(port) in caplog.text  # the operator still learns where it failed


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "a/../../b.jpg", "/etc/passwd", "a//b.jpg", "a\\..\\b.jpg", "./a.jpg"]
    + ["", "a\x00b.jpg", "line\nbreak.jpg", "x" * 1025, "é" * 513],
)
def test_unsafe_object_keys_are_named_as_such(key) -> None:
    assert key_problem(key) is not None


@pytest.mark.parametrize(
    "key", ["2024 trip/Zoë (1).jpg", "famille été.jpg", "家族/写真.png", "a.b..c.jpg", "x" * 1024]
)
def test_keys_people_give_their_photos_pass(key) -> None:
    assert key_problem(key) is None
