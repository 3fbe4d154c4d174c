"""Storage going away under the function: 503, and never half a pair once it is back.

This module runs its own S3 server (so it may stop it) and its own function, which
reaches the server through a proxy that can also cut the line between two writes.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pytest
import requests

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
        assert "storage unavailable" in response.json()["error"]
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
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(post, url, data) for data in photos[2:6]]
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
