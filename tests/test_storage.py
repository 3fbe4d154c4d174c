"""The S3 store against a real S3 server (s3rver) on loopback."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import pytest
import requests

from faceblur.config import load_settings
from faceblur.errors import BadRequestError, TooLargeError, UnavailableError
from faceblur.store.keys import content_id, options_id
from faceblur.store.s3 import Store
from stack_fixtures import CuttingProxy, LocalS3, start_local_s3

OPTIONS = {"method": "blur", "shape": "ellipse", "strength": "high", "padding": 0.3}
ROLLBACK_WAIT_SECONDS = 20


@pytest.fixture
def own_s3(tmp_path: Path):
    """A server of this test's own, which it may stop."""
    server = start_local_s3(tmp_path / "s3")
    yield server
    server.stop()


@pytest.fixture
def proxy(own_s3: LocalS3):
    """A line to this test's own server that the test can cut and restore."""
    line = CuttingProxy(own_s3.server.port)
    yield line
    line.close()


@pytest.fixture
def proxied_store(own_s3: LocalS3, proxy: CuttingProxy) -> Store:
    return Store(dataclasses.replace(own_s3.settings, s3_endpoint=proxy.endpoint))


def wait_for_rollbacks(store: Store) -> None:
    """Give the background retry a bounded time to finish its rollbacks."""
    deadline = time.monotonic() + ROLLBACK_WAIT_SECONDS
    while store.pending_rollbacks and time.monotonic() < deadline:
        time.sleep(0.2)


def put_example(store: Store, original: bytes = b"original bytes", options=OPTIONS):
    return store.put_pair(
        original=original,
        original_type="image/jpeg",
        result=b"result bytes for " + original,
        result_type="image/jpeg",
        options=options,
        result_metadata={"faceblur-faces": "2"},
    )


def test_pair_is_stored_under_content_derived_keys(s3: LocalS3) -> None:
    store = s3.store()
    pair = put_example(store)
    assert pair.image_id == content_id(b"original bytes")
    assert store.read(s3.settings.bucket_originals, pair.original_key) == b"original bytes"
    assert store.read(s3.settings.bucket_results, pair.result_key) == (
        b"result bytes for original bytes"
    )
    assert pair.result_key.startswith(f"{pair.image_id}/{options_id(OPTIONS)}")
    stat = store.client.stat_object(bucket_name="results", object_name=pair.result_key)
    assert stat.content_type == "image/jpeg"
    assert stat.metadata["x-amz-meta-faceblur-original"] == pair.original_key


def test_retry_writes_the_same_objects_and_options_make_new_results(s3: LocalS3) -> None:
    store = s3.store()
    first = put_example(store)
    again = put_example(store, options=dict(reversed(list(OPTIONS.items()))))
    assert again == first
    other = put_example(store, options={**OPTIONS, "method": "pixelate"})
    assert other.original_key == first.original_key
    assert other.result_key != first.result_key
    snapshot = s3.snapshot()
    assert snapshot["originals"] == [first.original_key]
    assert snapshot["results"] == sorted([first.result_key, other.result_key])


def test_presigned_url_serves_the_result_and_names_no_original(s3: LocalS3) -> None:
    store = s3.store()
    pair = put_example(store)
    url = store.result_url(pair.result_key)
    assert f"/{s3.settings.bucket_results}/{pair.result_key}?" in url
    assert f"X-Amz-Expires={s3.settings.presign_expiry_seconds}" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"result bytes for original bytes"
    assert not any("original" in name and "url" in name for name in dir(store))


def test_presigned_urls_name_the_public_address_when_one_is_set(s3: LocalS3) -> None:
    """In a cluster the code talks to an internal host that browsers cannot reach."""
    pair = put_example(s3.store())
    port = s3.endpoint.rsplit(":", 1)[1]
    environ = {**s3.env, "FACEBLUR_S3_PUBLIC_URL": f"http://localhost:{port}"}
    public = Store(load_settings(environ, secrets_dir="/nonexistent"))
    url = public.result_url(pair.result_key)
    assert url.startswith(f"http://localhost:{port}/{s3.settings.bucket_results}/")
    assert "127.0.0.1" not in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"result bytes for original bytes"


def test_expiry_comes_from_settings(s3: LocalS3) -> None:
    settings = dataclasses.replace(s3.settings, presign_expiry_seconds=120)
    url = Store(settings).result_url("abc/def.jpg")
    assert "X-Amz-Expires=120" in url


def test_read_refuses_missing_and_oversized_objects(s3: LocalS3) -> None:
    store = s3.store()
    store.client.put_object(
        bucket_name="inbox",
        object_name="big.jpg",
        data=io.BytesIO(b"x" * 100),
        length=100,
    )
    with pytest.raises(TooLargeError):
        store.read("inbox", "big.jpg", max_bytes=99)
    assert store.read("inbox", "big.jpg", max_bytes=100) == b"x" * 100
    with pytest.raises(BadRequestError):
        store.read("inbox", "missing.jpg")


def test_server_down_gives_unavailable_quickly_and_writes_nothing(own_s3: LocalS3) -> None:
    store = own_s3.store()
    own_s3.stop()
    started = time.monotonic()
    with pytest.raises(UnavailableError):
        put_example(store)
    with pytest.raises(UnavailableError):
        store.check()
    assert time.monotonic() - started < 15
    own_s3.restart()
    store.check()
    assert own_s3.snapshot() == {"inbox": [], "originals": [], "results": []}


def test_server_dying_between_original_and_result_leaves_no_half_pair(
    own_s3: LocalS3, proxy: CuttingProxy, proxied_store: Store
) -> None:
    store = proxied_store
    kept = put_example(store, b"an earlier pair")  # must survive the rollback
    proxy.cut_on(b"PUT /results/")
    with pytest.raises(UnavailableError):
        put_example(store, b"a new photo")
    assert proxy.cut_requests >= 1
    # The original went through before the cut, and the rollback could not remove it.
    assert own_s3.snapshot()["originals"] == sorted(
        [kept.original_key, f"{content_id(b'a new photo')}.jpg"]
    )
    assert store.pending_rollbacks
    proxy.restore()  # the server is back: the background retry removes the orphan
    wait_for_rollbacks(store)
    assert not store.pending_rollbacks
    assert own_s3.snapshot() == {
        "inbox": [],
        "originals": [kept.original_key],
        "results": [kept.result_key],
    }


def test_rollback_keeps_an_original_that_already_had_a_result(
    own_s3: LocalS3, proxy: CuttingProxy, proxied_store: Store
) -> None:
    first = put_example(proxied_store)
    proxy.cut_on(b"PUT /results/")
    with pytest.raises(UnavailableError):
        put_example(proxied_store, options={**OPTIONS, "method": "solid"})
    proxy.restore()
    proxied_store.retry_rollbacks()
    assert own_s3.snapshot()["originals"] == [first.original_key]
    assert own_s3.snapshot()["results"] == [first.result_key]


def test_failure_after_both_writes_keeps_the_whole_pair(
    own_s3: LocalS3, proxy: CuttingProxy, proxied_store: Store
) -> None:
    store = proxied_store
    # The second look at the original comes after both writes.
    proxy.cut_on(b"HEAD /originals/", let_through=1)
    with pytest.raises(UnavailableError):
        put_example(store)
    proxy.restore()
    wait_for_rollbacks(store)
    assert not store.pending_rollbacks
    snapshot = own_s3.snapshot()
    assert len(snapshot["originals"]) == len(snapshot["results"]) == 1
    assert put_example(store).result_key == snapshot["results"][0]  # a retry: same keys
    assert own_s3.snapshot() == snapshot
