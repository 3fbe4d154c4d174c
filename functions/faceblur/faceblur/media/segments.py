"""A video split into segments that any worker can hide on its own, and joined again
frame-exact without re-encoding (issue 25).

* Plan (`plan_segments`): the video packets' timestamps are read without decoding; the
  clip is cut every `seconds` (at a keyframe when one lies near, else anywhere: the
  worker then decodes from the keyframe before and drops the frames before its start).
  Each segment reads `overlap_frames` more on each side than it writes, so the tracker
  follows a face crossing a border from both sides and hides it on both.
* Map (`encode_segment`): `faceblur.media.video.anonymise_window`: the segment's frames
  at their own timestamps, H.264 with the fixed settings every segment shares, its first
  frame a keyframe and no frame referring outside it (each segment is its own encoder:
  closed GOPs by construction). The detector looks at the frames of the whole clip's
  schedule (every n-th frame counted from the clip's start).
* Reduce (`join_segments`): the segments' packets remuxed one after the other at their
  timestamps in the source (each segment is stored starting at 0), the audio copied
  once from the original, interleaved by time; the display matrix (rotation), rate, size
  and frame count kept, no tags. The same plan and the job's secret seed give the
  same bytes however many workers ran it, on machines with the same instruction set
  (the encoder's settings are fixed: `faceblur.media.x264.x264_options`).
"""

from __future__ import annotations

import bisect
import heapq
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import av

from faceblur.detection.base import Detector
from faceblur.errors import CorruptVideoError
from faceblur.media.container import AudioCopy, open_input, probe, written_beside
from faceblur.media.follow import VideoSettings
from faceblur.media.video import ProgressCallback, VideoResult, anonymise_window
from faceblur.media.window import Window
from faceblur.options import Options


def overlap_frames(settings: VideoSettings) -> int:
    """Frames a segment reads beyond each border: two detector runs (so a face near the
    border is found on the other side too and its track extended back across it, as the
    tracker's `extend` does) and the smoothing's reach."""
    return 2 * settings.detect_every + settings.track.smooth


@dataclass(frozen=True)
class Segment:
    """Frames `first` to `end` (excluded) in display order are written; `read_from` to
    `read_to` are read. `window` says the same in timestamps, for the worker."""

    index: int
    first: int
    end: int
    read_from: int
    read_to: int
    window: Window

    @property
    def frames(self) -> int:
        return self.end - self.first

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(document: dict) -> Segment:
        fields = {name: int(document[name]) for name in ("index", "first", "end")}
        fields |= {name: int(document[name]) for name in ("read_from", "read_to")}
        return Segment(**fields, window=Window(**document["window"]))


@dataclass(frozen=True)
class Plan:
    frames: int  # in the whole clip; 0 when its timestamps could not be planned on
    segments: tuple[Segment, ...]


def plan_segments(source: Path, seconds: float, settings: VideoSettings | None = None) -> Plan:
    """Cut `source` into segments of about `seconds`; a clip whose frames lack distinct
    timestamps is one segment (it cannot be cut by them)."""
    settings = settings or VideoSettings()
    info = probe(source)
    stamps: list[int] = []
    keyframes: list[int] = []
    plannable = True
    container = open_input(source)
    try:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                plannable = False
                break
            stamps.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
    except av.error.FFmpegError as error:
        raise CorruptVideoError(f"{source.name}: truncated or damaged video: {error}") from None
    finally:
        container.close()
    stamps.sort()
    if not plannable or not stamps or len(set(stamps)) != len(stamps):
        return Plan(0, (Segment(0, 0, 0, 0, 0, Window()),))
    count = len(stamps)
    key_indices = sorted(bisect.bisect_left(stamps, pts) for pts in set(keyframes))
    cuts = _cuts(count, max(1, round(seconds * info.rate)), key_indices)
    overlap = overlap_frames(settings)
    segments = []
    for index, (first, end) in enumerate(zip(cuts, cuts[1:], strict=False)):
        read_from, read_to = max(0, first - overlap), min(count, end + overlap)
        window = Window(
            read_from=stamps[read_from] if read_from > 0 else None,
            first=stamps[first],
            end=stamps[end] if end < count else None,
            read_to=stamps[read_to] if read_to < count else None,
            first_index=read_from,
            frames=end - first,
            hand_over=end - overlap if end < count else None,
        )
        segments.append(Segment(index, first, end, read_from, read_to, window))
    return Plan(count, tuple(segments))


def _cuts(count: int, length: int, keyframes: Sequence[int]) -> list[int]:
    """Segment starts and the clip's end: every `length` frames, moved to a keyframe within
    a quarter length (the worker then decodes nothing it drops); the last segment at
    least half a length."""
    cuts = [0]
    wanted = length
    while wanted <= count - max(1, length // 2):
        near = [k for k in keyframes if abs(k - wanted) <= length // 4 and k > cuts[-1]]
        cut = min(near, key=lambda k: abs(k - wanted)) if near else wanted
        cuts.append(cut)
        wanted = cut + length
    cuts.append(count)
    return cuts


def segment_path(folder: Path, segment: Segment) -> Path:
    return folder / f"segment-{segment.index:05d}.mp4"


def encode_segment(
    source: Path,
    target: Path,
    segment: Segment,
    detector: Detector,
    options: Options | None = None,
    settings: VideoSettings | None = None,
    on_progress: ProgressCallback | None = None,
    seed: int | None = None,
) -> VideoResult:
    """The map step: `segment` of `source` with its faces hidden, at `target` (video only).

    `seed`: the job's secret (`new_seed`), the same for every segment: the default
    method's draws come from it and each track's first detection, so the segment's bytes
    depend on the plan and the seed, not on which worker ran it or what it ran before,
    and a face that came within the overlap before a border keeps its tone across it.
    None: a fresh secret draw."""
    settings = settings or VideoSettings()
    window_seed = None if seed is None else (seed,)
    return anonymise_window(
        source, target, detector, segment.window, options, settings, on_progress, window_seed
    )


def new_seed() -> int:
    """A job's secret for `encode_segment` (it moves each hidden face's tone: kept where
    the original is, never shown)."""
    return secrets.randbits(64)


def join_segments(
    source: Path, segments: Sequence[Segment], parts: Sequence[Path], target: Path, frames: int = 0
) -> int:
    """The reduce step: `parts` (the encoded `segments`, in order) end to end at `target`
    with `source`'s audio; the number of frames. Nothing is re-encoded: each packet is
    put back at its timestamp in the source. CorruptVideoError when the parts do not fit
    together (other encoder settings, timestamps that do not increase, not `frames`
    frames); then nothing is left under `target`."""
    if not parts or len(parts) != len(segments):
        raise CorruptVideoError("no segments to join, or not one file per segment")
    info = probe(source)
    original = open_input(source)
    written = 0
    try:
        with (
            written_beside(target, "joining the segments failed") as partial,
            av.open(str(parts[0])) as first,
        ):
            template = first.streams.video[0]
            extradata = template.codec_context.extradata
            with av.open(
                str(partial), mode="w", format="mp4", options={"movflags": "+faststart"}
            ) as output:
                video = output.add_stream_from_template(template)
                video.time_base = template.time_base
                video.metadata.clear()
                if info.display_matrix is not None:
                    video.set_display_matrix(list(info.display_matrix))
                audio = (
                    AudioCopy(output, original.streams.audio[0]) if original.streams.audio else None
                )
                output.metadata.clear()
                last_dts = None
                for packet in heapq.merge(
                    _video_packets(parts, [s.window.first or 0 for s in segments], extradata),
                    _audio_packets(original),
                    key=lambda p: float(p.dts * p.time_base),
                ):
                    if packet.stream.type == "audio":
                        if audio is not None:
                            audio.write(output, packet)
                        continue
                    if last_dts is not None and packet.dts <= last_dts:
                        raise CorruptVideoError(
                            f"segments overlap in time at frame {written} (dts {packet.dts})"
                        )
                    last_dts = packet.dts
                    packet.stream = video
                    output.mux(packet)
                    written += 1
                if audio is not None:
                    audio.close(output)
            if frames and written != frames:
                raise CorruptVideoError(f"the segments hold {written} frames, the video {frames}")
    finally:
        original.close()
    return written


def _video_packets(
    parts: Sequence[Path], offsets: Sequence[int], extradata: bytes | None
) -> Iterator[av.Packet]:
    """Every part's video packets in order at their source timestamps, one part open at
    a time."""
    for path, offset in zip(parts, offsets, strict=True):
        with av.open(str(path)) as part:
            stream = part.streams.video[0]
            if stream.codec_context.extradata != extradata:
                raise CorruptVideoError(
                    f"{path.name} was encoded with other settings than the first segment"
                )
            for packet in part.demux(stream):
                if packet.size and packet.dts is not None:
                    packet.dts += offset
                    if packet.pts is not None:
                        packet.pts += offset
                    yield packet


def _audio_packets(original: av.container.InputContainer) -> Iterator[av.Packet]:
    if not original.streams.audio:
        return
    for packet in original.demux(original.streams.audio[0]):
        if packet.size and packet.dts is not None:
            yield packet
