"""Anonymise videos: frames streamed in and out through PyAV, audio copied, metadata dropped.

A video frame is a photo with a track id: the same detector and anonymiser as photos,
with `faceblur.media.track` linking detections across frames so that no single frame
lets a face through. Frames are streamed: at most `Tracker.lag` of them are held at a
time, whatever the length of the clip. Reading and writing the file (orientation, probe,
audio copy) is `faceblur.media.container`'s.

* Output: H.264 (yuv420p) in MP4 at the input's frame count, size, frame rate and
  timestamps; the display matrix (rotation) is kept, and faces are found and hidden on
  the frame as displayed, then turned back.
* Audio: the first audio stream's packets are copied unchanged; a codec MP4 cannot hold
  (PCM, Vorbis) is re-encoded to AAC. Subtitle and data streams are dropped, and so is
  every container and stream tag (GPS location, device, dates).
* The result is written under a temporary name beside the target and renamed when
  complete: an interrupted or failed run leaves nothing under the final name.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import numpy as np

from faceblur.anonymise import METHODS, SteadyTones, anonymise
from faceblur.detection.angles import AnyAngleDetector, upright
from faceblur.detection.base import Detector, Face
from faceblur.detection.fusion import FusedDetector
from faceblur.errors import BadRequestError, CorruptVideoError
from faceblur.geometry import Box, padded_region
from faceblur.media.container import (
    AudioCopy,
    DecodedFrame,
    DecodeLimits,
    Orientation,
    check_complete,
    expected_frames,
    frame_of,
    open_input,
    probe,
    read_frames,
    written_beside,
)
from faceblur.media.review import TrackLog, follower_for
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
from faceblur.options import Options, VideoEdits, check_regions_inside

# x264's constant rate factor: 18 is commonly taken as visually lossless.
DEFAULT_CRF = 18
MAX_CRF = 51
X264_PRESET = "faster"  # most of x264's quality at CRF 18 for a fraction of "medium"'s time


@cache
def x264_options(crf: int) -> dict[str, str]:
    """x264's settings, fixed so that the same frames give the same bits in any process on
    any machine with the same instruction set (docs/tried.md, "Video in segments"):
    one thread, since x264's output depends on its thread count, which it would take
    from the machine's cores (and write into the stream's header, which the join
    checks); a video's parallelism is its segments. And `x264_repeatable`."""
    return {"crf": str(crf), "preset": X264_PRESET, "threads": "1", **x264_repeatable()}


@cache
def x264_repeatable() -> dict[str, str]:
    """x264's SIMD code capped at AVX2: with its AVX-512 code the macroblock tree (mbtree)
    gives other bits from one encode to the next in the same process (reused memory, it
    seems: a clip encoded after TensorFlow has run differs from one encoded before);
    capped, every encode repeats, and an AVX-512 machine runs the code an AVX2 one does
    (the same bits expected; not checked here: one machine). Test clips use it too."""
    return {"x264-params": "asm=avx2"} if _cpu_has("avx2") else {}


def _cpu_has(flag: str) -> bool:
    """Whether Linux says every core has `flag` (False elsewhere: x264 then picks)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    lines = [line for line in text.splitlines() if line.startswith("flags")]
    return bool(lines) and all(flag in line.split(":", 1)[1].split() for line in lines)


@dataclass(frozen=True)
class VideoSettings:
    """How faces are looked for in a video; defaults chosen by bench/video.py."""

    # The detector runs on every n-th frame (and at cuts and on the last frame); optical
    # flow carries faces in between. bench/video.py chooses n (bench/results/video.json):
    # of those meeting the leak targets, the fewest exposed face-frames, then the largest.
    detect_every: int = 12
    crf: int = DEFAULT_CRF
    track: TrackSettings = field(default_factory=TrackSettings)


@dataclass(frozen=True)
class VideoResult:
    frames: int
    width: int
    height: int
    rate: Fraction
    tracks: int
    face_frames: int  # faces hidden, summed over frames
    timings: dict[str, float]


ProgressCallback = Callable[[int, int], None]  # frames done, frames announced (0: unknown)
# Each frame as displayed (the input's pixels), its tracked faces and the region of each:
# what a track log or a seal gathers while the clip is rendered.
FrameObserver = Callable[[np.ndarray, TrackedFrame, list[Box]], None]


# --------------------------------------------------------------------------- the pipeline


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


@dataclass(frozen=True)
class Window:
    """The frames of a clip one run reads and the ones it writes, by presentation
    timestamp (in the video stream's time base); a segment of a split job
    (`faceblur.media.segments`). Frames read but not written are the overlap: the
    tracker sees them, so a face crossing the border is followed from both sides."""

    read_from: int | None = None  # seek to the keyframe at or before it; None: the start
    first: int | None = None  # the first frame written; None: the first read
    end: int | None = None  # the first frame not written; None: to the last one read
    read_to: int | None = None  # the first frame not read; None: to the end of the clip
    first_index: int = 0  # the first frame read, counted in the whole clip
    frames: int = 0  # frames it writes; 0: all there are (checked as a whole clip is)
    # The next segment's first frame read, counted in the whole clip; None: none follows.
    # A face tracked there goes on in the next segment under the key of its first
    # detection from there on; its tone moves to that key's before the border.
    hand_over: int | None = None

    def reads(self, pts: int | None) -> bool:
        return self.read_from is None or (pts is not None and pts >= self.read_from)

    def past(self, pts: int | None) -> bool:
        return self.read_to is not None and pts is not None and pts >= self.read_to

    def writes(self, pts: int | None) -> bool:
        if pts is None:
            return self.first is None and self.end is None
        return (self.first is None or pts >= self.first) and (self.end is None or pts < self.end)


WHOLE = Window()


def anonymise_video(
    source: Path,
    target: Path,
    detector: Detector,
    options: Options | None = None,
    settings: VideoSettings = VideoSettings(),
    on_progress: ProgressCallback | None = None,
    edits: VideoEdits | None = None,
    observe: FrameObserver | None = None,
    limits: DecodeLimits | None = None,
) -> VideoResult:
    """Write `source` with every face hidden to `target` (MP4); see the module's docstring.

    `edits`: tracks left visible (`show`) and regions hidden over frame ranges (`hide`,
    followed with the content by `faceblur.media.review.HideFollower`). `observe` is
    called with every frame, in order, before it is hidden. `limits`: checked on every
    decoded frame (faceblur.media.container.DecodeLimits).

    Raises NotAVideoError, CorruptVideoError or TooLargeError (faceblur.errors); on any
    error nothing is left under `target` or beside it.
    """
    return _anonymise(
        source,
        target,
        detector,
        options,
        settings,
        on_progress,
        WHOLE,
        True,
        edits,
        observe,
        limits,
    )


def anonymise_window(
    source: Path,
    target: Path,
    detector: Detector,
    window: Window,
    options: Options | None = None,
    settings: VideoSettings = VideoSettings(),
    on_progress: ProgressCallback | None = None,
    seed: Sequence[int] | None = None,
) -> VideoResult:
    """Write the frames `window` writes, faces hidden, to `target`: an MP4 of video only,
    each frame at its timestamp in the source less `window.first` (an MP4 that starts
    later than 0 says so in its edit list, to the millisecond only: the join adds it back
    exactly), encoded alone (its first frame a keyframe,
    no frame referring outside it) with the fixed settings every segment shares, so that
    `faceblur.media.segments.join_segments` can put segments end to end without
    re-encoding. The audio is the join's, copied once from the source. `seed`: where the
    default method's per-track draws come from (`faceblur.anonymise.SteadyTones`), so
    that any worker hides the window the same way; None: a fresh secret draw."""
    return _anonymise(
        source, target, detector, options, settings, on_progress, window, False, seed=seed
    )


def _read_window(
    container: av.container.InputContainer,
    orientation: Orientation,
    window: Window,
    on_audio: Callable[[av.Packet], None],
    limits: DecodeLimits | None = None,
) -> Iterator[tuple[DecodedFrame, bool]]:
    """The window's frames as displayed, each with whether it is written."""
    if window.read_from is not None:
        # The keyframe at or before it: frames before `read_from` are decoded, then dropped.
        container.seek(window.read_from, stream=container.streams.video[0])
    # Frames before the window are decoded (H.264 needs them) but never converted.
    early = None if window.read_from is None else (lambda frame: not window.reads(frame.pts))
    for frame in read_frames(container, orientation, on_audio, limits, early):
        pts = frame.stored.pts
        if window.past(pts):
            return
        if window.reads(pts):
            yield frame, window.writes(pts)


def _anonymise(
    source: Path,
    target: Path,
    detector: Detector,
    options: Options | None,
    settings: VideoSettings,
    on_progress: ProgressCallback | None,
    window: Window,
    with_audio: bool,
    edits: VideoEdits | None = None,
    observe: FrameObserver | None = None,
    limits: DecodeLimits | None = None,
    seed: Sequence[int] | None = None,
) -> VideoResult:
    options = options or Options()
    detector = for_video(upright(detector) if options.upright_only else detector)
    if not 0 <= settings.crf <= MAX_CRF:
        raise BadRequestError(f"crf must be from 0 to {MAX_CRF}")
    started = time.perf_counter()
    info = probe(source)
    orientation = Orientation.from_matrix(info.display_matrix)
    whole = window.frames == 0  # checked as a whole clip is
    total = expected_frames(info) if whole else window.frames
    tracks: set[int] = set()
    face_frames = frames_done = 0
    if edits is not None:
        check_regions_inside([edit.region for edit in edits.hide], info.width, info.height)
    follower = follower_for(edits, orientation)
    shown_tracks = edits.show if edits is not None else frozenset()
    container = open_input(source)
    try:
        with (
            written_beside(target, f"{source.name}: truncated or damaged video") as partial,
            av.open(
                str(partial), mode="w", format="mp4", options={"movflags": "+faststart"}
            ) as output,
        ):
            video_in = container.streams.video[0]
            video_out = output.add_stream("libx264", rate=info.rate)
            video_out.width, video_out.height = info.width, info.height
            video_out.pix_fmt = "yuv420p"
            video_out.time_base = video_in.time_base
            video_out.options = dict(x264_options(settings.crf))
            if info.display_matrix is not None:
                video_out.set_display_matrix(list(info.display_matrix))
            audio = (
                AudioCopy(output, container.streams.audio[0])
                if container.streams.audio and with_audio
                else None
            )
            output.metadata.clear()

            # The stored frames, for their timestamps, and whether each is written.
            pending: deque[tuple[av.VideoFrame, bool]] = deque()

            def shown_frames() -> Iterator[np.ndarray]:
                sink = (lambda p: audio.write(output, p)) if audio else (lambda p: None)
                for frame, writes in _read_window(container, orientation, window, sink, limits):
                    pending.append((frame.stored, writes))
                    if follower is not None:
                        follower.push(frame.shown)
                    yield frame.shown

            last_pts = None
            shift = window.first or 0
            # Each track keeps its tone from frame to frame: no drift, no flicker.
            steady = SteadyTones(seed=seed)
            # With a seed, each track's draw is keyed on the detection that started it,
            # not its id: the next segment's tracker, reading the same frames before its
            # border, starts its own track from that very detection when the face came
            # within that overlap, so such a face keeps its tone across the border.
            starts: dict[int, int] = {}
            # A face tracked from before that overlap: the next segment keys it on its
            # first detection in the overlap (`Window.hand_over`), which this segment sees
            # too; from there its tone moves, frame by frame, to that key's, all of the
            # way at the border. Track -> (that key, the frame it was detected in).
            handed: dict[int, tuple[int, int]] = {}
            first_written: int | None = None

            def blends_at(index: int, tracked: TrackedFrame) -> dict[int, tuple[int, float]]:
                """The start keys whose tones move towards the next segment's, this frame."""
                if seed is None or window.hand_over is None or first_written is None:
                    return {}
                if not METHODS[options.method].randomised:  # no draws: nothing to hand on
                    return {}
                border = first_written + window.frames
                moving = {}
                for face in tracked.faces:
                    found = handed.get(face.track)
                    if found is not None and found[0] != starts[face.track]:
                        share = (index - found[1] + 1) / (border - found[1])
                        moving[starts[face.track]] = (found[0], min(share, 1.0))
                return moving

            def hide(
                shown: np.ndarray,
                tracked: TrackedFrame,
                stored: av.VideoFrame,
                blends: dict[int, tuple[int, float]],
            ) -> av.VideoFrame:
                nonlocal last_pts
                height, width = shown.shape[:2]
                regions, ids = hidden_regions(tracked, options, width, height, shown_tracks)
                if follower is not None:
                    # A hide edit keeps a tone of its own: ids below zero are no track's.
                    for number, region in follower.regions(tracked.index):
                        regions.append(region)
                        ids.append(-1 - number)
                if seed is not None:
                    ids = [starts.get(track, track) for track in ids]
                hidden = _hide_frame(shown, regions, ids, options, steady)
                if blends:
                    hidden = _handed_on(hidden, shown, regions, ids, blends, options, steady)
                frame = frame_of(orientation.to_stored(hidden))
                pts = None if stored.pts is None else stored.pts - shift
                if pts is None or (last_pts is not None and pts <= last_pts):
                    pts = 0 if last_pts is None else last_pts + 1
                frame.pts, frame.time_base = pts, stored.time_base or video_in.time_base
                last_pts = pts
                return frame

            def encode(frame: av.VideoFrame) -> list[av.Packet]:
                return video_out.encode(frame)

            def write(packets: list[av.Packet]) -> None:
                nonlocal frames_done
                output.mux(packets)
                frames_done += 1
                if on_progress is not None:
                    on_progress(frames_done, total)

            # Frames are hidden on a second thread and encoded on a third, each in order,
            # while this one decodes, follows the motion and runs the detector (numpy,
            # OpenCV and x264 let go of the GIL): the frames the tracker hands over between
            # two detector runs are done while the detector looks at the next one, and a
            # frame is hidden while the one before it is encoded (the tracker hands most of
            # a short clip over at its end). At most `ahead` wait; only this thread muxes,
            # so audio and video packets never race.
            ahead = settings.detect_every + 2
            # Each frame's hiding and its encoding (which waits for it), in order.
            hiding: deque[tuple[Future[av.VideoFrame], Future[list[av.Packet]]]] = deque()
            with (
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceblur-hide") as worker,
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceblur-encode") as encoder,
            ):
                try:
                    for shown, tracked in tracked_frames(
                        shown_frames(), detector, settings, options.threshold, window.first_index
                    ):
                        stored, writes = pending.popleft()
                        index = window.first_index + tracked.index  # in the whole clip
                        for face in tracked.faces:
                            starts.setdefault(face.track, _detection_key(face))
                            if (
                                window.hand_over is not None
                                and index >= window.hand_over
                                and face.detected
                                and face.score >= options.threshold  # would start a track
                                and face.track not in handed
                            ):
                                handed[face.track] = (_detection_key(face), index)
                        if not writes:  # the overlap: tracked, not written
                            continue
                        if first_written is None:
                            first_written = index
                        if observe is not None:
                            height, width = shown.shape[:2]
                            observe(shown, tracked, regions_of(tracked, options, width, height))
                        blends = blends_at(index, tracked)
                        hidden_frame = worker.submit(hide, shown, tracked, stored, blends)
                        packets = encoder.submit(lambda done=hidden_frame: encode(done.result()))
                        hiding.append((hidden_frame, packets))
                        hidden = [f for f in tracked.faces if f.track not in shown_tracks]
                        face_frames += len(hidden)
                        tracks.update(face.track for face in hidden)
                        while hiding and (len(hiding) > ahead or hiding[0][1].done()):
                            write(hiding.popleft()[1].result())
                    while hiding:
                        write(hiding.popleft()[1].result())
                finally:
                    for futures in hiding:
                        for future in futures:
                            future.cancel()
            if whole:
                check_complete(frames_done, info, source.name)
            elif frames_done != window.frames:
                raise CorruptVideoError(
                    f"{source.name}: truncated or damaged video: {frames_done} of "
                    f"{window.frames} frames of a segment could be read"
                )
            output.mux(video_out.encode(None))
            if audio is not None:
                audio.close(output)
    finally:
        container.close()
    return VideoResult(
        frames=frames_done,
        width=info.width,
        height=info.height,
        rate=info.rate,
        tracks=len(tracks),
        face_frames=face_frames,
        timings={"total": time.perf_counter() - started},
    )


def _hide_frame(
    shown: np.ndarray,
    regions: list[Box],
    keys: list[int],
    options: Options,
    steady: SteadyTones,
) -> np.ndarray:
    """One frame with its regions hidden, each with its track's steady tone. No grain:
    fresh grain every frame would boil (faceblur.anonymise.anonymise)."""
    return anonymise(
        shown,
        regions,
        options.method,
        options.shape,
        options.strength,
        grain=False,
        tracks=keys,
        steady=steady,
    )


def _handed_on(
    hidden: np.ndarray,
    shown: np.ndarray,
    regions: list[Box],
    keys: list[int],
    blends: dict[int, tuple[int, float]],
    options: Options,
    steady: SteadyTones,
) -> np.ndarray:
    """`hidden` cross-faded, in the regions of the faces handed on to the next segment
    (`blends`: key -> the next segment's key, share), to the same frame painted with the
    next segment's draws: each such face's tone and head go over to the next segment's
    a share at a time, all of the way at the border."""
    handed_on = steady.handed_on({key: other for key, (other, _) in blends.items()})
    ahead = _hide_frame(shown, regions, keys, options, handed_on)
    faded = hidden.copy()
    for (x, y, w, h), key in zip(regions, keys, strict=True):
        if key in blends:
            share = blends[key][1]
            now, then = hidden[y : y + h, x : x + w], ahead[y : y + h, x : x + w]
            mixed = now.astype(np.float32) + share * (then.astype(np.float32) - now)
            faded[y : y + h, x : x + w] = np.clip(mixed.round(), 0, 255).astype(np.uint8)
    return faded


def _detection_key(face: Face) -> int:
    """A track's first face (the detection that started it, or a frame it was extended
    back to, which carries that detection) as a number: its score's bits, which the
    same detector gives the same frame in any process."""
    return int.from_bytes(struct.pack("<d", float(face.score)), "little")


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
