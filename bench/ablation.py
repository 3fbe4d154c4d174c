"""Ablation: what each pass and each network of the detector costs and finds alone.

Run `.venv/bin/python bench/ablation.py [--every 3]`. On ../shared/data/faces-dev, every
pass runs on every photo, ungated, each timed: CenterFace's global, shrink, zoom
(whole-photo tiles, and the windows around small candidates that video frames use),
upside-down and squeezed passes, YuNet, MTCNN, and the any-angle search (three glances,
then the turned full passes they earn). MTCNN runs after the passes, not on its side
thread; the shrink pass runs beside the global one and the zoom's windows side by side,
as the detector runs them, so those seconds overlap. Then the faces are fused again
without each one in turn, and for each it reports:

* its time (seconds per photo; `--repeat` for a second timing of the same passes);
* the faces, by band, that the full detector covers honestly and the detector without it
  does not (`only_it`), those it costs (`lost_with_it`), and the strays it adds;
* gating rules replayed on the same candidates: how often a gated pass runs and what
  the detector then covers and strays.

Honest covered and strays are bench/recall.py's (regions as the pipeline pads them, at the
default threshold). The turned faces are the ones the full upright detector earned; a
rule that changes the upright faces does not rerun the glances. Writes
bench/results/ablation.json; keeps every candidate in a pickle (`--cache`) so that rules
can be replayed without running the networks again (`--replay`).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recall  # noqa: E402  (one definition of honest covered, strays, bands)
from angles import faceblur_regions  # noqa: E402  (the pipeline's padded regions)

ROOT = Path(__file__).resolve().parents[1]
FACES_DEV = recall.FACES_DEV
RESULTS = ROOT / "bench" / "results" / "ablation.json"
CACHE = Path("/tmp/faceblur-ablation.pkl")
PASSES = ("global", "shrink", "zoom", "upside_down", "squeezed")
LEAVE_OUT = (*PASSES, "centerface", "yunet", "mtcnn", "turns")


# --------------------------------------------------------------------------- running


def timed(seconds: dict, name: str, step):
    started = time.perf_counter()
    found = step()
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
    return found


def run_photo(detector, rgb: np.ndarray) -> dict:
    """Every pass of `detector` (the production one, any angle) on one photo, timed."""
    from faceblur.detection.angles import face_back, turn_image
    from faceblur.detection.fusion import Passes

    fused = detector.upright
    base, scale = fused.shrunk(rgb)
    passes = Passes(base, scale)
    fused.centerface_passes(base, passes, gated=False)
    seconds = passes.seconds
    near = fused.with_settings(zoom_near_candidates=True)
    zoom_near = timed(
        seconds, "zoom_near", lambda: near.zoom_candidates(base, passes.centerface["global"])
    )
    passes.yunet = timed(seconds, "yunet", lambda: fused.yunet_candidates(base))
    passes.mtcnn = timed(seconds, "mtcnn", lambda: fused.mtcnn_candidates(base))
    upright_faces = fused.combine(rgb, passes)
    turns = timed(seconds, "glances", lambda: detector.turns_worth_a_pass(rgb, upright_faces))
    height, width = rgb.shape[:2]
    turned = []
    for turn in turns:
        found = timed(seconds, "turned", lambda t=turn: fused.detect(turn_image(rgb, t)))
        turned += [face_back(face, turn, width, height) for face in found]
    passes.base = None  # the pickle keeps candidates, not pixels
    return {"passes": passes, "zoom_near": zoom_near, "turns": turns, "turned": turned}


def run_all(entries: list, repeat: int) -> dict:
    from faceblur.detection import build_detector

    started = time.perf_counter()
    detector = build_detector()
    load = time.perf_counter() - started
    runs = {}
    for index, entry in enumerate(entries):
        rgb = recall.read_rgb(FACES_DEV / entry["image"])
        runs[entry["image"]] = run_photo(detector, rgb)
        for _ in range(repeat - 1):  # a second timing of the same photo
            again = run_photo(detector, rgb)["passes"].seconds
            for name, value in again.items():
                runs[entry["image"]]["passes"].seconds[name] += value
        print(f"{index + 1}/{len(entries)}", file=sys.stderr, end="\r", flush=True)
    return {"runs": runs, "load_seconds": load, "repeat": repeat}


# --------------------------------------------------------------------------- replaying


def faces_of(detector, rgb, run: dict, leave_out=(), swap=None) -> list:
    """The any-angle faces the cached passes make without `leave_out`; `swap` replaces
    some CenterFace passes' candidates (a gated or different pass)."""
    from faceblur.detection.angles import merge_faces
    from faceblur.detection.fusion import Passes

    cached = run["passes"]
    base, _ = detector.upright.shrunk(rgb)
    centerface = {**cached.centerface, **(swap or {})}
    centerface = {name: found for name, found in centerface.items() if found is not None}
    passes = Passes(base, cached.scale, centerface, cached.yunet, cached.mtcnn)
    faces = detector.upright.combine(rgb, passes, leave_out)
    if "turns" not in leave_out:
        faces = faces + run["turned"]
    s = detector.settings
    return merge_faces(faces, s.merge_iou, s.clearer, s.tight_sure, s.fuse_cover)


def covered_and_strays(entry: dict, faces: list, threshold: float) -> tuple[np.ndarray, int]:
    from faceblur.options import DEFAULT_SHAPE

    width, height = entry["width"], entry["height"]
    found = [{"box": list(f.box), "score": f.score, "turn": f.turn} for f in faces]
    padded = faceblur_regions(found, width, height, threshold)
    regions = recall.faceblur_region_list(padded, DEFAULT_SHAPE, width, height)
    kept = [d["box"] for d in found if d["score"] >= threshold]
    flags = recall.honest_covered_flags(entry["faces"], regions)
    return flags, recall.stray_count(entry["faces"], entry["ignore"], kept)


def tally(entries: list, flags: dict, strays: dict) -> dict:
    counts = {name: [0, 0] for name, _, _ in recall.BANDS}
    for entry in entries:
        for (_, _, _, h), flag in zip(entry["faces"], flags[entry["image"]], strict=True):
            counts[recall.band_of(h)][0] += int(flag)
            counts[recall.band_of(h)][1] += 1
    return {
        "honest_covered": {b: round(c / n, 4) for b, (c, n) in counts.items()},
        "unmatched_per_photo": round(sum(strays.values()) / len(entries), 3),
    }


def band_counts(entries: list, flags: dict) -> dict:
    counts = {name: 0 for name, _, _ in recall.BANDS}
    for entry in entries:
        for (_, _, _, h), flag in zip(entry["faces"], flags[entry["image"]], strict=True):
            counts[recall.band_of(h)] += int(flag)
    return counts


def evaluate(detector, entries, runs, threshold, **variant) -> tuple[dict, dict, dict]:
    flags, strays = {}, {}
    for entry in entries:
        rgb = recall.read_rgb(FACES_DEV / entry["image"])
        run = runs[entry["image"]]
        chosen = variant.get("per_photo", lambda run: {})(run)
        faces = faces_of(detector, rgb, run, **chosen)
        flags[entry["image"]], strays[entry["image"]] = covered_and_strays(entry, faces, threshold)
    return flags, strays, tally(entries, flags, strays)


def hinted(run: dict, low: float, high: float, zoomed: bool = True) -> bool:
    """The extra passes' rule (`extra_pass_hint`) on the cached global, shrink and zoom
    (the zoom only where the production rule runs it: `zoomed`)."""
    from faceblur.detection.fusion import extra_passes_wanted

    names = ("global", "shrink", "zoom") if zoomed else ("global", "shrink")
    first = [run["passes"].centerface.get(n) for n in names]
    return extra_passes_wanted((f.scores for f in first if f is not None), low, high)


def zoom_triggered(detector, run: dict) -> bool:
    from faceblur.detection.fusion import needs_zoom

    s = detector.upright.settings
    found = run["passes"].centerface["global"]
    return needs_zoom(found, s.zoom_trigger_score, s.zoom_trigger_height)


def mtcnn_hinted(detector, run: dict, low: float) -> bool:
    """MTCNN's rule (`mtcnn_hint`) on the cached global and shrink passes and YuNet."""
    return detector.upright.with_settings(mtcnn_hint=low).mtcnn_wanted(run["passes"])


def tile_hinted_zoom(detector, rgb, run: dict, low: float) -> tuple:
    """The cached zoom's candidates on the tiles the production rule (`zoom_tile_hint`)
    keeps: those holding a small global candidate scored at least `low`; and the share
    of tiles kept."""
    import math

    from faceblur.detection.fusion import holds_small
    from faceblur.geometry import tile_windows

    fused = detector.upright
    s = fused.settings
    base, _ = fused.shrunk(rgb)
    glimpse = fused._centerface(base, low)  # the global pass at the hint's bar
    height, width = base.shape[:2]
    tiles = tile_windows(
        width, height, s.zoom_tile_pixels / s.zoom**2, math.ceil(2 * s.zoom_max_height)
    )
    kept = [t for t in tiles if holds_small(t, glimpse, s.zoom_max_height)]
    zoom = run["passes"].centerface["zoom"]
    cx = (zoom.boxes[:, 0] + zoom.boxes[:, 2]) / 2
    cy = (zoom.boxes[:, 1] + zoom.boxes[:, 3]) / 2
    inside = np.zeros(len(zoom), dtype=bool)
    for x, y, w, h in kept:
        inside |= (cx >= x) & (cx < x + w) & (cy >= y) & (cy < y + h)
    return zoom.select(inside), len(kept) / len(tiles)


def replay(entries: list, cache: dict) -> dict:
    from faceblur.detection import build_detector
    from faceblur.options import DEFAULT_THRESHOLD

    detector = build_detector(mtcnn=False, yunet=True)  # combine() needs no MTCNN model
    runs = cache["runs"]
    for name, run in runs.items():
        run["name"] = name
    seconds_total: dict[str, float] = {}
    for run in runs.values():
        for name, value in run["passes"].seconds.items():
            seconds_total[name] = seconds_total.get(name, 0.0) + value / cache["repeat"]
    per_photo = {k: round(v / len(runs), 4) for k, v in seconds_total.items()}
    zoomed = sum(zoom_triggered(detector, r) for r in runs.values())
    # The zoom's time is its cost where the production rule triggers it.
    full_flags, full_strays, full = evaluate(
        detector,
        entries,
        runs,
        DEFAULT_THRESHOLD,
        per_photo=lambda run: {"swap": {"zoom": None}} if not zoom_triggered(detector, run) else {},
    )
    rows = {}
    for name in LEAVE_OUT:
        flags, strays, scores = evaluate(
            detector,
            entries,
            runs,
            DEFAULT_THRESHOLD,
            per_photo=lambda run, name=name: {
                "leave_out": (name,),
                "swap": {} if zoom_triggered(detector, run) else {"zoom": None},
            },
        )
        only = {k: full_flags[k] & ~flags[k] for k in flags}
        cost = {k: flags[k] & ~full_flags[k] for k in flags}
        rows[name] = {
            "only_it": band_counts(entries, only),
            "lost_with_it": band_counts(entries, cost),
            "strays_it_adds_per_photo": round(
                (sum(full_strays.values()) - sum(strays.values())) / len(entries), 3
            ),
            "without_it": scores,
        }
    names = {
        "centerface": ("global", "shrink", "zoom", "upside_down", "squeezed"),
        "turns": ("glances", "turned"),
    }
    for name, row in rows.items():
        parts = names.get(name, (name,))
        row["seconds_per_photo"] = round(sum(per_photo.get(p, 0.0) for p in parts), 4)
    rows["zoom"]["seconds_per_photo"] = round(
        per_photo.get("zoom", 0.0) * zoomed / len(runs), 4
    )  # cached ungated: charge it on the photos the rule zooms
    variants = {}

    def variant(label, per_photo):
        _, _, scores = evaluate(detector, entries, runs, DEFAULT_THRESHOLD, per_photo=per_photo)
        variants[label] = scores

    def base_swap(run):
        return {} if zoom_triggered(detector, run) else {"zoom": None}

    variant(
        "zoom near candidates only",
        lambda run: {"swap": {"zoom": run["zoom_near"] if zoom_triggered(detector, run) else None}},
    )
    for low in (0.1, 0.2, 0.3):
        zooms, shares = {}, []
        for name, run in runs.items():
            if zoom_triggered(detector, run):
                rgb = recall.read_rgb(FACES_DEV / name)
                zooms[name], share = tile_hinted_zoom(detector, rgb, run, low)
                shares.append(share)
        label = f"zoom only tiles with a small candidate >= {low}"
        variant(label, lambda run, zooms=zooms: {"swap": {"zoom": zooms.get(run["name"])}})
        variants[label]["tiles_zoomed"] = float(np.mean(shares)) if shares else None
    for low in (0.2, 0.3, 0.4):
        fires = sum(hinted(r, low, 0.5, zoom_triggered(detector, r)) for r in runs.values())

        def gated(run, low=low):
            swap = base_swap(run)
            if not hinted(run, low, 0.5, zoom_triggered(detector, run)):
                swap.update({"upside_down": None, "squeezed": None})
            return {"swap": swap}

        variant(f"extra passes when a candidate in [{low}, 0.5)", gated)
        variants[f"extra passes when a candidate in [{low}, 0.5)"]["runs_on"] = fires / len(runs)
    for low in (0.1, 0.2, 0.3):
        fires = sum(mtcnn_hinted(detector, r, low) for r in runs.values())

        def mtcnn_gated(run, low=low):
            leave = () if mtcnn_hinted(detector, run, low) else ("mtcnn",)
            return {"swap": base_swap(run), "leave_out": leave}

        label = f"mtcnn when global+shrink+yunet leave a candidate in [{low}, 0.5)"
        variant(label, mtcnn_gated)
        variants[label]["runs_on"] = fires / len(runs)
    # The three gates as build_detector() sets them, together.
    s = detector.upright.settings
    chosen_zooms = {}
    for name, run in runs.items():
        if zoom_triggered(detector, run):
            chosen_zooms[name] = run["passes"].centerface["zoom"]
            if s.zoom_tile_hint is not None:
                rgb = recall.read_rgb(FACES_DEV / name)
                chosen_zooms[name], _ = tile_hinted_zoom(detector, rgb, run, s.zoom_tile_hint)

    def chosen(run):
        swap = {"zoom": chosen_zooms.get(run["name"])}
        if not hinted(run, s.extra_pass_hint, s.extra_pass_hint_high, run["name"] in chosen_zooms):
            swap.update({"upside_down": None, "squeezed": None})
        leave = () if mtcnn_hinted(detector, run, s.mtcnn_hint) else ("mtcnn",)
        return {"swap": swap, "leave_out": leave}

    variant("chosen: the three gates of build_detector()", chosen)
    return {
        "photos": len(entries),
        "seconds_per_photo": per_photo,
        "zoom_runs_on": zoomed / len(runs),
        "load_seconds": cache["load_seconds"],
        "full": full,
        "passes": rows,
        "variants": variants,
    }


def print_report(report: dict) -> None:
    print(f"\n{report['photos']} photos; full detector: {report['full']}")
    print(f"{'pass':12} {'s/photo':>8} {'only it <20/20-50/50+':>22} {'lost':>12} {'strays':>7}")
    for name, row in report["passes"].items():
        only = "/".join(str(v) for v in row["only_it"].values())
        lost = "/".join(str(v) for v in row["lost_with_it"].values())
        print(
            f"{name:12} {row['seconds_per_photo']:8.3f} {only:>22} {lost:>12} "
            f"{row['strays_it_adds_per_photo']:7.3f}"
        )
    for label, scores in report["variants"].items():
        print(f"{label}: {scores}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=1, help="use every Nth photo")
    parser.add_argument("--repeat", type=int, default=1, help="time every photo this often")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--replay", action="store_true", help="score the cached run again")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    entries = json.loads((FACES_DEV / "annotations.json").read_text())[:: max(1, args.every)]
    load_before = [round(v, 2) for v in os.getloadavg()]
    if args.replay:
        cache = pickle.loads(args.cache.read_bytes())
    else:
        cache = run_all(entries, args.repeat)
        args.cache.write_bytes(pickle.dumps(cache))
    entries = [e for e in entries if e["image"] in cache["runs"]]
    report = replay(entries, cache)
    report["every"] = args.every
    report["load_before"] = load_before
    report["load_after"] = [round(v, 2) for v in os.getloadavg()]
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
