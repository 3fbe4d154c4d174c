"""Anonymise videos: frames streamed in and out through PyAV, audio copied, metadata dropped.

A video frame is a photo with a track id: the same detector and anonymiser as photos,
with `faceblur.track` linking detections across frames so that no single frame lets a
face through. Frames are streamed: at most `Tracker.lag` of them are held at a time,
whatever the length of the clip.

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

import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from faceblur.angles import AnyAngleDetector, upright
from faceblur.anonymise import SteadyTones, anonymise, padded_region
from faceblur.detect import Box, Detector, Face, FusedDetector
from faceblur.errors import BadRequestError, CorruptVideoError, NotAVideoError
from faceblur.pipeline import Options
from faceblur.track import (
    Motion,
    TrackedFrame,
    Tracker,
    TrackSettings,
    motion_between,
    motion_grey,
    scene_distance,
    scene_signature,
)

# Suffixes the command line picks out of folders as videos; the format itself is probed.
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}

# x264's constant rate factor: 18 is commonly taken as visually lossless.
DEFAULT_CRF = 18
MAX_CRF = 51
X264_PRESET = "faster"  # most of x264's quality at CRF 18 for a fraction of "medium"'s time
# Audio codecs the MP4 muxer takes as they are; others are re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}
# Fewer decoded frames than the container announces, beyond this share, is a truncated file.
TRUNCATION_TOLERANCE = 0.02


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
class VideoInfo:
    width: int  # of the frames as stored
    height: int
    rate: Fraction  # frames per second
    frames: int  # as announced by the container; 0 when it does not say
    duration: float  # seconds; 0.0 when unknown
    display_matrix: tuple[int, ...] | None  # FFmpeg's 3x3 display matrix, as stored
    audio_codec: str | None


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


# --------------------------------------------------------------------------- orientation

# np.rot90 turns counter-clockwise; in image coordinates (y down) a turn of 90 degrees maps
# (x, y) to (y, -x). A mirror maps (x, y) to (-x, y).
_TURN = np.array([[0, 1], [-1, 0]])
_MIRROR = np.array([[-1, 0], [0, 1]])


@dataclass(frozen=True)
class Orientation:
    """How a stored frame is shown: `turns` quarter turns counter-clockwise, then mirrored."""

    turns: int = 0
    mirrored: bool = False

    @staticmethod
    def from_matrix(matrix: tuple[int, ...] | None) -> Orientation:
        """The orientation FFmpeg's display matrix asks for (quarter turns and mirrors only)."""
        if matrix is None:
            return Orientation()
        # FFmpeg maps (x, y) to (a x + c y, b x + d y) with a, b, c, d = m[0], m[1], m[3], m[4].
        a, b, c, d = (int(np.sign(matrix[i])) for i in (0, 1, 3, 4))
        wanted = np.array([[a, c], [b, d]])
        for mirrored in (False, True):
            for turns in range(4):
                linear = np.linalg.matrix_power(_TURN, turns)
                if mirrored:
                    linear = _MIRROR @ linear
                if np.array_equal(linear, wanted):
                    return Orientation(turns, mirrored)
        raise NotAVideoError("the video's display matrix is not a quarter turn or a mirror")

    def to_display(self, stored: np.ndarray) -> np.ndarray:
        shown = np.rot90(stored, self.turns)
        return np.ascontiguousarray(shown[:, ::-1] if self.mirrored else shown)

    def to_stored(self, shown: np.ndarray) -> np.ndarray:
        unmirrored = shown[:, ::-1] if self.mirrored else shown
        return np.ascontiguousarray(np.rot90(unmirrored, -self.turns))


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    for side in frame.side_data:
        if side.type.name == "DISPLAYMATRIX":
            return tuple(int(v) for v in np.frombuffer(bytes(side), dtype="<i4"))
    return None


# --------------------------------------------------------------------------- reading


def _open_input(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), mode="r")
    except FileNotFoundError:
        raise
    except av.error.InvalidDataError:
        raise NotAVideoError(f"{path.name}: not a video we can read (or a damaged one)") from None
    except av.error.FFmpegError as error:
        raise CorruptVideoError(f"{path.name}: truncated or damaged video: {error}") from None
    if not container.streams.video:
        container.close()
        raise NotAVideoError(f"{path.name}: no video stream")
    return container


def _rate(stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise CorruptVideoError("the video does not say its frame rate")
    return Fraction(rate)


def probe(path: Path) -> VideoInfo:
    """What the video is, from its header and first frame; raises faceblur.errors types."""
    container = _open_input(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as error:
            raise CorruptVideoError(f"{path.name}: truncated or damaged video: {error}") from None
        if first is None:
            raise CorruptVideoError(f"{path.name}: truncated or damaged video: no frame")
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        duration = float(container.duration / av.time_base) if container.duration else 0.0
        return VideoInfo(
            width=first.width,
            height=first.height,
            rate=_rate(stream),
            frames=int(stream.frames or 0),
            duration=duration,
            display_matrix=_display_matrix(first),
            audio_codec=audio,
        )
    finally:
        container.close()


def _expected_frames(info: VideoInfo) -> int:
    if info.frames:
        return info.frames
    return int(info.duration * info.rate) if info.duration else 0


def _check_complete(decoded: int, info: VideoInfo, name: str) -> None:
    expected = _expected_frames(info)
    if decoded == 0 or (expected and decoded < expected * (1 - TRUNCATION_TOLERANCE) - 1):
        raise CorruptVideoError(
            f"{name}: truncated or damaged video: {decoded} of {expected} frames could be read"
        )


# --------------------------------------------------------------------------- writing


class _AudioCopy:
    """The input's first audio stream in the output: packets copied, or re-encoded to AAC."""

    def __init__(self, output: av.container.OutputContainer, source: av.audio.AudioStream):
        self.source = source
        self.copy = source.codec_context.name in MP4_AUDIO
        if self.copy:
            self.stream = output.add_stream_from_template(source)
        else:
            context = source.codec_context
            channels = "stereo" if context.layout.nb_channels > 1 else "mono"
            self.stream = output.add_stream("aac", rate=context.sample_rate, layout=channels)
        self.stream.metadata.clear()

    def write(self, output: av.container.OutputContainer, packet: av.Packet) -> None:
        if packet.dts is None or packet.size == 0:
            return
        if self.copy:
            packet.stream = self.stream
            output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None  # the encoder numbers samples itself
            output.mux(self.stream.encode(frame))

    def close(self, output: av.container.OutputContainer) -> None:
        if not self.copy:
            output.mux(self.stream.encode(None))


def _temporary_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")


# --------------------------------------------------------------------------- the pipeline


@dataclass
class _Frame:
    stored: av.VideoFrame
    shown: np.ndarray


def _frames(
    container: av.container.InputContainer,
    orientation: Orientation,
    on_audio: Callable[[av.Packet], None],
) -> Iterator[_Frame]:
    """Decoded video frames as displayed, while audio packets go to `on_audio`."""
    video = container.streams.video[0]
    audio = container.streams.audio[:1]
    for packet in container.demux(video, *audio):
        if packet.stream.type == "audio":
            on_audio(packet)
            continue
        for frame in packet.decode():
            shown = orientation.to_display(frame.to_ndarray(format="rgb24"))
            yield _Frame(frame, shown)


def tracked_frames(
    frames: Iterator[np.ndarray],
    detector: Detector,
    settings: VideoSettings,
    threshold: float,
) -> Iterator[tuple[np.ndarray, TrackedFrame]]:
    """(frame, its tracked faces) in order, at most `lag` frames behind the input.

    `frames` are RGB arrays as displayed; the faces are on them. The detector runs on a
    thread of its own: while it looks at one frame, this one decodes and follows the
    motion of the next ones (up to `detect_every` + 1 of them wait), so the detector,
    the costliest part, never waits for them.
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
                look = index % settings.detect_every == 0 or cut or last
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
    """The regions hidden in a frame: each tracked box padded as a photo's faces are."""
    return [padded_region(face.box, options.padding, width, height) for face in tracked.faces]


def anonymise_video(
    source: Path,
    target: Path,
    detector: Detector,
    options: Options | None = None,
    settings: VideoSettings = VideoSettings(),
    on_progress: ProgressCallback | None = None,
) -> VideoResult:
    """Write `source` with every face hidden to `target` (MP4); see the module's docstring.

    Raises NotAVideoError, CorruptVideoError or TooLargeError (faceblur.errors); on any
    error nothing is left under `target` or beside it.
    """
    options = options or Options()
    detector = for_video(upright(detector) if options.upright_only else detector)
    if not 0 <= settings.crf <= MAX_CRF:
        raise BadRequestError(f"crf must be from 0 to {MAX_CRF}")
    started = time.perf_counter()
    info = probe(source)
    orientation = Orientation.from_matrix(info.display_matrix)
    partial = _temporary_beside(target)
    container = _open_input(source)
    tracks: set[int] = set()
    face_frames = frames_done = 0
    try:
        with av.open(
            str(partial), mode="w", format="mp4", options={"movflags": "+faststart"}
        ) as output:
            video_in = container.streams.video[0]
            video_out = output.add_stream("libx264", rate=info.rate)
            video_out.width, video_out.height = info.width, info.height
            video_out.pix_fmt = "yuv420p"
            video_out.time_base = video_in.time_base
            video_out.options = {"crf": str(settings.crf), "preset": X264_PRESET}
            if info.display_matrix is not None:
                video_out.set_display_matrix(list(info.display_matrix))
            audio = (
                _AudioCopy(output, container.streams.audio[0]) if container.streams.audio else None
            )
            output.metadata.clear()

            pending: deque[av.VideoFrame] = deque()  # the stored frames, for their timestamps

            def shown_frames() -> Iterator[np.ndarray]:
                sink = (lambda p: audio.write(output, p)) if audio else (lambda p: None)
                for frame in _frames(container, orientation, sink):
                    pending.append(frame.stored)
                    yield frame.shown

            last_pts = None
            # Each track keeps its tone from frame to frame: no drift, no flicker.
            steady = SteadyTones()

            def hide_and_encode(
                shown: np.ndarray, tracked: TrackedFrame, stored: av.VideoFrame
            ) -> list[av.Packet]:
                nonlocal last_pts
                height, width = shown.shape[:2]
                regions = regions_of(tracked, options, width, height)
                # No grain: fresh grain every frame would boil (faceblur.anonymise.anonymise).
                hidden = anonymise(
                    shown,
                    regions,
                    options.method,
                    options.shape,
                    options.strength,
                    grain=False,
                    tracks=[face.track for face in tracked.faces],
                    steady=steady,
                )
                frame = av.VideoFrame.from_ndarray(orientation.to_stored(hidden), format="rgb24")
                pts = stored.pts
                if pts is None or (last_pts is not None and pts <= last_pts):
                    pts = 0 if last_pts is None else last_pts + 1
                frame.pts, frame.time_base = pts, stored.time_base or video_in.time_base
                last_pts = pts
                return video_out.encode(frame)

            def write(packets: list[av.Packet]) -> None:
                nonlocal frames_done
                output.mux(packets)
                frames_done += 1
                if on_progress is not None:
                    on_progress(frames_done, _expected_frames(info))

            # Frames are hidden and encoded on a second thread, in order, while this one
            # decodes, follows the motion and runs the detector (numpy, OpenCV and x264 let
            # go of the GIL): the frames the tracker hands over between two detector runs
            # are done while the detector looks at the next one. At most `ahead` wait;
            # only this thread muxes, so audio and video packets never race.
            ahead = settings.detect_every + 2
            hiding: deque[Future[list[av.Packet]]] = deque()
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceblur-hide") as worker:
                try:
                    for shown, tracked in tracked_frames(
                        shown_frames(), detector, settings, options.threshold
                    ):
                        stored = pending.popleft()
                        hiding.append(worker.submit(hide_and_encode, shown, tracked, stored))
                        face_frames += len(tracked.faces)
                        tracks.update(face.track for face in tracked.faces)
                        while hiding and (len(hiding) > ahead or hiding[0].done()):
                            write(hiding.popleft().result())
                    while hiding:
                        write(hiding.popleft().result())
                finally:
                    for future in hiding:
                        future.cancel()
            _check_complete(frames_done, info, source.name)
            output.mux(video_out.encode(None))
            if audio is not None:
                audio.close(output)
        os.replace(partial, target)
    except av.error.FFmpegError as error:
        raise CorruptVideoError(f"{source.name}: truncated or damaged video: {error}") from None
    finally:
        container.close()
        partial.unlink(missing_ok=True)
    return VideoResult(
        frames=frames_done,
        width=info.width,
        height=info.height,
        rate=info.rate,
        tracks=len(tracks),
        face_frames=face_frames,
        timings={"total": time.perf_counter() - started},
    )


def detect_video(
    source: Path,
    detector: Detector,
    options: Options | None = None,
    settings: VideoSettings = VideoSettings(),
) -> Iterator[tuple[int, int, TrackedFrame]]:
    """(width, height, tracked faces) of every frame as displayed, for `faceblur detect`."""
    options = options or Options()
    detector = for_video(upright(detector) if options.upright_only else detector)
    info = probe(source)
    orientation = Orientation.from_matrix(info.display_matrix)
    container = _open_input(source)
    decoded = 0
    try:

        def shown_frames() -> Iterator[np.ndarray]:
            for frame in _frames(container, orientation, lambda packet: None):
                yield frame.shown

        for shown, tracked in tracked_frames(shown_frames(), detector, settings, options.threshold):
            decoded += 1
            yield shown.shape[1], shown.shape[0], tracked
        _check_complete(decoded, info, source.name)
    except av.error.FFmpegError as error:
        raise CorruptVideoError(f"{source.name}: truncated or damaged video: {error}") from None
    finally:
        container.close()


def tracked_faces_to_json(
    tracked: TrackedFrame, options: Options, width: int, height: int
) -> list[dict]:
    """A frame's faces as plain JSON types, on the frame as displayed.

    `detected` is false where the tracker filled a gap or extended a track.
    """
    regions = regions_of(tracked, options, width, height)
    return [
        {
            "track": face.track,
            "box": [int(v) for v in padded_region(face.box, 0.0, width, height)],
            "region": [int(v) for v in region],
            "score": round(float(face.score), 4),
            "detected": face.detected,
        }
        for face, region in zip(tracked.faces, regions, strict=True)
    ]
