"""Recall benchmark: what faceblur's output hides, next to deface's, on the same photos.

Run `make bench`, or alone: `.venv/bin/python bench/recall.py [--every 5] [--method blur]`
(every 5th photo for quick iterations; the method defaults to the pipeline's). On
../shared/data/faces-dev (198 WIDER photos), with the measures of issue 18:

* central detail removed (faces 20 px and up, per band): in the OUTPUT image the central
  60 % of the ground-truth box (grey) keeps at most 20 % of the variance of its
  Laplacian in the input; what a viewer sees, whatever the method;
* honest covered (per band): >= 70 % of the face's box inside the union of the regions
  each at most 6x that face's box area: a neighbourhood-sized region does not count
  for the faces it happens to cover;
* unmatched detections per photo: detections with IoU < 0.3 with every ground-truth and
  `ignore` box (stray regions); `ignore` boxes count neither as misses nor as strays;
* changed outside faces: the share of each photo's pixels, outside every ground-truth
  and ignore box, whose grey level moved by more than 12 (both images smoothed 5x5
  first, so re-encoding noise does not count); mean over photos;
* whole-run time: wall time of each tool's process over all the photos, from start
  (imports, model load) to the last output written.

faceblur's output is `anonymise_image` with the default options and `--method` if given,
photos two at a time as `faceblur blur` runs a batch (`side_by_side`).
deface is deface 1.5.0's own CLI on onnxruntime (as its users install it), writing its
own output images, `--mask-scale 1.3`; its boxes for the stray count come from its
CenterFace class with the same backend and threshold, outside the timed run.
Each tool runs in its own subprocess. Prints a table with ratios to deface; writes
bench/results/recall.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from faceblur.geometry import iou_matrix  # light: the models load only in build_detector
from faceblur.options import Options

ROOT = Path(__file__).resolve().parents[1]
FACES_DEV = ROOT.parent / "shared" / "data" / "faces-dev"
RESULTS = ROOT / "bench" / "results" / "recall.json"
BANDS = (("<20", 0.0, 20.0), ("20-50", 20.0, 50.0), (">=50", 50.0, float("inf")))
DETAIL_BANDS = ("20-50", ">=50")  # under 20 px a Laplacian says little about a face
FOUND_IOU = 0.5
COVERED_SHARE = 0.7
REGION_AREA_MAX = 6.0  # a region counts for a face when at most this x the face's box area
STRAY_IOU = 0.3
CENTRE_SHARE = 0.6  # central 60 % of the box, across and down
DETAIL_KEPT_MAX = 0.2  # Laplacian variance kept at most this share of the input's
CHANGED_GREY = 12  # grey levels a pixel must move by to count as changed ...
CHANGED_SMOOTHING = 5  # ... after a 5x5 box blur of both images
DEFACE_THRESHOLD = 0.2  # deface's CLI default
DEFACE_MASK_SCALE = 1.3
DEFACE_BACKEND = "onnxrt"
TARGETS = {
    "detail_removed": {">=50": 0.99, "20-50": 0.97},
    "honest_covered_min": {"<20": 0.85},
}
LIMITS = {  # hard constraints, as ratios to deface in the same run
    "unmatched_per_photo": 1.5,
    "changed_outside_faces": 2.5,
    "run_seconds": 4.0,
    "run_cpu_seconds": 4.0,  # the same limit on CPU time, which other loads hardly stretch
}


# --------------------------------------------------------------------------- scoring


def xyxy(boxes: list) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    array[:, 2:] += array[:, :2]
    return array


def band_of(height: float) -> str:
    return next(name for name, low, high in BANDS if low <= height < high)


def found_flags(truth: list, boxes: list, scores: list) -> np.ndarray:
    """Which ground-truth faces a detection matches (greedy, best score first, one-to-one)."""
    found = np.zeros(len(truth), dtype=bool)
    if not truth or not boxes:
        return found
    overlap = iou_matrix(xyxy(boxes), xyxy(truth))
    for index in np.argsort(-np.asarray(scores), kind="stable"):
        free = np.nonzero(~found & (overlap[index] >= FOUND_IOU))[0]
        if len(free):
            found[free[np.argmax(overlap[index, free])]] = True
    return found


def stray_count(truth: list, ignore: list, boxes: list) -> int:
    """Detections overlapping no ground-truth or ignore box (IoU < 0.3 with all)."""
    if not boxes:
        return 0
    known = list(truth) + list(ignore)
    if not known:
        return len(boxes)
    return int((iou_matrix(xyxy(boxes), xyxy(known)).max(axis=1) < STRAY_IOU).sum())


def pixel_box(box) -> tuple[int, int, int, int]:
    """A float x, y, w, h box as integer x1, y1, x2, y2 covering it."""
    x, y, w, h = box
    return int(np.floor(x)), int(np.floor(y)), int(np.ceil(x + w)), int(np.ceil(y + h))


@dataclasses.dataclass
class Region:
    """One anonymised region: its rectangle (x1, y1, x2, y2) and its shape inside it."""

    x1: int
    y1: int
    x2: int
    y2: int
    inside: np.ndarray  # bool (y2 - y1, x2 - x1)

    @property
    def area(self) -> int:
        return (self.x2 - self.x1) * (self.y2 - self.y1)


def faceblur_region_list(regions: list, shape: str, width: int, height: int) -> list[Region]:
    """faceblur's regions (x, y, w, h) with the mask `anonymise` uses for `shape`."""
    from faceblur.anonymise import region_mask

    out = []
    for x, y, w, h in regions:
        if w > 0 and h > 0:
            mask = region_mask(height, width, [(x, y, w, h)], shape)[y : y + h, x : x + w]
            out.append(Region(x, y, x + w, y + h, mask))
    return out


def deface_region_list(boxes: list, width: int, height: int) -> list[Region]:
    """deface's anonymize_frame: box grown by 0.3 x its size on each side, clipped, and the
    ellipse skimage.draw inscribes in it (as deface 1.5.0 draws it)."""
    import skimage.draw

    grow = DEFACE_MASK_SCALE - 1.0
    out = []
    for x, y, w, h in boxes:
        x1, y1 = int(x), int(y)  # deface truncates its float box first
        x2, y2 = int(x + w), int(y + h)
        bw, bh = x2 - x1, y2 - y1
        x1, x2 = np.round([x1 - bw * grow, x2 + bw * grow]).astype(int)
        y1, y2 = np.round([y1 - bh * grow, y2 + bh * grow]).astype(int)
        x1, y1 = max(0, int(x1)), max(0, int(y1))
        x2, y2 = min(width - 1, int(x2)), min(height - 1, int(y2))
        if x2 <= x1 or y2 <= y1:
            continue
        inside = np.zeros((y2 - y1, x2 - x1), dtype=bool)
        rows, cols = skimage.draw.ellipse(
            (y2 - y1) // 2, (x2 - x1) // 2, (y2 - y1) // 2, (x2 - x1) // 2
        )
        keep = (rows < inside.shape[0]) & (cols < inside.shape[1])
        inside[rows[keep], cols[keep]] = True
        out.append(Region(x1, y1, x2, y2, inside))
    return out


def honest_covered_flags(truth: list, regions: list[Region]) -> np.ndarray:
    """Faces with >= 70 % of their box inside regions each at most 6x the box's area."""
    flags = np.zeros(len(truth), dtype=bool)
    for index, box in enumerate(truth):
        x1, y1, x2, y2 = pixel_box(box)
        area = max(x2 - x1, 1) * max(y2 - y1, 1)
        inside = np.zeros((max(y2 - y1, 1), max(x2 - x1, 1)), dtype=bool)
        for r in regions:
            if r.area > REGION_AREA_MAX * area:
                continue
            ix1, iy1, ix2, iy2 = max(x1, r.x1), max(y1, r.y1), min(x2, r.x2), min(y2, r.y2)
            if ix2 <= ix1 or iy2 <= iy1:
                continue
            inside[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] |= r.inside[
                iy1 - r.y1 : iy2 - r.y1, ix1 - r.x1 : ix2 - r.x1
            ]
        flags[index] = inside.sum() / area >= COVERED_SHARE
    return flags


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def detail_removed_flags(truth: list, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Faces whose central 60 % keeps at most 20 % of its Laplacian variance in the output."""
    lap_before = cv2.Laplacian(grey(before).astype(np.float32), cv2.CV_32F)
    lap_after = cv2.Laplacian(grey(after).astype(np.float32), cv2.CV_32F)
    height, width = before.shape[:2]
    flags = np.zeros(len(truth), dtype=bool)
    margin = (1.0 - CENTRE_SHARE) / 2
    for index, (x, y, w, h) in enumerate(truth):
        x1, y1, x2, y2 = pixel_box(
            (x + margin * w, y + margin * h, CENTRE_SHARE * w, CENTRE_SHARE * h)
        )
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if x2 <= x1 or y2 <= y1:
            continue
        kept = lap_after[y1:y2, x1:x2].var()
        flags[index] = kept <= DETAIL_KEPT_MAX * lap_before[y1:y2, x1:x2].var()
    return flags


def changed_outside_share(entry: dict, before: np.ndarray, after: np.ndarray) -> float:
    """Share of the photo's pixels outside every ground-truth/ignore box that visibly moved."""
    size = (CHANGED_SMOOTHING, CHANGED_SMOOTHING)
    a = cv2.blur(grey(before).astype(np.float32), size)
    b = cv2.blur(grey(after).astype(np.float32), size)
    outside = np.ones(a.shape, dtype=bool)
    for box in entry["faces"] + entry["ignore"]:
        x1, y1, x2, y2 = pixel_box(box)
        outside[max(y1, 0) : y2, max(x1, 0) : x2] = False
    return float(((np.abs(a - b) > CHANGED_GREY) & outside).mean())


def score_tool(entries: list, run: dict, regions_of) -> dict:
    """Every measure for one tool: `run` holds its detections and output paths per photo."""
    names = [name for name, _, _ in BANDS]
    tally = {kind: dict.fromkeys(names, 0) for kind in ("found", "covered", "detail", "faces")}
    strays, changed = 0, []
    for entry in entries:
        width, height = entry["width"], entry["height"]
        truth = entry["faces"]
        detections = run["detections"][entry["image"]]
        boxes = [d["box"] for d in detections]
        before = read_rgb(FACES_DEV / entry["image"])
        after = read_rgb(Path(run["outputs"][entry["image"]]))
        if after.shape != before.shape:
            raise RuntimeError(f"{entry['image']}: output {after.shape} != input {before.shape}")
        found = found_flags(truth, boxes, [d["score"] for d in detections])
        covered = honest_covered_flags(truth, regions_of(run, entry["image"], width, height))
        detail = detail_removed_flags(truth, before, after)
        changed.append(changed_outside_share(entry, before, after))
        strays += stray_count(truth, entry["ignore"], boxes)
        for (_, _, _, h), *flags in zip(truth, found, covered, detail, strict=True):
            band = band_of(h)
            for kind, flag in zip(("found", "covered", "detail"), flags, strict=True):
                tally[kind][band] += int(flag)
            tally["faces"][band] += 1
    faces = tally["faces"]
    result: dict = {"faces": {**faces, "all": sum(faces.values())}}
    for kind, key in (
        ("found", "found"),
        ("covered", "honest_covered"),
        ("detail", "detail_removed"),
    ):
        bands = names if kind != "detail" else list(DETAIL_BANDS)
        result[key] = {b: tally[kind][b] / faces[b] if faces[b] else None for b in bands}
    result["unmatched_per_photo"] = strays / len(entries)
    result["changed_outside_faces"] = float(np.mean(changed))
    return result


def faceblur_regions_of(shape: str):
    def regions_of(run: dict, name: str, width: int, height: int) -> list[Region]:
        return faceblur_region_list(run["regions"][name], shape, width, height)

    return regions_of


def deface_regions_of(run: dict, name: str, width: int, height: int) -> list[Region]:
    return deface_region_list([d["box"] for d in run["detections"][name]], width, height)


# --------------------------------------------------------------------------- workers


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def faceblur_options(method: str | None) -> Options:
    """The pipeline's default options, `method` if given."""
    defaults = Options()
    return defaults if method is None else dataclasses.replace(defaults, method=method)


def run_faceblur(images: list[str], out_dir: Path, method: str | None) -> dict:
    """The whole pipeline, bytes to bytes, on every photo; outputs written to `out_dir`."""
    from faceblur.detection import build_detector
    from faceblur.media.photo import anonymise_image, side_by_side

    options = faceblur_options(method)
    detector = build_detector()
    out: dict = {"options": dataclasses.asdict(options), "detections": {}, "regions": {}}
    out["outputs"] = {}

    def blur(name: str):
        result = anonymise_image((FACES_DEV / name).read_bytes(), detector, options)
        (out_dir / Path(name).name).write_bytes(result.data)
        return result

    # As `faceblur blur` runs a batch: photos side by side, in order.
    for name, done in side_by_side(images, blur):
        result = done.result()
        target = out_dir / Path(name).name
        out["outputs"][name] = str(target)
        out["detections"][name] = [{"box": list(f.box), "score": f.score} for f in result.faces]
        out["regions"][name] = [list(r) for r in result.regions]
    return out


def deface_boxes(images: list[str]) -> dict:
    """deface's detections (threshold and backend of the CLI run), for the stray count."""
    from deface.centerface import CenterFace

    centerface = CenterFace(in_shape=None, backend=DEFACE_BACKEND)
    detections = {}
    for name in images:
        import imageio.v2 as iio

        frame = iio.imread(FACES_DEV / name)  # as deface's image_detect reads it
        dets, _ = centerface(frame, threshold=DEFACE_THRESHOLD)
        detections[name] = [
            {"box": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": float(s)}
            for x1, y1, x2, y2, s in dets
        ]
    return {"detections": detections}


def run_deface_cli(images: list[str], scratch: Path) -> tuple[dict, dict]:
    """deface's own CLI over a folder of links to the photos; (its times, output paths).

    Given a folder, deface writes `<name>_anonymized<ext>` beside each input, so the
    inputs are linked into a scratch folder rather than written next to the data.
    """
    folder = scratch / "deface"
    folder.mkdir()
    for name in images:
        (folder / Path(name).name).symlink_to(FACES_DEV / name)
    deface = shutil.which("deface") or str(Path(sys.executable).parent / "deface")
    command = [deface, str(folder), "--mask-scale", str(DEFACE_MASK_SCALE)]
    command += ["--backend", DEFACE_BACKEND, "--thresh", str(DEFACE_THRESHOLD)]
    completed, spent = timed_run(command)
    if completed.returncode != 0:
        raise RuntimeError(f"deface failed:\n{completed.stderr[-3000:]}")
    outputs = {}
    for name in images:
        stem, ext = os.path.splitext(Path(name).name)
        outputs[name] = str(folder / f"{stem}_anonymized{ext}")
    return spent, outputs


def children_cpu_seconds() -> float:
    """CPU seconds (user + system, every thread) of the finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(command: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `command`; its result and {"wall": seconds, "cpu": CPU seconds}.

    CPU time is reported beside wall time because the machine may be shared: other
    loads stretch wall time, hardly CPU time.
    """
    cpu, started = children_cpu_seconds(), time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    spent = {"wall": time.perf_counter() - started, "cpu": children_cpu_seconds() - cpu}
    return completed, spent


def subprocess_json(args: list[str]) -> tuple[dict, dict]:
    """(the JSON it printed, its times) of this script run as a worker."""
    completed, spent = timed_run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1]), spent


# --------------------------------------------------------------------------- report


def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def ratio(a, b):
    return a / b if a is not None and b else None


def report_rows(ours: dict, peer: dict) -> list[tuple[str, object, object]]:
    rows = []
    for key in ("detail_removed", "honest_covered", "found"):
        for band in ours[key]:
            rows.append((f"{key} {band}", ours[key][band], peer[key][band]))
    for key in ("unmatched_per_photo", "changed_outside_faces", "run_seconds", "run_cpu_seconds"):
        rows.append((key, ours[key], peer[key]))
    return rows


def check_targets(ours: dict, peer: dict) -> dict:
    met = {}
    for band, goal in TARGETS["detail_removed"].items():
        met[f"detail removed {band} >= {goal}"] = (ours["detail_removed"][band] or 0) >= goal
    for band in ours["honest_covered"]:
        met[f"honest covered {band} > deface"] = (ours["honest_covered"][band] or 0) > (
            peer["honest_covered"][band] or 0
        )
    for band, goal in TARGETS["honest_covered_min"].items():
        met[f"honest covered {band} >= {goal}"] = (ours["honest_covered"][band] or 0) >= goal
    for key, limit in LIMITS.items():
        met[f"{key} <= {limit}x deface (hard)"] = ours[key] <= limit * peer[key]
    return met


def print_table(report: dict) -> None:
    ours, peer = report["faceblur"], report["deface"]
    print(f"\nfaces-dev: {report['photos']} photos, faces per band {ours['faces']}")
    print(f"faceblur method {report['method']}; deface {DEFACE_BACKEND}, mask scale 1.3")
    print(f"{'figure':28} {'faceblur':>9} {'deface':>9} {'ratio':>7}")
    for label, a, b in report_rows(ours, peer):
        print(f"{label:28} {fmt(a):>9} {fmt(b):>9} {fmt(ratio(a, b)):>7}")
    print_targets(report, "targets and limits:")


def print_targets(report: dict, heading: str) -> None:
    """The met/missed lines of report["targets"] and the load average around the run."""
    print(heading)
    for name, met in report["targets"].items():
        print(f"  {'MET ' if met else 'MISS'} {name}")
    print(f"load average before/after: {report['load_before']} / {report['load_after']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=1, help="use every Nth photo (quick runs)")
    parser.add_argument("--method", help="faceblur's method (default: the pipeline's)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=["faceblur", "deface-boxes"], help=argparse.SUPPRESS)
    parser.add_argument("--images", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    entries = json.loads((FACES_DEV / "annotations.json").read_text())
    if args.worker:
        images = json.loads(args.images.read_text())
        if args.worker == "faceblur":
            print(json.dumps(run_faceblur(images, args.out_dir, args.method)))
        else:
            print(json.dumps(deface_boxes(images)))
        return 0

    entries = entries[:: max(1, args.every)]
    names = [e["image"] for e in entries]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    load_before = [round(v, 2) for v in os.getloadavg()]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        image_list = scratch / "images.json"
        image_list.write_text(json.dumps(names))
        print(f"deface CLI on {len(names)} photos ...", file=sys.stderr, flush=True)
        deface_spent, deface_outputs = run_deface_cli(names, scratch)
        peer_run, _ = subprocess_json(["--worker", "deface-boxes", "--images", str(image_list)])
        peer_run["outputs"] = deface_outputs
        print(f"faceblur on {len(names)} photos ...", file=sys.stderr, flush=True)
        ours_dir = scratch / "faceblur"
        ours_dir.mkdir()
        worker = ["--worker", "faceblur", "--images", str(image_list), "--out-dir", str(ours_dir)]
        if args.method:
            worker += ["--method", args.method]
        ours_run, ours_spent = subprocess_json(worker)
        load_after = [round(v, 2) for v in os.getloadavg()]
        print("scoring ...", file=sys.stderr, flush=True)
        shape = ours_run["options"]["shape"]
        ours = score_tool(entries, ours_run, faceblur_regions_of(shape))
        peer = score_tool(entries, peer_run, deface_regions_of)
    for result, spent in ((ours, ours_spent), (peer, deface_spent)):
        result["run_seconds"], result["run_cpu_seconds"] = spent["wall"], spent["cpu"]
    report = {
        "photos": len(entries),
        "every": args.every,
        "method": ours_run["options"]["method"],
        "options": ours_run["options"],
        "definitions": {
            "detail_removed": "in the output, the central 60 % of the gt box (grey) keeps at "
            "most 20 % of the variance of its Laplacian in the input; faces 20 px and up",
            "honest_covered": ">= 70 % of the gt box inside the union of regions each at most "
            "6x the box's area",
            "found": f"IoU >= {FOUND_IOU}, one-to-one, best score first",
            "unmatched_per_photo": f"detections with IoU < {STRAY_IOU} with every gt/ignore box",
            "changed_outside_faces": "share of a photo's pixels outside every gt/ignore box "
            "whose grey level moved by > 12 after 5x5 smoothing of both; mean over photos",
            "run_seconds": "wall time of the tool's process over all photos, load included",
            "run_cpu_seconds": "CPU time (user + system, all threads) of that process",
            "deface": f"deface 1.5.0 CLI, backend {DEFACE_BACKEND}, --mask-scale 1.3, "
            f"threshold {DEFACE_THRESHOLD}, its own output images",
        },
        "faceblur": ours,
        "deface": peer,
        "ratios": {label: ratio(a, b) for label, a, b in report_rows(ours, peer)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": load_before,
        "load_after": load_after,
    }
    report["targets"] = check_targets(ours, peer)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
