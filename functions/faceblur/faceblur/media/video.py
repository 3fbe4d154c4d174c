"""Anonymise videos: frames streamed in and out through PyAV, audio copied, metadata dropped.

A video frame is a photo with a track id: the same detector and anonymiser as photos,
with `faceblur.media.follow` following faces across frames so that no single frame lets
a face through. Frames are streamed: at most `Tracker.lag` of them are held at a time,
whatever the length of the clip. Reading and writing the file (orientation, probe, audio
copy) is `faceblur.media.container`'s, which frames a run reads and writes
`faceblur.media.window`'s, the encoder's settings `faceblur.media.x264`'s.

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
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from faceblur.anonymise import METHODS, SteadyTones, anonymise
from faceblur.detection.angles import upright
from faceblur.detection.base import Detector, Face
from faceblur.errors import BadRequestError, CorruptVideoError
from faceblur.geometry import Box
from faceblur.media.container import (
    AudioCopy,
    DecodeLimits,
    Orientation,
    check_complete,
    expected_frames,
    frame_of,
    open_input,
    probe,
    written_beside,
)
from faceblur.media.follow import (
    VideoSettings,
    for_video,
    hidden_regions,
    regions_of,
    tracked_frames,
)
from faceblur.media.review import follower_for
from faceblur.media.track import TrackedFrame
from faceblur.media.window import WHOLE, Window, read_window
from faceblur.media.x264 import MAX_CRF, x264_options
from faceblur.options import Options, VideoEdits, check_regions_inside


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
                for frame, writes in read_window(container, orientation, window, sink, limits):
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
