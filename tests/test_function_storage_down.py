"""Storage going away under the function: 503, and never half a pair once it is back.

This module runs its own S3 server (so it may stop it) and its own function, which
reaches the server through a proxy that can also cut the line between two writes.
"""

from __future__ import annotations

import io
import os
import re
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pytest
import requests

from faceblur.config import load_settings
from faceblur.store.keys import content_id
from frontend.app import create_app
from stack_fixtures import CuttingProxy, LocalS3, scaled_photo, start_function, start_local_s3

CONSISTENT_WAIT_SECONDS = 40


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("fragile")
    s3 = start_local_s3(folder / "s3")
    proxy = CuttingProxy(s3.server.port)
    function = start_function(
        s3, folder / "runner.log", extra_env={"FACEBLUR_S3_ENDPOINT": proxy.endpoint}
    )
    try:
        yield s3, proxy, f"{function.url}/function/faceblur"
    finally:
        function.stop()
        proxy.close()
        s3.stop()


@pytest.fixture(scope="module")
def photos(dev_annotations: list[dict]) -> list[bytes]:
    entries = [e for e in dev_annotations if e["n_faces"] == 1 and 150 <= e["faces"][0][3] <= 450]
    return [scaled_photo(entry)[0] for entry in entries[:6]]


def post(url: str, data: bytes) -> requests.Response:
    return requests.post(url, data=data, headers={"Content-Type": "image/png"}, timeout=300)


def orphans(s3: LocalS3) -> tuple[list[str], list[str]]:
    """Originals without a result, results without their original."""
    snapshot = s3.snapshot()
    ids_with_results = {key.split("/", 1)[0] for key in snapshot["results"]}
    ids_of_originals = {key.split(".", 1)[0] for key in snapshot["originals"]}
    return (
        [k for k in snapshot["originals"] if k.split(".", 1)[0] not in ids_with_results],
        [k for k in snapshot["results"] if k.split("/", 1)[0] not in ids_of_originals],
    )


def wait_until_consistent(s3: LocalS3) -> tuple[list[str], list[str]]:
    deadline = time.monotonic() + CONSISTENT_WAIT_SECONDS
    found = orphans(s3)
    while any(found) and time.monotonic() < deadline:
        time.sleep(0.5)
        found = orphans(s3)
    return found


def test_server_stopped_gives_503_and_nothing_changes(stack, photos: list[bytes]) -> None:
    s3, _, url = stack
    before = s3.snapshot()
    s3.stop()
    try:
        response = post(url, photos[0])
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
        info = requests.get(url, timeout=60).json()
        assert info["storage"]["reachable"] is False
    finally:
        s3.restart()
    assert s3.snapshot() == before
    response = post(url, photos[0])
    assert response.status_code == 200, response.text
    assert requests.get(url, timeout=60).json()["storage"] == {"reachable": True}


def test_server_dying_between_the_two_writes_leaves_no_half_pair(stack, photos) -> None:
    s3, proxy, url = stack
    before = s3.snapshot()
    proxy.cut_on(b"PUT /results/")
    try:
        response = post(url, photos[1])
    finally:
        proxy.restore()
    assert response.status_code == 503, response.text
    assert proxy.cut_requests >= 1
    assert wait_until_consistent(s3) == ([], [])
    assert s3.snapshot() == before


def test_server_stopped_while_requests_run_leaves_only_whole_pairs(stack, photos) -> None:
    s3, _, url = stack
    # Each photo twice: one detection at a time, and the detector is fast enough that
    # three photos could all be done before the server stops.
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(post, url, data) for data in photos[2:6] * 2]
        # One detection at a time: once one request is done the others still run.
        wait(futures, return_when=FIRST_COMPLETED)
        s3.stop()
        responses = [future.result() for future in futures]
    s3.restart()
    assert {r.status_code for r in responses} <= {200, 503}
    assert any(r.status_code == 503 for r in responses)
    assert wait_until_consistent(s3) == ([], [])
    snapshot = s3.snapshot()
    for response in responses:
        if response.status_code == 200:
            body = response.json()
            assert body["original_key"] in snapshot["originals"]
            assert body["result_key"] in snapshot["results"]


FAST_503_SECONDS = 15


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_no_internals(text: str, s3: LocalS3, photo: bytes) -> None:
    for internal in (
        s3.endpoint,
        f":{s3.server.port}",
        "HTTPConnectionPool",
        "host=",
        "Traceback",
        content_id(photo),
    ):
        assert internal not in text, f"{internal!r} in {text[:300]!r}"


def test_a_frozen_store_is_a_fast_503_in_plain_words(stack, photos, tmp_path) -> None:
    """SIGSTOP on the S3 server: it accepts connections and never answers. Each path
    answers within seconds (the S3 timeout), says what failed, and names nothing internal."""
    s3, _, url = stack
    settings = load_settings(
        environ={
            **s3.env,
            "FACEBLUR_GATEWAY_URL": url.rsplit("/function/", 1)[0],
            "FACEBLUR_FRONTEND_SECRET_KEY": "a-test-secret-key-that-is-long-enough",
        },
        secrets_dir=tmp_path,
    )
    page = create_app({"FACEBLUR_SETTINGS": settings}).test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.get("/").get_data(True))[1]
    photo = photos[0]
    os.kill(s3.server.process.pid, signal.SIGSTOP)
    try:
        posted, post_seconds = timed(lambda: post(url, photo))
        info, info_seconds = timed(lambda: requests.get(url, timeout=60))
        gallery, gallery_seconds = timed(lambda: page.get("/gallery"))
        sent, sent_seconds = timed(
            lambda: page.post(
                "/api/anonymise",
                data={"photo": (io.BytesIO(photo), "me.png", "image/png")},
                headers={"X-CSRFToken": token},
                content_type="multipart/form-data",
            )
        )
    finally:
        os.kill(s3.server.process.pid, signal.SIGCONT)
    assert posted.status_code == 503 and post_seconds < FAST_503_SECONDS, post_seconds
    assert posted.json()["code"] == "unavailable"
    assert info.status_code == 200 and info_seconds < FAST_503_SECONDS, info_seconds
    assert info.json()["storage"]["reachable"] is False
    assert info.json()["storage"]["code"] == "unavailable"
    assert gallery.status_code == 503 and gallery_seconds < FAST_503_SECONDS, gallery_seconds
    assert "photo store is not available" in gallery.get_data(as_text=True)
    assert sent.status_code == 503 and sent_seconds < FAST_503_SECONDS, sent_seconds
    for text in (posted.text, info.text, gallery.get_data(True), sent.get_data(True)):
        assert_no_internals(text, s3, photo)
    # Thawed: the same photo goes through.
    assert post(url, photo).status_code == 200
