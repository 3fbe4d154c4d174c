"""Detection speed: faceblur's detector against deface's CenterFace, detection only.

Run `.venv/bin/python bench/speed.py [--every 3] [--rounds 2]`. Each tool runs in its
own process over the same photos of ../shared/data/faces-dev, from start (imports,
model load) to the last photo's faces: faceblur as `faceblur detect` does it
(`locate_each`: decode, then the production detector from `build_detector()`, any
angle, photos side by side), deface as its CLI does
it (imageio decode, its CenterFace on onnxruntime at its CLI threshold, at the photo's
own size). The tools take turns, round after round (deface, faceblur, deface, ...), so
that both see the same load; wall and CPU seconds are summed over the rounds and given
as faceblur/deface ratios. Writes bench/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recall  # noqa: E402  (timed_run, the data, deface's backend and threshold)

ROOT = Path(__file__).resolve().parents[1]
FACES_DEV = recall.FACES_DEV
RESULTS = ROOT / "bench" / "results" / "speed.json"
TOOLS = ("deface", "faceblur")
TARGET_RATIO = 3.0  # issue 24: detection at most 3x deface's time


def run_faceblur(images: list[str], settings: dict) -> dict:
    from faceblur.detection import build_detector
    from faceblur.media.photo import locate_each

    started = time.perf_counter()
    detector = build_detector(**settings)
    loaded = time.perf_counter() - started
    faces = 0
    # As `faceblur detect` runs a batch: photos side by side, in order.
    for _, located in locate_each([FACES_DEV / name for name in images], detector):
        faces += len(located.result().faces)
    return {"faces": faces, "load_seconds": loaded}


def run_deface(images: list[str]) -> dict:
    import imageio.v2 as iio
    from deface.centerface import CenterFace

    started = time.perf_counter()
    centerface = CenterFace(in_shape=None, backend=recall.DEFACE_BACKEND)
    loaded = time.perf_counter() - started
    faces = 0
    for name in images:
        dets, _ = centerface(iio.imread(FACES_DEV / name), threshold=recall.DEFACE_THRESHOLD)
        faces += len(dets)
    return {"faces": faces, "load_seconds": loaded}


def worker_json(args: list[str]) -> tuple[dict, dict]:
    """(the JSON it printed, its times) of this script run as a worker."""
    completed, spent = recall.timed_run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1]), spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=1, help="use every Nth photo")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each tool")
    parser.add_argument("--settings", default="{}", help="build_detector keywords, as JSON")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        images = json.loads(args.images.read_text())
        if args.worker == "faceblur":
            out = run_faceblur(images, json.loads(args.settings))
        else:
            out = run_deface(images)
        print(json.dumps(out))
        return 0

    entries = json.loads((FACES_DEV / "annotations.json").read_text())[:: max(1, args.every)]
    names = [e["image"] for e in entries]
    load_before = [round(v, 2) for v in os.getloadavg()]
    runs: dict[str, list] = {tool: [] for tool in TOOLS}
    with tempfile.TemporaryDirectory() as scratch:
        image_list = Path(scratch) / "images.json"
        image_list.write_text(json.dumps(names))
        for round_ in range(args.rounds):
            for tool in TOOLS:
                print(f"round {round_ + 1}: {tool} on {len(names)} photos", file=sys.stderr)
                worker = ["--worker", tool, "--images", str(image_list)]
                out, spent = worker_json([*worker, "--settings", args.settings])
                runs[tool].append({**out, "wall": spent["wall"], "cpu": spent["cpu"]})
    totals = {
        tool: {kind: sum(r[kind] for r in runs[tool]) for kind in ("wall", "cpu")} for tool in TOOLS
    }
    ratios = {kind: totals["faceblur"][kind] / totals["deface"][kind] for kind in ("wall", "cpu")}
    report = {
        "photos": len(names),
        "every": args.every,
        "rounds": args.rounds,
        "settings": json.loads(args.settings),
        "definitions": {
            "wall": "wall seconds of the tool's process over all the photos, model load included",
            "cpu": "CPU seconds (user + system, all threads) of that process",
            "deface": f"deface 1.5.0 CenterFace, backend {recall.DEFACE_BACKEND}, threshold "
            f"{recall.DEFACE_THRESHOLD}, imageio decode, the photo's own size",
            "faceblur": "locate_each, as `faceblur detect` runs a batch (decode + "
            "build_detector()'s detector, any angle, photos side by side)",
        },
        "runs": runs,
        "seconds_per_run": {
            tool: {kind: v / args.rounds for kind, v in t.items()} for tool, t in totals.items()
        },
        "ratios": ratios,
        "targets": {f"detection wall <= {TARGET_RATIO}x deface": ratios["wall"] <= TARGET_RATIO},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for tool in TOOLS:
        per = report["seconds_per_run"][tool]
        print(f"{tool:9} wall {per['wall']:7.1f} s  cpu {per['cpu']:7.1f} s per run")
    print(f"faceblur / deface: wall {ratios['wall']:.2f}x, cpu {ratios['cpu']:.2f}x")
    print(f"load average before/after: {report['load_before']} / {report['load_after']}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
