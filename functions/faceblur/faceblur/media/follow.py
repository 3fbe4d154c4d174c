"""Follow faces through a clip's frames: the detector on every n-th frame (on a thread of
its own), `faceblur.media.track` linking detections across frames and carrying faces in
between, and the regions hidden around them. Frames stream: at most `Tracker.lag` of
them are held at a time, whatever the length of the clip.

`faceblur.media.video` hides and encodes what this finds; `detect_video` and
`video_tracks` (`faceblur detect`, `faceblur tracks`) only look.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import av
import numpy as np

from faceblur.detection.angles import AnyAngleDetector, upright
from faceblur.detection.base import Detector, Face
from faceblur.detection.fusion import FusedDetector
from faceblur.errors import CorruptVideoError
from faceblur.geometry import Box, padded_region
from faceblur.media.container import (
    Orientation,
    check_complete,
    open_input,
    probe,
    read_frames,
)
from faceblur.media.review import TrackLog
from faceblur.media.track import (
    Motion,
    TrackedFrame,
    Tracker,
    TrackSettings,
    motion_between,
    motion_grey,
    scene_distance,
    scene_signature,
)
from faceblur.media.x264 import DEFAULT_CRF
from faceblur.options import Options


@dataclass(frozen=True)
class VideoSettings:
    """How faces are looked for in a video; defaults chosen by bench/video.py."""

    # The detector runs on every n-th frame (and at cuts and on the last frame); optical
    # flow carries faces in between. bench/video.py chooses n (bench/results/video.json):
    # of those meeting the leak targets, the fewest exposed face-frames, then the largest.
    detect_every: int = 12
    crf: int = DEFAULT_CRF
    track: TrackSettings = field(default_factory=TrackSettings)


def tracked_frames(
    frames: Iterator[np.ndarray],
    detector: Detector,
    settings: VideoSettings,
    threshold: float,
    first_index: int = 0,
) -> Iterator[tuple[np.ndarray, TrackedFrame]]:
    """(frame, its tracked faces) in order, at most `lag` frames behind the input.

    `frames` are RGB arrays as displayed; the faces are on them. The detector runs on a
    thread of its own: while it looks at one frame, this one decodes and follows the
    motion of the next ones (up to `detect_every` + 1 of them wait), so the detector,
    the costliest part, never waits for them. `first_index`: the first frame's index in
    the whole clip, so that a segment's detector looks at the frames the whole clip's
    would.
    """
    tracker = Tracker(_tracking(settings, threshold))
    held: deque[np.ndarray] = deque()  # pushed to the tracker, not final yet
    waiting: deque[tuple[np.ndarray, bool, Motion | None, Future[list[Face]] | None]] = deque()
    ahead = settings.detect_every + 1
    previous_signature = previous_grey = None

    def push(
        frame: np.ndarray, cut: bool, motion: Motion | None, faces: Future[list[Face]] | None
    ) -> Iterator[tuple[np.ndarray, TrackedFrame]]:
        held.append(frame)
        for done in tracker.push(faces.result() if faces is not None else None, cut, motion):
            yield held.popleft(), done

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceblur-detect") as looking:
        try:
            for index, (frame, last) in enumerate(_with_last(frames)):
                signature, grey = scene_signature(frame), motion_grey(frame)
                cut = previous_signature is not None and (
                    scene_distance(previous_signature, signature) > settings.track.cut_threshold
                )
                motion = (
                    motion_between(previous_grey, grey, frame.shape[1])
                    if previous_grey is not None and not cut
                    else None
                )
                previous_signature, previous_grey = signature, grey
                # The last frame too: a face that came in since the last look has no later one.
                look = (first_index + index) % settings.detect_every == 0 or cut or last
                faces = looking.submit(detector.detect, frame) if look else None
                waiting.append((frame, cut, motion, faces))
                while waiting and (
                    len(waiting) > ahead or waiting[0][3] is None or waiting[0][3].done()
                ):
                    yield from push(*waiting.popleft())
            while waiting:
                yield from push(*waiting.popleft())
        finally:
            for *_, faces in waiting:
                if faces is not None:
                    faces.cancel()
    for done in tracker.finish():
        yield held.popleft(), done


def _with_last(items: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, bool]]:
    """Each item and whether it is the last one."""
    iterator = iter(items)
    current = next(iterator, None)
    while current is not None:
        following = next(iterator, None)
        yield current, following is None
        current = following


def _tracking(settings: VideoSettings, threshold: float) -> TrackSettings:
    """The track settings for this run: the request's threshold; a face that appears
    between two detector runs is covered back to where it appeared, and one missed run
    does not end a track."""
    every = settings.detect_every
    return replace(
        settings.track,
        threshold=threshold,
        extend=max(settings.track.extend, every),
        max_gap=max(settings.track.max_gap, 2 * every),
    )


def for_video(detector: Detector) -> Detector:
    """The detector as it runs on video frames: the zoomed pass for small faces only
    around the small candidates the whole-frame pass saw (`zoom_near_candidates`), not
    over every frame. Other detectors come back as they are."""
    if isinstance(detector, AnyAngleDetector) and isinstance(detector.upright, FusedDetector):
        light = detector.upright.with_settings(zoom_near_candidates=True)
        return AnyAngleDetector(light, detector.settings)
    if isinstance(detector, FusedDetector):
        return detector.with_settings(zoom_near_candidates=True)
    return detector


def regions_of(tracked: TrackedFrame, options: Options, width: int, height: int) -> list[Box]:
    """The regions hidden in a frame: each tracked face padded as a photo's faces are,
    most on the side its head points to."""
    return [
        padded_region(face.box, options.padding, width, height, face.turn) for face in tracked.faces
    ]


def hidden_regions(
    tracked: TrackedFrame,
    options: Options,
    width: int,
    height: int,
    shown_tracks: frozenset[int] = frozenset(),
) -> tuple[list[Box], list[int]]:
    """The regions hidden in a frame and their track ids: `regions_of` but for the tracks
    a reviewer chose to leave visible."""
    regions = regions_of(tracked, options, width, height)
    kept = [
        (region, face.track)
        for face, region in zip(tracked.faces, regions, strict=True)
        if face.track not in shown_tracks
    ]
    return [region for region, _ in kept], [track for _, track in kept]


def detect_video(
    source: Path,
    detector: Detector,
    options: Options | None = None,
    settings: VideoSettings = VideoSettings(),
) -> Iterator[tuple[int, int, TrackedFrame]]:
    """(width, height, tracked faces) of every frame as displayed, for `faceblur detect`."""
    for shown, tracked in _shown_tracked(source, detector, options or Options(), settings):
        yield shown.shape[1], shown.shape[0], tracked


def video_tracks(
    source: Path,
    detector: Detector,
    options: Options | None = None,
    settings: VideoSettings = VideoSettings(),
    thumbnails: bool = False,
) -> TrackLog:
    """Every track of a clip (`faceblur tracks`): the same tracking `anonymise_video` runs
    with the same options and settings, so the ids are the ones its edits name."""
    options = options or Options()
    log = TrackLog(Orientation.from_matrix(probe(source).display_matrix), thumbnails)
    for shown, tracked in _shown_tracked(source, detector, options, settings):
        height, width = shown.shape[:2]
        log.add(shown, tracked, regions_of(tracked, options, width, height))
    return log


def _shown_tracked(
    source: Path, detector: Detector, options: Options, settings: VideoSettings
) -> Iterator[tuple[np.ndarray, TrackedFrame]]:
    """Every frame as displayed with its tracked faces, the whole clip checked as read."""
    detector = for_video(upright(detector) if options.upright_only else detector)
    info = probe(source)
    orientation = Orientation.from_matrix(info.display_matrix)
    container = open_input(source)
    decoded = 0
    try:

        def shown_frames() -> Iterator[np.ndarray]:
            for frame in read_frames(container, orientation, lambda packet: None):
                yield frame.shown

        for shown, tracked in tracked_frames(shown_frames(), detector, settings, options.threshold):
            decoded += 1
            yield shown, tracked
        check_complete(decoded, info, source.name)
    except av.error.FFmpegError as error:
        raise CorruptVideoError(f"{source.name}: truncated or damaged video: {error}") from None
    finally:
        container.close()


def tracked_faces_to_json(
    tracked: TrackedFrame, options: Options, width: int, height: int
) -> list[dict]:
    """A frame's faces as plain JSON types, on the frame as displayed.

    `detected` is false where the tracker filled a gap or extended a track; `turn` is as
    in a photo's faces (clockwise degrees to where the head points).
    """
    regions = regions_of(tracked, options, width, height)
    return [
        {
            "track": face.track,
            "box": [int(v) for v in padded_region(face.box, 0.0, width, height)],
            "region": [int(v) for v in region],
            "score": round(float(face.score), 4),
            "turn": face.turn,
            "detected": face.detected,
        }
        for face, region in zip(tracked.faces, regions, strict=True)
    ]
