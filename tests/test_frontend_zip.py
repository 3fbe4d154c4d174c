"""`/results.zip` against the real local S3 server: each key once, a byte cap, and a page
process whose memory stays flat while it streams large results."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests
from s3_server import free_port, stop_process, wait_for_port

from faceblur.config import load_settings
from frontend.app import create_app

ROOT = Path(__file__).resolve().parents[1]
SECRET = "a-test-secret-key-that-is-long-enough"
MB = 1024 * 1024


def put_result(s3, key: str, data: bytes) -> None:
    s3.store().client.put_object(
        bucket_name=s3.settings.bucket_results,
        object_name=key,
        data=io.BytesIO(data),
        length=len(data),
        content_type="image/png",
    )


def page_client(s3, tmp_path, **extra: str):
    environ = {**s3.env, "FACEBLUR_FRONTEND_SECRET_KEY": SECRET, **extra}
    settings = load_settings(environ=environ, secrets_dir=tmp_path)
    return create_app({"FACEBLUR_SETTINGS": settings}).test_client()


@pytest.fixture
def results(s3_server):
    made: list[str] = []
    yield made
    store = s3_server.store()
    for key in made:
        store.remove(s3_server.settings.bucket_results, key)


def test_a_key_asked_for_200_times_is_zipped_once(s3_server, results, tmp_path):
    key = "0ddba11ab/zipdedup.png"
    put_result(s3_server, key, b"x" * 1000)
    results.append(key)
    query = "&".join([f"key={key}&name=holiday.png"] * 200)
    response = page_client(s3_server, tmp_path).get(f"/results.zip?{query}")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        assert archive.namelist() == ["holiday-anonymised.png"]
        assert archive.read("holiday-anonymised.png") == b"x" * 1000
    assert len(response.data) < 2000


def test_distinct_keys_all_arrive_and_a_zip_over_the_cap_is_413(s3_server, results, tmp_path):
    keys = [f"0ddba11ab/zipcap{i}.png" for i in range(3)]
    for index, key in enumerate(keys):
        put_result(s3_server, key, bytes([index]) * 4000)
        results.append(key)
    query = "&".join(f"key={key}" for key in keys)
    client = page_client(s3_server, tmp_path, FACEBLUR_MAX_ZIP_BYTES="10000")
    refused = client.get(f"/results.zip?{query}")
    assert refused.status_code == 413
    assert "too many to download together" in refused.get_data(as_text=True)
    allowed = client.get(f"/results.zip?{'&'.join(f'key={key}' for key in keys[:2])}")
    assert allowed.status_code == 200
    with zipfile.ZipFile(io.BytesIO(allowed.data)) as archive:
        assert archive.namelist() == ["photo-anonymised.png", "photo-anonymised-2.png"]
        assert archive.read("photo-anonymised-2.png") == bytes([1]) * 4000
        assert archive.testzip() is None


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_the_page_streams_a_large_zip_in_flat_memory(s3_server, results, tmp_path):
    """6 x 16 MB through a real waitress page: its peak memory grows by far less than the
    96 MB archive (building it in memory grew by more than the archive)."""
    count, size = 6, 16 * MB
    for index in range(count):
        key = f"0ddba11ab/zipbig{index}.png"
        put_result(s3_server, key, os.urandom(size))
        results.append(key)
    port = free_port()
    env = {**os.environ, **s3_server.env, "FACEBLUR_FRONTEND_SECRET_KEY": SECRET}
    env["FACEBLUR_GATEWAY_URL"] = f"http://127.0.0.1:{free_port()}"
    log = (tmp_path / "page.log").open("wb")
    page = subprocess.Popen(
        [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--call"]
        + ["frontend.app:create_app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port, page, 60, "the page")
        base = f"http://127.0.0.1:{port}"
        # Warm up: imports, the S3 client and one small zip, so the baseline is fair.
        warm = requests.get(f"{base}/results.zip?key={results[0]}", timeout=60)
        assert warm.status_code == 200
        baseline = peak_rss_mb(page.pid)
        query = "&".join(f"key={key}" for key in results)
        received = 0
        with requests.get(f"{base}/results.zip?{query}", stream=True, timeout=60) as response:
            assert response.status_code == 200
            archive_path = tmp_path / "all.zip"
            with archive_path.open("wb") as out:
                for piece in response.iter_content(1024 * 1024):
                    out.write(piece)
                    received += len(piece)
        grown = peak_rss_mb(page.pid) - baseline
        assert received > count * size
        with zipfile.ZipFile(archive_path) as archive:
            assert len(archive.namelist()) == count
            assert archive.testzip() is None
        assert grown < 40, f"the page grew by {grown:.0f} MB for a {received / MB:.0f} MB zip"
    finally:
        stop_process(page)
        log.close()
        time.sleep(0)
