"""Video jobs: a video in the inbox is anonymised by the bucket path, its status kept in S3.

The contract (shared with the page):
- A video's inbox key is `[u/<owner>/]videos/<job>/<file name>`, `<job>` 32 lowercase hex
  chosen by the uploader; a video dropped elsewhere gets the first 32 hex of sha256(key).
  A video is told from a photo by its bytes (the container's signature), never its name.
- Its status is `jobs/[u/<owner>/]<job>.json` in the originals bucket (private), written
  here only.
  "queued" is never written: a job whose inbox object exists with no status yet is queued.
- Never processed inside a synchronous call: the HTTP door only puts the video into the
  inbox (`queue_video`); the bucket event runs the job (`process_video_object`).

Status lives in the bucket, not in memory, so it survives a restart of the function.
The keys and ids are faceblur.store.keys' rules (the page loads them without PyAV or OpenCV).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from faceblur.config import Settings
from faceblur.errors import (
    FaceblurError,
    NotAVideoError,
    NotFoundError,
    TooLargeError,
    UnsupportedError,
)
from faceblur.formats import SNIFF_BYTES, video_type
from faceblur.media.container import DecodeLimits, VideoInfo, probe
from faceblur.media.video import ProgressCallback, VideoResult
from faceblur.options import Options
from faceblur.store.keys import (
    VIDEO_RESULT_TYPE,
    check_job_id,
    inbox_key,
    inbox_name,
    job_of_key,
    new_job_id,
    split_owner,
    status_key,
)
from faceblur.store.s3 import FACES_METADATA, NOTHING_HIDDEN_METADATA, Store

# A status write is one small PUT: written every 2 s, or each time another 5 % of the
# frames is done (whichever comes first), a poller sees the job move without a PUT per frame.
PROGRESS_INTERVAL_SECONDS = 2.0
PROGRESS_STEP = 0.05
# User metadata on a video result beside FACES_METADATA (which counts tracks: distinct faces).
FACE_FRAMES_METADATA = "faceblur-face-frames"
SEALING_REASON = "sealed originals are not supported for videos yet"
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JobStatus:
    """What `jobs/<job>.json` holds (the contract's fields, in its order)."""

    job: str
    state: str  # "running", "done" or "failed"; "queued" is never stored
    frames_done: int = 0
    frames_total: int = 0  # 0: unknown
    result_key: str | None = None
    original_key: str | None = None
    prefix: str = ""
    reason: str | None = None
    updated: str = ""
    name: str = ""  # the video's file name as uploaded (the inbox key's last segment)
    code: str | None = None  # a failed job's error code (errors.py), for programs

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
    stamped = replace(status, updated=_now())
    key = status_key(status.job, status.prefix)
    store.put(settings.bucket_originals, key, stamped.to_bytes(), "application/json")


# A store that writes an object in place (the local s3rver does; MinIO does not) can hand
# a poll the half-written status: read again, briefly, rather than fail the poll.
TORN_READ_TRIES = 5
TORN_READ_PAUSE_SECONDS = 0.1


def read_status(store: Store, settings: Settings, job: str, prefix: str = "") -> JobStatus | None:
    """The status of `job` of the owner of `prefix` ("" where accounts are off)."""
    key = status_key(job, prefix)
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


def job_answer(
    job: str, store: Store, settings: Settings, owner: str | None, now: datetime | None = None
) -> dict:
    """`GET ?job=` 's body. `owner`: the caller's prefix where accounts are on (another
    owner's job is unknown to them), None where they are off. NotFoundError: no such job."""
    check_job_id(job)
    status = read_status(store, settings, job, owner or "")
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
    }


# -- the HTTP door: queue --------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """A video put into the inbox: its bucket event runs the job; a client polls its status."""

    job: str
    status_url: str
    state: str = "queued"


def queue_video(
    data: bytes, mime_type: str, name: str | None, store: Store, settings: Settings, prefix: str
) -> Queued:
    """Put a video sent over HTTP into the inbox, where its bucket event runs the job.

    Refused at once (never queued): over the byte limit (413), sealing on (415), a video
    that cannot be read (415) or over the duration or frame-size limit (413).
    """
    check_size(len(data), settings)
    if settings.seal_public_key:
        raise UnsupportedError(SEALING_REASON)
    name = inbox_name(name, mime_type)
    with tempfile.TemporaryDirectory(prefix="faceblur-video-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            info = probe(path)
        except FaceblurError as error:
            # Truncated or not a video: either way, not a video this service can read.
            raise NotAVideoError(_plain(str(error), folder)) from None
        check_video(info, settings)
        job = new_job_id()
        store.fput(settings.bucket_inbox, inbox_key(prefix, job, name), path, mime_type)
    return Queued(job, f"/function/{settings.function_name}?job={job}")


def _plain(reason: str, folder: str) -> str:
    """A reason without the temporary folder FFmpeg may name."""
    return reason.replace(f"{folder}/", "").replace(folder, "")


# -- the bucket path: run ---------------------------------------------------------------


class VideoAnonymiser(Protocol):
    """faceblur.video.anonymise_video with the door's detector (built once per process)."""

    def anonymise_video(
        self,
        source: Path,
        target: Path,
        options: Options,
        on_progress: ProgressCallback,
        limits: DecodeLimits,
    ) -> VideoResult: ...


def _progress(
    store: Store, settings: Settings, running: JobStatus, clock: Callable[[], float]
) -> ProgressCallback:
    """A callback writing the running status once PROGRESS_INTERVAL_SECONDS have gone by or
    another PROGRESS_STEP of the frames is done since the last write (a short clip that is
    done in a few seconds still shows it moving)."""
    last_time, last_done = [clock()], [0]

    def report(done: int, total: int) -> None:
        now = clock()
        step = max(1, math.ceil(total * PROGRESS_STEP)) if total > 0 else None
        if now - last_time[0] >= PROGRESS_INTERVAL_SECONDS or (
            step is not None and done - last_done[0] >= step
        ):
            last_time[0], last_done[0] = now, done
            write_status(store, settings, replace(running, frames_done=done, frames_total=total))

    return report


def process_video_object(
    key: str,
    anonymiser: VideoAnonymiser,
    store: Store,
    settings: Settings,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, object]:
    """Run the job of the inbox video `key`: its result MP4 and original stored (both or
    neither), the inbox emptied, the status done; or failed with a plain reason, the inbox
    emptied all the same (no face is left lying there) and nothing half-written.

    An unavailable store or model (503) is raised, so that the event is retried.
    """
    job = job_of_key(key)
    prefix, _ = split_owner(key)
    running = JobStatus(job, "running", prefix=prefix, name=key.rsplit("/", 1)[-1])
    with tempfile.TemporaryDirectory(prefix="faceblur-job-") as folder:
        try:
            done = _run(key, running, Path(folder), anonymiser, store, settings, clock)
        except FaceblurError as error:
            if error.status == 503:
                raise
            reason, code = _plain(str(error), folder), error.code
            failed = replace(running, state="failed", reason=reason, code=code)
            write_status(store, settings, failed)
            store.remove(settings.bucket_inbox, key)
            return {"key": key, "job": job, "state": "failed", "reason": reason, "code": code}
    store.remove(settings.bucket_inbox, key)
    return {
        "key": key,
        "job": job,
        "state": "done",
        "original_key": done.original_key,
        "result_key": done.result_key,
    }


def _run(
    key: str,
    running: JobStatus,
    folder: Path,
    anonymiser: VideoAnonymiser,
    store: Store,
    settings: Settings,
    clock: Callable[[], float],
) -> JobStatus:
    """The job's steps in `folder` (removed by the caller); the done status, written."""
    started = clock()
    if settings.seal_public_key:
        raise UnsupportedError(SEALING_REASON)
    inbox = settings.bucket_inbox
    mime_type = video_type(store.head(inbox, key, SNIFF_BYTES)) or "video/mp4"
    source = folder / inbox_name(key, mime_type)
    check_size(store.size(inbox, key) or 0, settings)  # before a byte is downloaded
    store.fget(inbox, key, source, max_bytes=settings.max_video_bytes)
    info = probe(source)
    check_video(info, settings)
    running = replace(running, frames_total=frames_expected(info))
    write_status(store, settings, running)
    options = Options()
    target = folder / "result.mp4"
    result = anonymiser.anonymise_video(
        source,
        target,
        options,
        _progress(store, settings, running, clock),
        decode_limits(settings, started, clock),
    )
    metadata = {FACES_METADATA: str(result.tracks), FACE_FRAMES_METADATA: str(result.face_frames)}
    if not result.face_frames:  # as a photo's: a copy that hides nothing says so
        metadata[NOTHING_HIDDEN_METADATA] = "true"
    pair = store.put_pair(
        source, mime_type, target, VIDEO_RESULT_TYPE, vars(options), metadata, prefix=running.prefix
    )
    done = replace(
        running,
        state="done",
        frames_done=result.frames,
        frames_total=result.frames,
        result_key=pair.result_key,
        original_key=pair.original_key,
    )
    write_status(store, settings, done)
    return done
