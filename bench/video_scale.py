"""Video at scale (issue 25): one clip split into segments, `--jobs 2` against `--jobs 1`,
exposure next to the borders, and a projection for more replicas.

Run alone: `.venv/bin/python bench/video_scale.py [--seconds 60] [--size 1920x1080]`.
A 1920x1080 clip (25 fps, AAC tone) pans over a dev photo (bench/clips.py). Each run is
the command line (`faceblur blur --jobs N --segment-seconds S`) in its own process, so
the model load is counted the way a user meets it, then deface 1.5.0 with its defaults
on the same clip in the same run. Measured:

* seconds and frames per second of `--jobs 1` and `--jobs 2`, each the command line in
  a process of its own (its start, imports and model loads included: once for `--jobs
  1`, in each worker for `--jobs 2`) (the target: `--jobs 2` at most 0.85x the time of
  `--jobs 1` on this 2-core machine), and the CPU seconds each spent (user + system,
  workers included) with the cores it kept busy on average (`utilisation`);
* exposed face-frames (bench/video.py's measure) over the clip, and separately within 3
  frames of each segment border;
* frame-exactness of the join: frame count, strictly increasing timestamps, size, rate,
  audio packets;
* the plan's and the join's own seconds, and each segment's seconds, timed step by
  step in this process; from them a projection for 8 and 32 replicas: segments handed
  in order to the first free worker (list scheduling), plus the plan and the join.

Writes bench/results/video_scale.json after each step (a cut run keeps what it measured).

Two more measures, each run alone and added to the same file:

* `--memory 10 30`: peak resident memory (the kernel's count, wait4) of `--jobs 1` and
  of one worker hiding the middle segment, on clips of those lengths: flat when within
  10 % from the shortest to the longest;
* `--cpu-only ROUNDS --seconds 20`: `--jobs 1` and `--jobs 2` in turn, CPU seconds only
  (the measure that survives a shared machine);
* `--stack --seconds 20`: one job on the local stack (s3rver, the function in the
  template runner, tests/stack_fixtures.py) with one function process, then two behind
  one async route: seconds from the clip put into the inbox to the job done.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions" / "faceblur"))

from bench.clips import EXPOSED, central_detail_kept, make_clip  # noqa: E402
from bench.video import FACES_DEV, camera_for, chosen_photos, frames_of, run_child  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "video_scale.json"
RATE = 25
BORDER = 3  # frames either side of a border counted apart
STACK_DEADLINE_SECONDS = 3600  # bound of the wait for one job on the local stack
STACK_READY_SECONDS = 900  # a model load on a shared, loaded machine
FLAT = 0.10  # peak memory within this share on clips of different lengths: flat


def child_env() -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "functions" / "faceblur"), str(ROOT)])
    return env


def run_cli(clip: Path, out: Path, jobs: int, seconds: float) -> dict:
    """`faceblur blur --jobs N` in a process of its own: its seconds, and the CPU seconds
    (user + system) it and its worker processes spent (the kernel's account, wait4):
    on a shared machine the wall clock says what else ran, the CPU seconds less so."""
    command = [sys.executable, "-m", "faceblur.cli.main", "blur", str(clip), "-o", str(out)]
    command += ["--jobs", str(jobs), "--segment-seconds", str(seconds)]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=errors, env=child_env()
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise RuntimeError(f"--jobs {jobs} failed: {errors.read()[-2000:].decode()}")
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "user_seconds": usage.ru_utime,
        "system_seconds": usage.ru_stime,
        "utilisation": cpu / wall,  # cores kept busy on average
    }


def measured(command: list[str], log: Path) -> dict:
    """`command` in a process of its own: its seconds and peak resident memory (MB), from
    the kernel's account of that process (wait4), children it waited for included."""
    started = time.perf_counter()
    with log.open("wb") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=errors, env=child_env()
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[3:]} failed: {log.read_text()[-2000:]}")
    # Linux gives ru_maxrss in kilobytes.
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024}


def segment_worker(clip: Path, index: int, seconds: float) -> None:
    """One segment of `clip` as one worker (a replica's call, a `--jobs` process) hides
    it: the models loaded, the clip planned, segment `index` hidden."""
    from faceblur.detection import build_detector
    from faceblur.media.segments import encode_segment, new_seed, plan_segments, segment_path

    detector = build_detector()
    segment = plan_segments(clip, seconds).segments[index]
    encode_segment(clip, segment_path(clip.parent, segment), segment, detector, seed=new_seed())


def memory(folder: Path, lengths: list[float], size: tuple[int, int], seconds: float) -> dict:
    """Peak memory of `--jobs 1` (the whole clip in one process) and of one worker (the
    middle segment) on clips of each length, two measures at a time (the memory does not
    depend on what else runs; the seconds do, and are given for what they are)."""
    from concurrent.futures import ThreadPoolExecutor

    entry = chosen_photos(1)[0]
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / entry["image"])), cv2.COLOR_BGR2RGB)
    runs = []
    for length in lengths:
        clip = folder / f"clip-{length:g}s.mp4"
        make_clip(photo, entry["faces"], clip, size, int(length * RATE), RATE, camera_for(0))
        out = folder / f"out-{length:g}s"
        cli = [sys.executable, "-m", "faceblur.cli.main", "blur", str(clip), "-o", str(out)]
        cli += ["--jobs", "1", "--segment-seconds", str(seconds)]
        runs.append((length, "jobs_1", cli))
        count = int(length * RATE) // int(seconds * RATE)  # the plan's segments, about
        worker = [sys.executable, __file__, "--segment-worker", str(clip), str(count // 2)]
        runs.append((length, "one_worker", [*worker, str(seconds)]))
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda run: measured(run[2], folder / f"{run[0]}-{run[1]}.log"), runs))
    figures: dict = {"clip_seconds": lengths, "segment_seconds": seconds}
    for (length, what, _), facts in zip(runs, done, strict=True):
        figures.setdefault(what, {})[f"{length:g}s"] = facts
    for what in ("jobs_1", "one_worker"):
        peaks = [facts["peak_rss_mb"] for facts in figures[what].values()]
        figures[what]["growth"] = max(peaks) / min(peaks) - 1
    flat = all(figures[what]["growth"] < FLAT for what in ("jobs_1", "one_worker"))
    figures["verdict"] = (
        f"flat: {max(lengths) / min(lengths):g} times the clip's length, peak memory "
        f"within {FLAT:.0%}"
        if flat
        else f"NOT flat: peak memory grows by more than {FLAT:.0%} with the clip's length"
    )
    return figures


def local_stack(folder: Path, clip: Path, seconds: float, counts=(1, 2)) -> dict:
    """One video job on the local stack (functions/local: s3rver, the function in the
    template runner) with one function process, then with two behind one async route:
    seconds from the clip put into the inbox to the job done, and the calls each took."""
    import requests

    from faceblur.store.keys import inbox_key, new_job_id

    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "functions" / "local"))
    import stack_fixtures
    from stack_fixtures import workers_behind_one_route

    # A model load on a shared, loaded machine can take longer than the tests allow.
    stack_fixtures.FUNCTION_READY_TIMEOUT_SECONDS = STACK_READY_SECONDS

    # The setting is whole seconds (faceblur.config).
    env = {"FACEBLUR_VIDEO_SEGMENT_SECONDS": str(round(seconds)), "TF_CPP_MIN_LOG_LEVEL": "3"}
    figures: dict = {"segment_seconds": seconds}
    for count in counts:
        place = folder / f"stack-{count}"
        place.mkdir()
        with workers_behind_one_route(place, count, env) as (s3, workers):
            url, job = f"{workers[0].url}/function/faceblur", new_job_id()
            started = time.perf_counter()
            s3.store().fput("inbox", inbox_key("", job, clip.name), clip, "video/mp4")
            deadline, status = time.monotonic() + STACK_DEADLINE_SECONDS, {"state": "queued"}
            while time.monotonic() < deadline and status["state"] not in ("done", "failed"):
                time.sleep(1)
                response = requests.get(url, params={"job": job}, timeout=30)
                status = response.json() if response.status_code == 200 else status
            seconds_taken = time.perf_counter() - started
            if status["state"] != "done":
                raise RuntimeError(f"the job on {count} worker(s) ended {status}")
            figures[f"workers_{count}"] = {
                "seconds": seconds_taken,
                "fps": status["frames_total"] / seconds_taken,
                "segments": status["segments_total"],
                "calls_per_worker": [w.log().count("async call") for w in workers],
            }
    if len(counts) == 2:
        one, two = (figures[f"workers_{n}"]["seconds"] for n in counts)
        figures["ratio_two_to_one"] = two / one
    return figures


def exposure(clip: Path, truth: list, out: Path, size: tuple[int, int], borders: list[int]):
    counted = exposed = near = near_exposed = 0
    pairs = zip(frames_of(clip, size), frames_of(out, size), strict=False)
    for index, (boxes, (before, after)) in enumerate(zip(truth, pairs, strict=False)):
        close = any(abs(index - border) <= BORDER for border in borders)
        for box in boxes:
            kept = central_detail_kept(before, after, box)
            if kept is None:
                continue
            counted += 1
            near += close
            if kept > EXPOSED:
                exposed += 1
                near_exposed += close
    return {
        "face_frames": counted,
        "exposed": exposed,
        "face_frames_near_borders": near,
        "exposed_near_borders": near_exposed,
    }


def exactness(source: Path, result: Path) -> dict:
    def facts(path: Path) -> dict:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            stamps = [frame.pts for frame in container.decode(video=0)]
            size = [video.width, video.height]
            rate = float(video.average_rate or 0)
        with av.open(str(path)) as container:
            audio = [bytes(p) for p in container.demux(audio=0) if p.size]
        return {"stamps": stamps, "size": size, "rate": rate, "audio": audio}

    before, after = facts(source), facts(result)
    increasing = all(b > a for a, b in zip(after["stamps"], after["stamps"][1:], strict=False))
    return {
        "frames": [len(before["stamps"]), len(after["stamps"])],
        "timestamps_equal": before["stamps"] == after["stamps"],
        "timestamps_strictly_increasing": increasing,
        "size_kept": before["size"] == after["size"],
        "rate_kept": before["rate"] == after["rate"],
        "audio_packets_kept": bool(before["audio"]) and before["audio"] == after["audio"],
    }


def step_costs(clip: Path, folder: Path, seconds: float) -> dict:
    """`--jobs 1`: what the command line does in one process (model load, plan, each
    segment, join), each step timed apart; the result at folder/clip.mp4."""
    from faceblur.detection import build_detector
    from faceblur.media.segments import encode_segment, join_segments, plan_segments, segment_path

    started = time.perf_counter()
    detector = build_detector()
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    plan = plan_segments(clip, seconds)
    plan_seconds = time.perf_counter() - started
    parts, segment_seconds = [], []
    for segment in plan.segments:
        part = segment_path(folder, segment)
        started = time.perf_counter()
        encode_segment(clip, part, segment, detector)
        segment_seconds.append(time.perf_counter() - started)
        parts.append(part)
    started = time.perf_counter()
    join_segments(clip, plan.segments, parts, folder / "clip.mp4", plan.frames)
    join_seconds = time.perf_counter() - started
    return {
        "model_load_seconds": load_seconds,
        "plan_seconds": plan_seconds,
        "segment_seconds": segment_seconds,
        "join_seconds": join_seconds,
        "borders": [segment.first for segment in plan.segments[1:]],
    }


def cpu_only(folder: Path, seconds: float, size: tuple[int, int], args) -> dict:
    """`--jobs 1` and `--jobs 2` in turn, `args.cpu_only` times each: on a quiet machine
    the wall clock of `--jobs 2` is about its CPU seconds over the cores, that of
    `--jobs 1` its CPU seconds over its utilisation (cores it keeps busy)."""
    entry = chosen_photos(1)[0]
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / entry["image"])), cv2.COLOR_BGR2RGB)
    clip = folder / "clip.mp4"
    frames = int(seconds * RATE)
    make_clip(photo, entry["faces"], clip, size, frames, RATE, camera_for(0))
    runs: dict[str, list] = {"jobs_1": [], "jobs_2": []}
    for round_ in range(args.cpu_only):
        for jobs in (1, 2):
            timing = run_cli(clip, folder / f"out-{round_}-{jobs}", jobs, args.segment_seconds)
            runs[f"jobs_{jobs}"].append({**timing, "load_average": os.getloadavg()[0]})
    cpu = {name: min(run["cpu_seconds"] for run in done) for name, done in runs.items()}
    return {
        "clip": {"size": list(size), "rate": RATE, "frames": frames},
        "segment_seconds": args.segment_seconds,
        "runs": runs,
        "least_cpu_seconds": cpu,
        "cpu_ratio_jobs2_to_jobs1": cpu["jobs_2"] / cpu["jobs_1"],
    }


def projection(costs: dict, workers: int) -> float:
    """Plan + segments handed in order to the first free worker + join."""
    free = [0.0] * workers
    for seconds in costs["segment_seconds"]:
        heapq.heappush(free, heapq.heappop(free) + seconds)
    return costs["plan_seconds"] + max(free) + costs["join_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the clip's length")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--no-deface", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--memory",
        type=float,
        nargs="+",
        metavar="SECONDS",
        help="only the memory measure, on clips of these lengths, added to --output",
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="only the local stack with one function process, then two, added to --output",
    )
    parser.add_argument(
        "--cpu-only",
        type=int,
        metavar="ROUNDS",
        help="only --jobs 1 and --jobs 2 through the command line, ROUNDS times each in turn: "
        "their CPU seconds (user + system, workers included), the measure on a shared "
        "machine, added to --output as cpu_only",
    )
    parser.add_argument("--segment-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.segment_worker:
        clip, index, seconds = args.segment_worker
        segment_worker(Path(clip), int(index), float(seconds))
        return
    if args.memory:
        with tempfile.TemporaryDirectory(prefix="faceblur-memory-") as temporary:
            figures = memory(Path(temporary), args.memory, size, args.segment_seconds)
        kept = json.loads(args.output.read_text()) if args.output.exists() else {}
        kept["memory"] = figures
        args.output.write_text(json.dumps(kept, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
        return
    if args.stack:
        with tempfile.TemporaryDirectory(prefix="faceblur-stack-") as temporary:
            folder = Path(temporary)
            entry = chosen_photos(1)[0]
            photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / entry["image"])), cv2.COLOR_BGR2RGB)
            clip = folder / "clip.mp4"
            frames = int(args.seconds * RATE)
            make_clip(photo, entry["faces"], clip, size, frames, RATE, camera_for(0))
            figures = local_stack(folder, clip, args.segment_seconds)
        figures["clip"] = {"size": list(size), "rate": RATE, "frames": frames}
        kept = json.loads(args.output.read_text()) if args.output.exists() else {}
        kept["local_stack"] = figures
        args.output.write_text(json.dumps(kept, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
        return
    if args.cpu_only:
        with tempfile.TemporaryDirectory(prefix="faceblur-cpu-") as temporary:
            figures = cpu_only(Path(temporary), args.seconds, size, args)
        kept = json.loads(args.output.read_text()) if args.output.exists() else {}
        kept["cpu_only"] = figures
        args.output.write_text(json.dumps(kept, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
        return
    frames = int(args.seconds * RATE)
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clip": {"size": list(size), "rate": RATE, "frames": frames},
        "segment_seconds": args.segment_seconds,
    }

    def save() -> None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="faceblur-scale-") as temporary:
        folder = Path(temporary)
        entry = chosen_photos(1)[0]
        photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / entry["image"])), cv2.COLOR_BGR2RGB)
        clip = folder / "clip.mp4"
        truth = make_clip(photo, entry["faces"], clip, size, frames, RATE, camera_for(0))
        result["clip"]["photo"] = entry["image"]
        (folder / "jobs1").mkdir()
        costs = step_costs(clip, folder / "jobs1", args.segment_seconds)
        result["steps_one_worker"] = costs
        result["projection_seconds"] = {str(n): projection(costs, n) for n in (1, 2, 8, 32)}
        save()
        for jobs in (1, 2):
            # Both through the command line in a process of its own: each pays its start
            # (imports, model loads: once for --jobs 1, in each worker for --jobs 2).
            out = folder / f"cli{jobs}"
            timing = run_cli(clip, out, jobs, args.segment_seconds)
            result[f"jobs_{jobs}"] = {
                **timing,
                "fps": frames / timing["seconds"],
                "exactness": exactness(clip, out / "clip.mp4"),
                "exposure": exposure(clip, truth, out / "clip.mp4", size, costs["borders"]),
            }
            save()
        one, two = result["jobs_1"], result["jobs_2"]
        result["ratio_jobs2_to_jobs1"] = two["seconds"] / one["seconds"]
        result["cpu_ratio_jobs2_to_jobs1"] = two["cpu_seconds"] / one["cpu_seconds"]
        save()
        if not args.no_deface:
            out = folder / "deface.mp4"
            timing = run_child("deface", clip, out)
            result["deface"] = {
                "seconds": timing["seconds"],
                "fps": frames / timing["seconds"],
                "exposure": exposure(clip, truth, out, size, costs["borders"]),
            }
            save()
    print(json.dumps({k: v for k, v in result.items() if k != "steps_one_worker"}, indent=2))


if __name__ == "__main__":
    main()
