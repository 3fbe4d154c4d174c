"""Angles benchmark: faces in turned photos, next to the upright photos and to deface.

Run `make bench`, or alone: `.venv/bin/python bench/angles.py [--every 5]`. On
../shared/data/faces-dev, photo i turned by TURNS[i % 3] degrees (pixels turned,
ground-truth boxes turned with them):

* honest covered share per band (<20 / 20-50 / 50+ px of the face's upright height, so
  that a band holds the same faces turned and upright): a ground-truth face is covered
  when >= 70 % of its box lies inside the union of the anonymised regions that are each
  at most 6x its box's area (a region blotting out half the photo covers nothing);
* unmatched detections per photo (IoU < 0.3 with every ground-truth and ignore box);
* whole-run detection time on the upright photos with the feature and without it
  (`upright_only`): the upright pass, timed inside the run with the feature, is
  exactly what `upright_only` runs, so both figures share the same load;
* the same for deface 1.5.0 on the same photos: its CenterFace on onnxruntime at its CLI
  threshold (0.2), its regions as its CLI draws them at `--mask-scale 1.3` (bench/recall).

Each tool runs in its own subprocess. Prints a table; writes bench/results/angles.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recall  # noqa: E402  (one definition of honest covered, strays, deface's regions)
from recall import fmt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FACES_DEV = recall.FACES_DEV
RESULTS = ROOT / "bench" / "results" / "angles.json"
TURNS = (90, 180, 270)
TARGETS = {
    "covered_gap_max": 0.03,  # turned vs upright, 20-50 and 50+ px
    "unmatched_ratio_max": 1.5,  # turned vs upright
    "time_ratio_max": 1.5,  # upright photos with vs without the feature
}


# --------------------------------------------------------------------------- turning


def turned_entry(entry: dict, turn: int) -> dict:
    """The annotation of `entry`'s photo turned `turn` degrees clockwise (boxes turned too)."""
    width, height = entry["width"], entry["height"]

    def turn_box(box: list) -> list:
        x, y, w, h = box
        if turn == 90:
            return [height - y - h, x, h, w]
        if turn == 180:
            return [width - x - w, height - y - h, w, h]
        if turn == 270:
            return [y, width - x - w, h, w]
        return list(box)

    size = (height, width) if turn in (90, 270) else (width, height)
    return {
        **entry,
        "turn": turn,
        "width": size[0],
        "height": size[1],
        "faces": [turn_box(b) for b in entry["faces"]],
        "ignore": [turn_box(b) for b in entry["ignore"]],
        "face_heights": [h for _, _, _, h in entry["faces"]],
    }


def turned_pixels(rgb: np.ndarray, turn: int) -> np.ndarray:
    """`rgb` turned `turn` degrees clockwise."""
    return np.ascontiguousarray(np.rot90(rgb, -(turn // 90)))


# --------------------------------------------------------------------------- scoring


def faceblur_regions(detections: list, width: int, height: int, threshold: float) -> list:
    """The pipeline's regions: the default padding around every face, on its hair side."""
    from faceblur.geometry import padded_region
    from faceblur.options import DEFAULT_PADDING

    return [
        padded_region(tuple(d["box"]), DEFAULT_PADDING, width, height, d.get("turn", 0))
        for d in detections
        if d["score"] >= threshold
    ]


def score_run(entries: list, detections: dict, tool: str, threshold: float) -> dict:
    """Honest covered per band and strays per photo for one tool's detections.

    faceblur's detections are kept from `threshold` up and padded as the pipeline pads
    them; deface's were already kept from its own threshold and get its own mask.
    """
    from faceblur.options import DEFAULT_SHAPE

    tally = {name: [0, 0] for name, _, _ in recall.BANDS}  # covered, total
    strays = 0
    for entry in entries:
        width, height = entry["width"], entry["height"]
        found = detections[entry["image"]]
        if tool == "faceblur":
            kept = [d["box"] for d in found if d["score"] >= threshold]
            padded = faceblur_regions(found, width, height, threshold)
            regions = recall.faceblur_region_list(padded, DEFAULT_SHAPE, width, height)
        else:
            kept = [d["box"] for d in found]
            regions = recall.deface_region_list(kept, width, height)
        flags = recall.honest_covered_flags(entry["faces"], regions)
        strays += recall.stray_count(entry["faces"], entry["ignore"], kept)
        # A face's band is its upright height: a face turned on its side is as small or
        # large as it was, and each band then holds the same faces turned and upright.
        heights = entry.get("face_heights", [h for _, _, _, h in entry["faces"]])
        for height, covered in zip(heights, flags, strict=True):
            counts = tally[recall.band_of(height)]
            counts[0] += int(covered)
            counts[1] += 1
    covered = {name: (c / n if n else None) for name, (c, n) in tally.items()}
    total = sum(n for _, n in tally.values())
    covered["all"] = sum(c for c, _ in tally.values()) / total
    return {
        "honest_covered": covered,
        "faces": {name: n for name, (_, n) in tally.items()},
        "unmatched_per_photo": strays / len(entries),
    }


# --------------------------------------------------------------------------- workers


class FirstPassTimer:
    """The upright detector, timing the first pass of every photo: that pass is exactly
    what `upright_only` runs, so the run with the feature also times the run without it,
    under the same load."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.first: tuple[float, list] | None = None

    def glance(self, image: np.ndarray, turn: int, max_side: int, threshold: float) -> list:
        return self.inner.glance(image, turn, max_side, threshold)

    def detect(self, image: np.ndarray) -> list:
        begin = time.perf_counter()
        faces = self.inner.detect(image)
        if self.first is None:
            self.first = (time.perf_counter() - begin, faces)
        return faces

    def detect_glancing(self, image: np.ndarray, turns, max_side: int, threshold: float):
        # The glances run beside the upright pass on the detector's threads, so this time
        # holds what they take from it as well (an upper bound for `upright_only`).
        begin = time.perf_counter()
        faces, glances = self.inner.detect_glancing(image, turns, max_side, threshold)
        if self.first is None:
            self.first = (time.perf_counter() - begin, faces)
        return faces, glances


def plain(faces: list) -> list:
    return [{"box": list(f.box), "score": f.score, "turn": f.turn} for f in faces]


def deface_detector():
    """deface's CenterFace with the backend and threshold of recall's deface CLI run: its
    boxes on any RGB array (the turned photos exist only in memory, so not its CLI)."""
    from deface.centerface import CenterFace

    centerface = CenterFace(in_shape=None, backend=recall.DEFACE_BACKEND)

    def detect(rgb: np.ndarray) -> list:
        dets, _ = centerface(rgb, threshold=recall.DEFACE_THRESHOLD)
        return [
            {"box": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": float(s)}
            for x1, y1, x2, y2, s in dets
        ]

    return detect


def run_worker(tool: str, names: list[str]) -> dict:
    """Detections on the turned photos (photo i by TURNS[i % 3]) and on the upright ones;
    for faceblur also the upright pass alone (`upright_only`) and its time."""
    timer = None
    if tool == "faceblur":
        from faceblur.detection import build_detector
        from faceblur.detection.angles import AnyAngleDetector, upright

        timer = FirstPassTimer(upright(build_detector()))
        detector = AnyAngleDetector(timer)

        def detect(rgb):
            return plain(detector.detect(rgb))

    else:
        detect = deface_detector()

    out: dict = {"turned": {}, "upright": {}, "upright_only": {}, "seconds": {}}
    seconds = {"turned": 0.0, "upright": 0.0, "upright_only": 0.0}
    for index, name in enumerate(names):
        rgb = recall.read_rgb(FACES_DEV / name)
        turned = turned_pixels(rgb, TURNS[index % len(TURNS)])
        for kind, pixels in (("turned", turned), ("upright", rgb)):
            if timer:
                timer.first = None
            begin = time.perf_counter()
            out[kind][name] = detect(pixels)
            seconds[kind] += time.perf_counter() - begin
        if timer and timer.first:
            seconds["upright_only"] += timer.first[0]
            out["upright_only"][name] = plain(timer.first[1])
    out["seconds"] = seconds
    return out


def subprocess_json(args: list[str]) -> dict:
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def check_targets(report: dict) -> dict:
    ours, peer = report["faceblur"], report["deface"]
    met = {}
    for band in ("20-50", ">=50"):
        gap = ours["upright"]["honest_covered"][band] - ours["turned"]["honest_covered"][band]
        met[f"turned covered {band} within {TARGETS['covered_gap_max']} of upright"] = (
            gap <= TARGETS["covered_gap_max"]
        )
    for band in ("<20", "20-50", ">=50"):
        met[f"turned covered {band} > deface's"] = (ours["turned"]["honest_covered"][band] or 0) > (
            peer["turned"]["honest_covered"][band] or 0
        )
    met[f"turned unmatched <= {TARGETS['unmatched_ratio_max']}x upright"] = (
        report["ratios"]["unmatched_turned_vs_upright"] <= TARGETS["unmatched_ratio_max"]
    )
    met[f"upright time <= {TARGETS['time_ratio_max']}x without the feature"] = (
        report["ratios"]["upright_time_with_vs_without"] <= TARGETS["time_ratio_max"]
    )
    return met


def print_table(report: dict) -> None:
    cols = ["<20", "20-50", ">=50", "all"]
    ours, peer = report["faceblur"], report["deface"]
    print(
        f"\nfaces-dev turned 90/180/270: {report['photos']} photos, faces per band "
        f"{ours['turned']['faces']}"
    )
    print(f"{'honest covered':34} " + " ".join(f"{c:>7}" for c in cols) + f" {'strays':>7}")
    rows = [
        ("faceblur, turned photos", ours["turned"]),
        ("faceblur, upright photos", ours["upright"]),
        ("faceblur upright_only, upright", ours["upright_only"]),
        ("deface, turned photos", peer["turned"]),
        ("deface, upright photos", peer["upright"]),
    ]
    for label, row in rows:
        values = " ".join(f"{fmt(row['honest_covered'][c]):>7}" for c in cols)
        print(f"{label:34} {values} {fmt(row['unmatched_per_photo']):>7}")
    ratios = report["ratios"]
    print(
        "turned / deface covered: "
        + " / ".join(fmt(ratios["turned_covered_vs_deface"][c]) for c in cols)
    )
    print(f"strays turned / upright: {fmt(ratios['unmatched_turned_vs_upright'])}")
    seconds = report["seconds"]
    print(
        f"whole-run detection on upright photos: {seconds['upright']:.1f} s with the feature, "
        f"{seconds['upright_only']:.1f} s without ({fmt(ratios['upright_time_with_vs_without'])}"
        f"x); turned photos {seconds['turned']:.1f} s; deface {report['deface_seconds']:.1f} s"
    )
    recall.print_targets(report, "targets:")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=1, help="use every Nth photo (quick runs)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--runs", type=Path, help="save detections here, or score saved ones")
    parser.add_argument("--worker", choices=["faceblur", "deface"], help=argparse.SUPPRESS)
    parser.add_argument("--images", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    entries = json.loads((FACES_DEV / "annotations.json").read_text())
    if args.worker:
        print(json.dumps(run_worker(args.worker, json.loads(args.images.read_text()))))
        return 0

    entries = entries[:: max(1, args.every)]
    names = [e["image"] for e in entries]
    turned = [turned_entry(e, TURNS[i % len(TURNS)]) for i, e in enumerate(entries)]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    load_before = [round(v, 2) for v in os.getloadavg()]
    if args.runs and args.runs.exists():  # score saved detections again, run nothing
        runs = json.loads(args.runs.read_text())
    else:
        runs = {}
        with tempfile.TemporaryDirectory() as scratch:
            image_list = Path(scratch) / "images.json"
            image_list.write_text(json.dumps(names))
            for tool in ("deface", "faceblur"):
                print(f"running {tool} on {len(names)} photos ...", file=sys.stderr, flush=True)
                runs[tool] = subprocess_json(["--worker", tool, "--images", str(image_list)])
        if args.runs:
            args.runs.write_text(json.dumps(runs))
    load_after = [round(v, 2) for v in os.getloadavg()]

    from faceblur.options import DEFAULT_THRESHOLD

    ours = {
        "turned": score_run(turned, runs["faceblur"]["turned"], "faceblur", DEFAULT_THRESHOLD),
        "upright": score_run(entries, runs["faceblur"]["upright"], "faceblur", DEFAULT_THRESHOLD),
        "upright_only": score_run(
            entries, runs["faceblur"]["upright_only"], "faceblur", DEFAULT_THRESHOLD
        ),
    }
    peer = {
        "turned": score_run(turned, runs["deface"]["turned"], "deface", 0.0),
        "upright": score_run(entries, runs["deface"]["upright"], "deface", 0.0),
    }
    seconds = runs["faceblur"]["seconds"]
    report = {
        "photos": len(entries),
        "every": args.every,
        "turns": "photo i turned TURNS[i % 3] degrees clockwise, TURNS = (90, 180, 270)",
        "threshold": DEFAULT_THRESHOLD,
        "definitions": {
            "honest_covered": f">= {recall.COVERED_SHARE:.0%} of the face box inside the union "
            f"of regions each at most {recall.REGION_AREA_MAX:g}x the box's area",
            "unmatched": f"detections with IoU < {recall.STRAY_IOU} with every ground-truth "
            "and ignore box, per photo",
            "seconds": "whole-run detection time, decoded RGB in memory",
            "bands": "a face's band is its upright height, turned or not",
        },
        "faceblur": ours,
        "deface": peer,
        "seconds": seconds,
        "deface_seconds": runs["deface"]["seconds"]["turned"],
        "load_before": load_before,
        "load_after": load_after,
    }
    report["ratios"] = {
        "turned_covered_vs_deface": {
            band: (value / peer["turned"]["honest_covered"][band])
            if peer["turned"]["honest_covered"][band]
            else None
            for band, value in ours["turned"]["honest_covered"].items()
        },
        "unmatched_turned_vs_upright": ours["turned"]["unmatched_per_photo"]
        / max(ours["upright"]["unmatched_per_photo"], 1e-9),
        "upright_time_with_vs_without": seconds["upright"] / seconds["upright_only"],
    }
    report["targets"] = check_targets(report)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
