"""`faceblur blur` on videos: a clip in segments over worker processes (the same bytes
for any number of them), or rendered whole with a reviewer's edits, sealed, or with
tracks shown under the audit log."""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from faceblur.cli import seal as cli_seal
from faceblur.detection import build_detector, replica_cores
from faceblur.detection.base import Detector
from faceblur.errors import FaceblurError
from faceblur.formats import SEALED_SUFFIX
from faceblur.media.follow import VideoSettings
from faceblur.media.segments import (
    Segment,
    encode_segment,
    join_segments,
    new_seed,
    plan_segments,
    segment_path,
)
from faceblur.media.video import anonymise_video
from faceblur.options import Options, VideoEdits
from faceblur.sealing.tracks import TrackSealer, file_sha256, seal_size


def show_video(source: Path, target: Path, detector, options: Options, args, edits, shows) -> int:
    """A video with tracks left visible: rendered under a hidden folder beside `target`,
    logged (one audit entry per track shown), then moved into place: the entries exist
    before the copy does."""
    staging = target.parent / f".{target.name}.showing"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staged = staging / target.name
        seal_to = cli_seal.load_public(args.seal_to) if args.seal_to is not None else None
        faces = review_video(source, staged, detector, options, args.crf, edits, seal_to)
        for entry in shows.record(source, staged, sorted(edits.show)):
            tqdm.write(
                f"faceblur: track {entry['track']} shown; audit entry {entry['seq']}",
                file=sys.stderr,
            )
        sealed = staged.with_name(staged.name + SEALED_SUFFIX)
        if sealed.exists():
            sealed.replace(target.with_name(target.name + SEALED_SUFFIX))
        staged.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return faces


def review_video(
    source: Path,
    target: Path,
    detector,
    options: Options,
    crf: int,
    edits: VideoEdits | None = None,
    seal_to=None,
) -> int:
    """A video rendered whole (never split: its tracks are the whole clip's, as `tracks`
    gives them) with a reviewer's edits, and with `seal_to` (a public key) TARGET.sealed
    holding each track's pixels (sealing.tracks); the number of face-frames hidden."""
    if detector is None:
        raise FaceblurError("--whole-image is for photos, not videos")
    target.parent.mkdir(parents=True, exist_ok=True)
    if seal_to is None:
        return _render_video(source, target, detector, options, crf, edits, None)
    sealed = target.with_name(target.name + SEALED_SUFFIX)
    partial = sealed.with_name(f".{sealed.name}.part")
    try:
        with partial.open("wb") as out:
            sealer = TrackSealer(out, seal_to, *seal_size(source))
            faces = _render_video(source, target, detector, options, crf, edits, sealer.add)
            sealer.finish(file_sha256(target))
        partial.replace(sealed)
    except BaseException:
        target.unlink(missing_ok=True)  # never a result without its seal
        raise
    finally:
        partial.unlink(missing_ok=True)
    return faces


def _render_video(
    source: Path,
    target: Path,
    detector,
    options: Options,
    crf: int,
    edits: VideoEdits | None,
    observe,
) -> int:
    with tqdm(desc=source.name, unit="frame", file=sys.stderr, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total or None
            bar.update(done - bar.n)

        result = anonymise_video(
            source,
            target,
            detector,
            options,
            VideoSettings(crf=crf),
            on_progress=progress,
            edits=edits,
            observe=observe,
        )
    return result.face_frames


def blur_video(
    source: Path, target: Path, detector, options: Options, args: argparse.Namespace
) -> int:
    """Anonymise one video with a progress bar; the number of face-frames hidden."""
    if args.whole_image:
        raise FaceblurError("--whole-image is for photos, not videos")
    settings = VideoSettings(crf=args.crf)
    return blur_in_segments(
        source, target, detector, options, settings, args.jobs, args.segment_seconds, new_seed()
    )


def blur_in_segments(
    source: Path,
    target: Path,
    detector: Detector | None,
    options: Options,
    settings: VideoSettings,
    jobs: int,
    segment_seconds: float,
    seed: int,
) -> int:
    """`source` planned into segments (`faceblur.media.segments`), each hidden by one of
    `jobs` processes (this one when 1, with `detector`, built here when None), then
    joined at `target`; the face-frames hidden. The plan and `seed` (one secret per run,
    for every segment) alone decide the bytes, so any number of processes writes the
    same file. Each of `jobs` worker processes gets its share of the cores as its thread
    budget (`build_detector(cores=...)`)."""
    plan = plan_segments(source, segment_seconds, settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    jobs = min(jobs, len(plan.segments))
    with (
        tempfile.TemporaryDirectory(prefix=".faceblur-segments-", dir=target.parent) as folder,
        tqdm(desc=source.name, unit="frame", file=sys.stderr, leave=False) as bar,
    ):
        bar.total = plan.frames or None
        parts = [segment_path(Path(folder), segment) for segment in plan.segments]
        face_frames = 0
        if jobs <= 1:
            detector = detector or build_detector()
            for segment, part in zip(plan.segments, parts, strict=True):
                start = bar.n

                def progress(done: int, total: int, start: int = start) -> None:
                    bar.update(start + done - bar.n)

                result = encode_segment(
                    source, part, segment, detector, options, settings, progress, seed
                )
                face_frames += result.face_frames
        else:
            # Spawned, not forked: each worker loads the models itself, once.
            with ProcessPoolExecutor(
                jobs,
                multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(max(1, replica_cores() // jobs),),
            ) as pool:
                running = {
                    pool.submit(_hide_segment, source, part, segment, options, settings, seed): (
                        segment
                    )
                    for segment, part in zip(plan.segments, parts, strict=True)
                }
                for future in as_completed(running):
                    face_frames += future.result()
                    bar.update(running[future].frames)
        join_segments(source, plan.segments, parts, target, plan.frames)
    return face_frames


_worker_detector: Detector | None = None


def _start_worker(cores: int) -> None:
    global _worker_detector
    _worker_detector = build_detector(cores=cores)


def _hide_segment(
    source: Path,
    part: Path,
    segment: Segment,
    options: Options,
    settings: VideoSettings,
    seed: int,
) -> int:
    """One segment in a worker process; its face-frames."""
    assert _worker_detector is not None
    result = encode_segment(source, part, segment, _worker_detector, options, settings, None, seed)
    return result.face_frames
