"""End-to-end figures of the function through HTTP with storage, against the bare pipeline.

Starts its own S3 server (s3rver, temporary folder) and the function behind the template
runner, sends the same real photos (../shared/data/faces-dev) with 1 and then 2 concurrent
clients, and runs the bare pipeline on them in this process. Prints a table and writes
bench/results/service.json.

    .venv/bin/python bench/service.py [--photos 12]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions" / "local"))

from s3_server import free_port, start_s3_server, stop_process  # noqa: E402

from faceblur.config import LOOPBACK_CREDENTIALS  # noqa: E402

FACES_DEV = ROOT.parent / "shared" / "data" / "faces-dev"
RESULTS = ROOT / "bench" / "results" / "service.json"
READY_TIMEOUT_SECONDS = 300


def pick_photos(count: int) -> list[tuple[str, bytes]]:
    """Every k-th photo by name: portraits to crowds, deterministic."""
    entries = sorted(
        json.loads((FACES_DEV / "annotations.json").read_text()), key=lambda e: e["image"]
    )
    step = max(1, len(entries) // count)
    chosen = entries[::step][:count]
    return [(e["image"], (FACES_DEV / e["image"]).read_bytes()) for e in chosen]


def megapixels_of(data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as image:
        return image.width * image.height / 1e6


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "median_s": round(statistics.median(latencies), 4),
        "p95_s": round(percentile(latencies, 0.95), 4),
        "requests_per_s": round(len(latencies) / wall, 3),
    }


def bare_pipeline(photos: list[tuple[str, bytes]]) -> tuple[list[float], float]:
    from faceblur.detect import build_detector
    from faceblur.pipeline import anonymise_image

    detector = build_detector()
    anonymise_image(photos[0][1], detector)  # warm-up
    latencies = []
    started = time.perf_counter()
    for _, data in photos:
        begun = time.perf_counter()
        anonymise_image(data, detector)
        latencies.append(time.perf_counter() - begun)
    return latencies, time.perf_counter() - started


def through_http(
    url: str, photos: list[tuple[str, bytes]], clients: int
) -> tuple[list[float], float]:
    def send(item: tuple[str, bytes]) -> float:
        begun = time.perf_counter()
        response = requests.post(
            url, data=item[1], headers={"Content-Type": "image/jpeg"}, timeout=600
        )
        elapsed = time.perf_counter() - begun
        if response.status_code != 200:
            raise RuntimeError(f"{item[0]}: {response.status_code} {response.text[:200]}")
        return elapsed

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(send, photos))
    return latencies, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=12)
    args = parser.parse_args()
    photos = pick_photos(args.photos)
    access_key, secret_key = LOOPBACK_CREDENTIALS

    with tempfile.TemporaryDirectory(prefix="faceblur-bench-") as folder:
        s3 = start_s3_server(
            Path(folder) / "s3",
            access_key=access_key,
            secret_key=secret_key,
            buckets=("inbox", "originals", "results"),
        )
        port = free_port()
        env = {
            **os.environ,
            "FACEBLUR_S3_ENDPOINT": s3.endpoint,
            "FACEBLUR_S3_ACCESS_KEY": access_key,
            "FACEBLUR_S3_SECRET_KEY": secret_key,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        runner = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "functions" / "local" / "template_runner.py"),
                "--handler",
                str(ROOT / "functions" / "faceblur" / "handler.py"),
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/function/faceblur"
        try:
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            while True:
                try:
                    if requests.get(url, timeout=10).json().get("model_loaded"):
                        break
                except (requests.RequestException, ValueError):
                    pass
                if time.monotonic() > deadline or runner.poll() is not None:
                    raise RuntimeError("the function did not start")
                time.sleep(0.5)
            through_http(url, photos[:1], 1)  # warm-up: first-call costs are not the service's
            one = through_http(url, photos, 1)
            two = through_http(url, photos, 2)
        finally:
            stop_process(runner)
            s3.stop()

    bare = bare_pipeline(photos)
    bare_summary, one_summary, two_summary = summary(*bare), summary(*one), summary(*two)
    overheads = [service - pipeline for service, pipeline in zip(one[0], bare[0], strict=True)]
    megapixels = [megapixels_of(data) for _, data in photos]
    report = {
        "photos": [name for name, _ in photos],
        "megapixels_median": round(statistics.median(megapixels), 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "bare_pipeline": bare_summary,
        "http_1_client": one_summary,
        "http_2_clients": two_summary,
        "ratio_median_http_to_bare": round(one_summary["median_s"] / bare_summary["median_s"], 3),
        "overhead_median_s": round(statistics.median(overheads), 4),
        "note": "HTTP = template runner + handler + s3rver storage of original and result, "
        "one detection at a time per process; all on this machine, shared with other work",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    rows = [
        ("bare pipeline", bare_summary),
        ("HTTP, 1 client", one_summary),
        ("HTTP, 2 clients", two_summary),
    ]
    print(f"service benchmark: {len(photos)} photos, median {report['megapixels_median']} MP")
    print(f"{'':18} {'median s':>9} {'p95 s':>8} {'req/s':>7}")
    for label, figures in rows:
        print(
            f"{label:18} {figures['median_s']:9.3f} {figures['p95_s']:8.3f} "
            f"{figures['requests_per_s']:7.2f}"
        )
    print(
        f"HTTP/bare median ratio {report['ratio_median_http_to_bare']}, "
        f"median overhead {report['overhead_median_s'] * 1000:.0f} ms; written to {RESULTS}"
    )


if __name__ == "__main__":
    main()
