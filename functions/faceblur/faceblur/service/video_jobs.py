"""What every step of a video job shares: its limits, its status objects in the originals
bucket (the job's, and each segment's of a split job), the answer to a poll, and the
calls a job makes (the anonymiser a door passes in, the gateway's async route).

The jobs themselves: `faceblur.service.videos` (the inbox, a whole job, review) and
`faceblur.service.video_segments` (a split job's segments and their join).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from faceblur.config import Settings
from faceblur.errors import NotFoundError, TooLargeError, UnavailableError
from faceblur.media.container import DecodeLimits, VideoInfo
from faceblur.media.segments import Segment
from faceblur.media.video import FrameObserver, ProgressCallback, VideoResult
from faceblur.options import Options, VideoEdits
from faceblur.store.keys import (
    check_job_id,
    inbox_key,
    job_keys,
    segment_status_key,
    status_key,
)
from faceblur.store.s3 import Store

# A status write is one small PUT: written every 2 s, or each time another 5 % of the
# frames is done (whichever comes first), a poller sees the job move without a PUT per frame.
PROGRESS_INTERVAL_SECONDS = 2.0
PROGRESS_STEP = 0.05
# User metadata on a video result beside FACES_METADATA (which counts tracks: distinct faces).
FACE_FRAMES_METADATA = "faceblur-face-frames"
# A running job writes its status every few seconds while frames come out; one silent
# for this long was stopped (the call timed out, the function restarted) and never ends.
STALE_SECONDS = 120
STALE_REASON = "the job stopped before it was done (a timeout or a restart); send the video again"


# -- limits ---------------------------------------------------------------------------


def check_size(size: int, settings: Settings) -> None:
    if size > settings.max_video_bytes:
        raise TooLargeError(
            f"a video of {size} bytes; the limit is {settings.max_video_bytes} bytes",
            "max_video_bytes",
        )


def check_video(info: VideoInfo, settings: Settings) -> None:
    """TooLargeError when the video's header says it is longer or its first frame larger
    than the limits. A header may not say (or lie): `decode_limits` hold while decoding."""
    if info.frames > settings.max_video_frames:
        raise TooLargeError(
            f"a video of {info.frames} frames; the limit is {settings.max_video_frames}",
            "max_video_frames",
        )
    if info.duration > settings.max_video_seconds:
        raise TooLargeError(
            f"a video of {info.duration:.0f} seconds; the limit is "
            f"{settings.max_video_seconds} seconds",
            "max_video_seconds",
        )
    pixels = info.width * info.height
    if pixels > settings.max_video_pixels:
        raise TooLargeError(
            f"frames of {info.width}x{info.height} pixels; the limit is "
            f"{settings.max_video_pixels} pixels per frame",
            "max_video_pixels",
        )


def decode_limits(
    settings: Settings, started: float, clock: Callable[[], float] = time.monotonic
) -> DecodeLimits:
    """The limits every decoded frame of a job is held to; its wall-clock budget counts
    from `started` (a `clock()` time)."""
    return DecodeLimits(
        max_frames=settings.max_video_frames,
        max_seconds=settings.max_video_seconds,
        max_pixels=settings.max_video_pixels,
        deadline=started + settings.video_job_seconds,
        clock=clock,
    )


def frames_expected(info: VideoInfo) -> int:
    """Frames the container announces (or its duration implies); 0 when unknown."""
    return info.frames or (int(info.duration * info.rate) if info.duration else 0)


# -- status ---------------------------------------------------------------------------


def now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JobStatus:
    """What `jobs/<job>.json` holds (the contract's fields, in its order)."""

    job: str
    state: str  # "running", "done" or "failed"; "queued" only for a render with edits
    frames_done: int = 0
    frames_total: int = 0  # 0: unknown
    result_key: str | None = None
    original_key: str | None = None
    prefix: str = ""
    reason: str | None = None
    updated: str = ""
    name: str = ""  # the video's file name as uploaded (the inbox key's last segment)
    code: str | None = None  # a failed job's error code (errors.py), for programs
    segments_done: int = 0  # a split job's: told from its segments' own status objects
    segments_total: int = 0  # 0: not split (one call runs the whole video)
    source_key: str | None = None  # a split job's inbox key, which its segment calls read
    plan: list[dict] | None = None  # a split job's segments (media.segments.Segment)
    # A split job's secret for its segments' draws (media.segments.new_seed): beside the
    # original it would let nobody learn more than the original; dropped with the plan.
    seed: int | None = None
    # A render with a reviewer's edits (queued, running, failed): the result it replaces,
    # so that deleting that result finds the job while it waits or runs.
    replaces: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @staticmethod
    def from_bytes(data: bytes) -> JobStatus:
        document = json.loads(data)
        fields = JobStatus.__dataclass_fields__
        return JobStatus(**{name: document[name] for name in fields if name in document})


def as_seen(status: JobStatus, now: datetime) -> JobStatus:
    """The status a client is told: a running job silent for STALE_SECONDS has failed."""
    if status.state != "running" or not status.updated:
        return status
    updated = datetime.fromisoformat(status.updated.replace("Z", "+00:00"))
    if (now - updated).total_seconds() <= STALE_SECONDS:
        return status
    return replace(status, state="failed", reason=STALE_REASON, code="stale")


def write_status(store: Store, settings: Settings, status: JobStatus) -> None:
    stamped = replace(status, updated=now_stamp())
    store.put(
        settings.bucket_originals, status_key(status.job), stamped.to_bytes(), "application/json"
    )


# A store that writes an object in place (the local s3rver does; MinIO does not) can hand
# a poll the half-written status: read again, briefly, rather than fail the poll.
TORN_READ_TRIES = 5
TORN_READ_PAUSE_SECONDS = 0.1


def read_status(store: Store, settings: Settings, job: str) -> JobStatus | None:
    key = status_key(job)
    for attempt in range(TORN_READ_TRIES):
        if not store.exists(settings.bucket_originals, key):
            return None
        try:
            return JobStatus.from_bytes(store.read(settings.bucket_originals, key))
        except (ValueError, KeyError, TypeError):  # torn JSON (JSONDecodeError is a ValueError)
            if attempt + 1 == TORN_READ_TRIES:
                raise
            time.sleep(TORN_READ_PAUSE_SECONDS)
    return None


# -- a split job's segments: one status object each ------------------------------------


@dataclass(frozen=True)
class SegmentStatus:
    """What `jobs/<job>/segments/<n>.json` holds: written by the call running segment n."""

    state: str  # "queued", "running", "done"
    tries: int = 0  # calls started on it
    frames_done: int = 0
    frames: int = 0
    face_frames: int = 0
    tracks: int = 0
    reason: str | None = None  # the last try's failure
    updated: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(replace(self, updated=now_stamp()))).encode()

    @staticmethod
    def from_bytes(data: bytes) -> SegmentStatus:
        document = json.loads(data)
        fields = SegmentStatus.__dataclass_fields__
        return SegmentStatus(**{name: document[name] for name in fields if name in document})


def write_segment(
    store: Store, settings: Settings, job: str, index: int, status: SegmentStatus
) -> None:
    key = segment_status_key(job, index)
    store.put(settings.bucket_originals, key, status.to_bytes(), "application/json")


def read_segment(store: Store, settings: Settings, job: str, index: int) -> SegmentStatus:
    key = segment_status_key(job, index)
    for attempt in range(TORN_READ_TRIES):
        if not store.exists(settings.bucket_originals, key):
            return SegmentStatus("queued")
        try:
            return SegmentStatus.from_bytes(store.read(settings.bucket_originals, key))
        except (ValueError, KeyError, TypeError):
            if attempt + 1 == TORN_READ_TRIES:
                raise
            time.sleep(TORN_READ_PAUSE_SECONDS)
    return SegmentStatus("queued")


def with_segments(store: Store, settings: Settings, status: JobStatus) -> JobStatus:
    """A split job's progress, summed from its segments' objects; its latest sign of life
    (now, while a segment waits for a free replica: a long job on a busy cluster waits
    without being stale)."""
    done = frames = 0
    updated = status.updated
    for index in range(status.segments_total):
        segment = read_segment(store, settings, status.job, index)
        done += segment.state == "done"
        frames += segment.frames if segment.state == "done" else segment.frames_done
        updated = max(updated, now_stamp() if segment.state == "queued" else segment.updated)
    return replace(status, segments_done=done, frames_done=frames, updated=updated)


# -- a poll's answer ------------------------------------------------------------------


def job_answer(
    job: str, store: Store, settings: Settings, owner: str | None, now: datetime | None = None
) -> dict:
    """`GET ?job=` 's body. `owner`: the caller's prefix where accounts are on (another
    owner's job is unknown to them), None where they are off. NotFoundError: no such job."""
    check_job_id(job)
    status = read_status(store, settings, job)
    if status is not None and status.state == "running" and status.segments_total:
        status = with_segments(store, settings, status)
    if status is not None:
        status = as_seen(status, now or datetime.now(UTC))
    if status is not None and owner is not None and status.prefix != owner:
        status = None
    if status is None:
        waiting = store.keys(settings.bucket_inbox, prefix=inbox_key(owner or "", job, ""))
        if not waiting:
            raise NotFoundError(f"no job {job}")
        status = JobStatus(job, "queued", prefix=owner or "", name=waiting[0].rsplit("/", 1)[-1])
    done = status.state == "done" and status.result_key
    return {
        "job": status.job,
        "state": status.state,
        "frames_done": status.frames_done,
        "frames_total": status.frames_total,
        "result_key": status.result_key,
        "result_url": store.result_url(status.result_key) if done else None,
        "reason": status.reason,
        "code": status.code,
        "prefix": status.prefix,
        "name": status.name,
        "segments_done": status.segments_done,
        "segments_total": status.segments_total,
    }


@dataclass(frozen=True)
class Queued:
    """A video put into the inbox: its bucket event runs the job; a client polls its status."""

    job: str
    status_url: str
    state: str = "queued"


def plain_reason(reason: str, folder: str) -> str:
    """A reason without the temporary folder FFmpeg may name."""
    return reason.replace(f"{folder}/", "").replace(folder, "")


# -- what a job calls ------------------------------------------------------------------


class VideoAnonymiser(Protocol):
    """faceblur.video.anonymise_video with the door's detector (built once per process)."""

    def anonymise_video(
        self,
        source: Path,
        target: Path,
        options: Options,
        on_progress: ProgressCallback,
        edits: VideoEdits | None = None,
        observe: FrameObserver | None = None,
        limits: DecodeLimits | None = None,
    ) -> VideoResult: ...

    def encode_segment(
        self,
        source: Path,
        target: Path,
        segment: Segment,
        options: Options,
        on_progress: ProgressCallback,
        seed: int | None = None,
    ) -> VideoResult: ...


# Posts one segment's call (a small JSON payload, never video bytes) to the function's
# async route; the queue worker hands it to whichever replica is free.
Dispatch = Callable[[dict], None]
DISPATCH_TIMEOUT_SECONDS = 10


def gateway_dispatch(settings: Settings) -> Dispatch:
    """Calls of the function through the gateway's async route (`FACEBLUR_GATEWAY_URL`)."""
    url = f"{settings.gateway_url}/async-function/{settings.function_name}"

    def dispatch(payload: dict) -> None:
        headers = {"Content-Type": "application/json"}
        if settings.webhook_token:  # the stack's own calls carry its token, as events do
            headers["Authorization"] = f"Bearer {settings.webhook_token}"
        request = urllib.request.Request(url, json.dumps(payload).encode(), headers)
        try:
            with urllib.request.urlopen(request, timeout=DISPATCH_TIMEOUT_SECONDS) as answer:
                answer.read()
        except OSError as error:  # URLError and HTTPError are OSErrors
            raise UnavailableError(f"the gateway did not take a segment's call: {error}") from None

    return dispatch


def take_back(key: str, status: JobStatus, store: Store, settings: Settings) -> dict:
    """A job deleted while it ran (its inbox copy is gone): remove what this run wrote,
    the pair it stored (the video was deleted, with its earlier result of the same keys),
    its status, tracks and edits; nothing of the job is left."""
    if status.result_key:
        store.remove(settings.bucket_results, status.result_key)
    if status.original_key:
        store.remove(settings.bucket_originals, status.original_key)
    originals = settings.bucket_originals
    for part in job_keys(status.job):
        if store.exists(originals, part):
            store.remove(originals, part)
    reason = "the video was deleted while its job waited or ran"
    return {"key": key, "job": status.job, "state": "deleted", "reason": reason, "code": "gone"}
