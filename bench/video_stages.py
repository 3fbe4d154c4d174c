"""Where a video frame's time goes: CPU time per frame of each stage of `anonymise_video`.

Run `.venv/bin/python bench/video_stages.py [--quick]`. On bench/video.py's clips (960x540,
25 fps, made from dev photos), each stage runs alone over every frame of a clip, one
after the other, and is timed in CPU time of the whole process (`time.process_time`:
the detector's and x264's own threads count too), which a loaded machine changes far
less than wall time. The stages, in the pipeline's order:

* decode: demuxing and decoding the H.264 stream (PyAV);
* to RGB: yuv420p to RGB and the orientation (`faceblur.media.container`);
* motion: the cut signature and the optical flow between frames (`media.track`);
* detect: the detector on the frames the pipeline gives it (every n-th, cuts, the last),
  divided by all frames: what it costs per frame amortised;
* track: linking the detections (`Tracker`);
* hide: the default method (`haze`), and `blur` beside it, on the tracked regions;
* to YUV: back to yuv420p for the encoder;
* encode + mux: x264 at the pipeline's settings, and writing the MP4.

Then the whole `anonymise_video` run on the same clip, CPU time and wall time per
frame, so the stages can be checked against the real thing (its threads overlap the
stages; they do not remove any). Prints a table; writes bench/results/video_stages.json.
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

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.video import CLIPS, FRAMES, build_clips  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "video_stages.json"
STAGES = (
    "decode",
    "to_rgb",
    "motion",
    "detect",
    "track",
    "hide_haze",
    "hide_blur",
    "to_yuv",
    "encode_mux",
)


def profile_clip(path: Path, folder: Path, detector, every: int) -> tuple[dict, int]:
    """CPU seconds of each stage over the clip, and its frame count."""
    from faceblur.anonymise import SteadyTones, anonymise
    from faceblur.media.container import Orientation, frame_of, open_input, probe, rgb_of
    from faceblur.media.follow import VideoSettings, _tracking, hidden_regions
    from faceblur.media.track import (
        Tracker,
        motion_between,
        motion_grey,
        scene_distance,
        scene_signature,
    )
    from faceblur.options import Options

    seconds = dict.fromkeys(STAGES, 0.0)
    settings = VideoSettings(detect_every=every)
    options = Options()
    info = probe(path)
    orientation = Orientation.from_matrix(info.display_matrix)

    clock = time.process_time()
    container = open_input(path)
    stored = [frame for frame in container.decode(video=0)]
    container.close()
    seconds["decode"] = time.process_time() - clock

    clock = time.process_time()
    shown = [orientation.to_display(rgb_of(frame)) for frame in stored]
    seconds["to_rgb"] = time.process_time() - clock

    clock = time.process_time()
    cuts, motions, previous_signature, previous_grey = [], [], None, None
    for frame in shown:
        signature, grey = scene_signature(frame), motion_grey(frame)
        cut = previous_signature is not None and (
            scene_distance(previous_signature, signature) > settings.track.cut_threshold
        )
        motions.append(
            motion_between(previous_grey, grey, frame.shape[1])
            if previous_grey is not None and not cut
            else None
        )
        cuts.append(cut)
        previous_signature, previous_grey = signature, grey
    seconds["motion"] = time.process_time() - clock

    clock = time.process_time()
    last = len(shown) - 1
    looks = [
        detector.detect(frame) if index % every == 0 or cuts[index] or index == last else None
        for index, frame in enumerate(shown)
    ]
    seconds["detect"] = time.process_time() - clock

    clock = time.process_time()
    tracker = Tracker(_tracking(settings, options.threshold))
    tracked = []
    for faces, cut, motion in zip(looks, cuts, motions, strict=True):
        tracked.extend(tracker.push(faces, cut, motion))
    tracked.extend(tracker.finish())
    seconds["track"] = time.process_time() - clock

    height, width = shown[0].shape[:2]
    regions = [hidden_regions(t, options, width, height) for t in tracked]
    hidden = []
    for method in ("haze", "blur"):
        steady = SteadyTones()
        clock = time.process_time()
        for frame, (boxes, ids) in zip(shown, regions, strict=True):
            result = anonymise(frame, boxes, method, grain=False, tracks=ids, steady=steady)
            if method == "haze":
                hidden.append(result)
        seconds[f"hide_{method}"] = time.process_time() - clock

    clock = time.process_time()
    frames = [frame_of(orientation.to_stored(picture)) for picture in hidden]
    seconds["to_yuv"] = time.process_time() - clock

    clock = time.process_time()
    write_encoded(frames, stored, folder / f"encoded-{path.name}", info.rate, settings.crf)
    seconds["encode_mux"] = time.process_time() - clock
    return seconds, len(shown)


def write_encoded(frames: list, stored: list, target: Path, rate, crf: int) -> None:
    """The frames through the pipeline's encoder into an MP4, as `anonymise_video` does."""
    from faceblur.media.x264 import x264_options

    with av.open(str(target), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames[0].width, frames[0].height
        stream.pix_fmt = "yuv420p"
        stream.time_base = stored[0].time_base
        stream.options = dict(x264_options(crf))  # as anonymise_video
        for frame, source in zip(frames, stored, strict=True):
            frame.pts, frame.time_base = source.pts, source.time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def whole_run(path: Path, folder: Path, detector, every: int) -> tuple[float, float]:
    """CPU and wall seconds of one `anonymise_video` run on the clip."""
    from faceblur.media.follow import VideoSettings
    from faceblur.media.video import anonymise_video

    cpu, wall = time.process_time(), time.perf_counter()
    anonymise_video(path, folder / f"whole-{path.name}", detector, None, VideoSettings(every))
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short clips")
    parser.add_argument("--every", type=int, default=12, help="detector on every n-th frame")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from faceblur.detection import build_detector
    from faceblur.media.follow import for_video

    detector = build_detector()
    video_detector = for_video(detector)
    count, length = (2, 20) if args.quick else (CLIPS, FRAMES)
    totals = dict.fromkeys(STAGES, 0.0)
    frames = 0
    whole_cpu = whole_wall = 0.0
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        clips = [clip for clip in build_clips(folder, count, length) if not clip["long"]]
        # A first run warms the networks' sessions and x264 up, outside the figures.
        profile_clip(clips[0]["path"], folder, video_detector, args.every)
        for clip in clips:
            seconds, n = profile_clip(clip["path"], folder, video_detector, args.every)
            cpu, wall = whole_run(clip["path"], folder, detector, args.every)
            for stage in STAGES:
                totals[stage] += seconds[stage]
            frames += n
            whole_cpu += cpu
            whole_wall += wall
            print(f"  {clip['path'].name}: {n} frames, whole run {cpu / n * 1000:.0f} ms CPU")
    per_frame = {stage: 1000 * totals[stage] / frames for stage in STAGES}
    summed = sum(v for stage, v in per_frame.items() if stage != "hide_blur")
    print(f"{'stage':12} {'ms CPU / frame':>14}")
    for stage in STAGES:
        print(f"{stage:12} {per_frame[stage]:>14.1f}")
    print(f"{'sum (haze)':12} {summed:>14.1f}")
    whole = {"cpu_ms": 1000 * whole_cpu / frames, "wall_ms": 1000 * whole_wall / frames}
    print(f"whole anonymise_video: {whole['cpu_ms']:.1f} ms CPU, {whole['wall_ms']:.1f} ms wall")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "frames": frames,
                "detect_every": args.every,
                "ms_cpu_per_frame": per_frame,
                "sum_haze_ms": summed,
                "whole_run_per_frame": whole,
                "load_average": os.getloadavg(),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "quick": args.quick,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
