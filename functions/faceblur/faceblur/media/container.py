"""A video file through PyAV: what it is (`probe`), its frames as displayed, its audio
copied into the output, and the checks that it was read whole. The pipeline in
`faceblur.media.video` decides what happens to the frames; this module only reads and
writes them.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from faceblur.errors import CorruptVideoError, NotAVideoError, TooLargeError
from faceblur.orientation import of_turns

# Audio codecs the MP4 muxer takes as they are; others are re-encoded to AAC.
MP4_AUDIO = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}
# Fewer decoded frames than the container announces, beyond this share, is a truncated file.
TRUNCATION_TOLERANCE = 0.02


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds in a video's header and first frame."""

    width: int  # of the frames as stored
    height: int
    rate: Fraction  # frames per second
    frames: int  # as announced by the container; 0 when it does not say
    duration: float  # seconds; 0.0 when unknown
    display_matrix: tuple[int, ...] | None  # FFmpeg's 3x3 display matrix, as stored
    audio_codec: str | None


@dataclass(frozen=True)
class DecodeLimits:
    """What a video may hold, checked on every frame as it is decoded: a container's own
    figures (frame count, duration) can be missing or false, and its frames may change
    size after the first. `deadline` is a `clock()` time the work must end by (a job's
    wall-clock budget); None: no deadline. Each refusal is a TooLargeError whose code
    names the limit (`max_video_frames`, `max_video_seconds`, `max_video_pixels`,
    `video_job_seconds`)."""

    max_frames: int
    max_seconds: float
    max_pixels: int
    deadline: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def check(self, frame: av.VideoFrame, count: int, start: float | None, rate: Fraction) -> None:
        """`frame`, the `count`-th decoded, within the limits; `start`: the first's time."""
        if count > self.max_frames:
            raise TooLargeError(
                f"a video of more than {self.max_frames} frames; the limit is {self.max_frames}",
                "max_video_frames",
            )
        # A frame without a timestamp is placed by the frame rate.
        at = frame.time
        seconds = at - start if at is not None and start is not None else (count - 1) / rate
        if seconds > self.max_seconds:
            raise TooLargeError(
                f"a video longer than {self.max_seconds:.0f} seconds (a frame at "
                f"{seconds:.0f} s); the limit is {self.max_seconds:.0f} seconds",
                "max_video_seconds",
            )
        if frame.width * frame.height > self.max_pixels:
            raise TooLargeError(
                f"a frame of {frame.width}x{frame.height} pixels; the limit is "
                f"{self.max_pixels} pixels per frame",
                "max_video_pixels",
            )
        if self.deadline is not None and self.clock() > self.deadline:
            raise TooLargeError(
                "the video took longer than this deployment allows one video to take; "
                "send a shorter or smaller one",
                "video_job_seconds",
            )


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

    @property
    def number(self) -> int:
        """The same orientation as a photo's EXIF number (`faceblur.orientation`): what
        boxes move between stored and displayed pixels by."""
        return of_turns(self.turns, self.mirrored)

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


def open_input(path: Path) -> av.container.InputContainer:
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
    container = open_input(path)
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


def expected_frames(info: VideoInfo) -> int:
    if info.frames:
        return info.frames
    return int(info.duration * info.rate) if info.duration else 0


def check_complete(decoded: int, info: VideoInfo, name: str) -> None:
    expected = expected_frames(info)
    if decoded == 0 or (expected and decoded < expected * (1 - TRUNCATION_TOLERANCE) - 1):
        raise CorruptVideoError(
            f"{name}: truncated or damaged video: {decoded} of {expected} frames could be read"
        )


# --------------------------------------------------------------------------- writing


class AudioCopy:
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


def temporary_beside(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")


@contextmanager
def written_beside(target: Path, failure: str) -> Iterator[Path]:
    """A temporary path beside `target` to write a video to, put in `target`'s place when
    the block ends without error: an interrupted or failed write leaves nothing under
    `target` and removes its part. PyAV's errors inside the block (reading the input
    included) become CorruptVideoError("<failure>: <FFmpeg's reason>")."""
    partial = temporary_beside(target)
    try:
        yield partial
        os.replace(partial, target)
    except av.error.FFmpegError as error:
        raise CorruptVideoError(f"{failure}: {error}") from None
    finally:
        partial.unlink(missing_ok=True)


@dataclass
class DecodedFrame:
    """A video frame as stored (its timestamps) and its pixels as displayed (RGB)."""

    stored: av.VideoFrame
    shown: np.ndarray


def rgb_of(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame's pixels as RGB. yuv420p (nearly every H.264 file) is converted by
    OpenCV: the same pixels in every process. FFmpeg's converter (swscale) gives a
    process's first conversions slightly other pixels than later ones, so a segment
    hidden in a fresh worker would differ from the same segment hidden after another."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def frame_of(rgb: np.ndarray) -> av.VideoFrame:
    """An RGB picture as a frame for the H.264 encoder (yuv420p by OpenCV, as `rgb_of`)."""
    height, width = rgb.shape[:2]
    if width % 2 == 0 and height % 2 == 0:
        yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
        return av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def read_frames(
    container: av.container.InputContainer,
    orientation: Orientation,
    on_audio: Callable[[av.Packet], None],
    limits: DecodeLimits | None = None,
    skip: Callable[[av.VideoFrame], bool] | None = None,
) -> Iterator[DecodedFrame]:
    """Decoded video frames as displayed, while audio packets go to `on_audio`; each
    within `limits` (TooLargeError) before its pixels are converted. Frames `skip` says
    so of are decoded and checked, not converted nor yielded (a segment's frames before
    its first, decoded from the keyframe before it)."""
    video = container.streams.video[0]
    audio = container.streams.audio[:1]
    rate = _rate(video) if limits else Fraction(1)
    count, start = 0, None
    for packet in container.demux(video, *audio):
        if packet.stream.type == "audio":
            on_audio(packet)
            continue
        for frame in packet.decode():
            count += 1
            if start is None:
                start = frame.time
            if limits is not None:
                limits.check(frame, count, start, rate)
            if skip is not None and skip(frame):
                continue
            shown = orientation.to_display(rgb_of(frame))
            yield DecodedFrame(frame, shown)
