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
from collections.abc import Callable
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


def median_of(rows: list[dict], value: Callable[[dict], float]) -> float:
    return round(statistics.median(value(row) for row in rows), 4)


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


def bare_call(detector) -> Callable[[tuple[str, bytes]], float]:
    """The pipeline alone, in this process, as the function runs it."""
    from faceblur.media.photo import anonymise_image

    def run(item: tuple[str, bytes]) -> float:
        begun = time.perf_counter()
        anonymise_image(item[1], detector)
        return time.perf_counter() - begun

    return run


def interleaved(
    photos: list[tuple[str, bytes]], bare: Callable, http: Callable
) -> tuple[tuple[list[float], float], tuple[list[float], float]]:
    """Bare and HTTP one after the other on each photo, so load from elsewhere on the
    machine falls on both alike; returns (latencies, summed time) for each."""
    bare_times, http_times = [], []
    for item in photos:
        bare_times.append(bare(item))
        http_times.append(http(item))
    return (bare_times, sum(bare_times)), (http_times, sum(http_times))


def http_call(url: str, timings: list[dict]) -> Callable[[tuple[str, bytes]], float]:
    """One POST of the photo's bytes, stored, answered in JSON; the function's own
    timings of each call are appended to `timings`."""

    def send(item: tuple[str, bytes]) -> float:
        begun = time.perf_counter()
        response = requests.post(
            url, data=item[1], headers={"Content-Type": "image/jpeg"}, timeout=600
        )
        elapsed = time.perf_counter() - begun
        if response.status_code != 200:
            raise RuntimeError(f"{item[0]}: {response.status_code} {response.text[:200]}")
        timings.append({**response.json()["timings"], "client": elapsed})
        return elapsed

    return send


def concurrent(
    send: Callable, photos: list[tuple[str, bytes]], clients: int
) -> tuple[list[float], float]:
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
    from faceblur.detection import build_detector

    detector = build_detector()

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
            function_timings: list[dict] = []
            send, bare_run = http_call(url, function_timings), bare_call(detector)
            send(photos[0])  # warm-up: first-call costs are not the service's
            bare_run(photos[0])
            function_timings.clear()
            bare, one = interleaved(photos, bare_run, send)
            one_timings = list(function_timings)
            # The two-client throughput is wall time: the clients overlap.
            two = concurrent(send, photos, 2)
        finally:
            stop_process(runner)
            s3.stop()
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
        # Measured inside the function on the 1-client run: what the service adds to the
        # pipeline, without the noise of comparing two processes.
        "function_storage_median_s": median_of(one_timings, lambda t: t["storage"]),
        "function_outside_pipeline_median_s": median_of(
            one_timings, lambda t: t["request"] - t["pipeline"]
        ),
        "http_transport_median_s": median_of(one_timings, lambda t: t["client"] - t["request"]),
        "note": "HTTP = template runner + handler + s3rver storage of original and result, "
        "one detection at a time per process; bare and 1-client HTTP interleaved photo by "
        "photo (their req/s from summed latencies), 2 clients from wall time; all on this "
        "machine, shared with other work",
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
        f"median overhead {report['overhead_median_s'] * 1000:.0f} ms"
    )
    print(
        "inside the function (1 client), medians: storage "
        f"{report['function_storage_median_s'] * 1000:.0f} ms, all but the pipeline "
        f"{report['function_outside_pipeline_median_s'] * 1000:.0f} ms; HTTP transport "
        f"{report['http_transport_median_s'] * 1000:.0f} ms; written to {RESULTS}"
    )


if __name__ == "__main__":
    main()
