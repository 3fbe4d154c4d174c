"""Video jobs: a video in the inbox is anonymised by the bucket path, its status kept in S3.

The contract (shared with the page):
- A video's inbox key is `[u/<owner>/]videos/<job>/<file name>`, `<job>` 32 lowercase hex
  chosen by the uploader; a video dropped elsewhere gets the first 32 hex of sha256(key).
  A video is told from a photo by its bytes (the container's signature), never its name.
- Its status is `jobs/<job>.json` in the originals bucket (private), written here only.
  "queued" is never written: a job whose inbox object exists with no status yet is queued.
- Never processed inside a synchronous call: the HTTP door only puts the video into the
  inbox (`queue_video`); the bucket event runs the job (`process_video_object`).
- Longer than one segment (`FACEBLUR_VIDEO_SEGMENT_SECONDS`), a job is split (issue 25):
  the event's call plans it (`faceblur.media.segments`) and posts one call per segment to
  the function's async route (`process_segment`), which any free replica takes; each
  segment keeps its own status object (`jobs/<job>/segments/<n>.json`: no two workers
  write one object), is retried alone up to `FACEBLUR_VIDEO_SEGMENT_TRIES` calls, and the
  call that finishes the last one joins them (no re-encoding), stores the pair and
  removes the segments and the inbox copy. A segment out of tries fails the job with its
  reason, nothing of it kept.

Status lives in the bucket, not in memory, so it survives a restart of the function.
The keys and ids are faceblur.store.keys' rules (the page loads them without PyAV or OpenCV).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from faceblur.config import Settings
from faceblur.errors import (
    BadRequestError,
    FaceblurError,
    NotAVideoError,
    NotFoundError,
    TooLargeError,
    UnavailableError,
    UnsupportedError,
)
from faceblur.formats import SNIFF_BYTES, video_type
from faceblur.media.container import DecodeLimits, Orientation, VideoInfo, probe
from faceblur.media.review import TrackLog
from faceblur.media.segments import Plan, Segment, join_segments, new_seed, plan_segments
from faceblur.media.video import FrameObserver, ProgressCallback, VideoResult
from faceblur.options import Options, VideoEdits, check_regions_inside, parse_edits
from faceblur.sealing import audit
from faceblur.sealing.log import BucketAuditLog
from faceblur.sealing.seal import load_public_key
from faceblur.sealing.tracks import TrackSealer, file_sha256, seal_size
from faceblur.store.keys import (
    AUDIT_FOLDER,
    VIDEO_RESULT_TYPE,
    check_job_id,
    edits_key,
    inbox_key,
    inbox_name,
    job_keys,
    job_of_key,
    new_job_id,
    segment_status_key,
    segment_video_key,
    segments_prefix,
    split_owner,
    status_key,
    tracks_key,
)
from faceblur.store.s3 import FACES_METADATA, NOTHING_HIDDEN_METADATA, Store

# A status write is one small PUT: written every 2 s, or each time another 5 % of the
# frames is done (whichever comes first), a poller sees the job move without a PUT per frame.
PROGRESS_INTERVAL_SECONDS = 2.0
PROGRESS_STEP = 0.05
# User metadata on a video result beside FACES_METADATA (which counts tracks: distinct faces).
FACE_FRAMES_METADATA = "faceblur-face-frames"
# Where originals are sealed the originals bucket holds no video to render again.
SEALING_REASON = "edits need the original, and originals are sealed here"
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
    stamped = replace(status, updated=_now())
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


def job_answer(
    job: str, store: Store, settings: Settings, owner: str | None, now: datetime | None = None
) -> dict:
    """`GET ?job=` 's body. `owner`: the caller's prefix where accounts are on (another
    owner's job is unknown to them), None where they are off. NotFoundError: no such job."""
    check_job_id(job)
    status = read_status(store, settings, job)
    if status is not None and status.state == "running" and status.segments_total:
        status = _with_segments(store, settings, status)
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

    Refused at once (never queued): over the byte limit (413), a video that cannot be
    read (415) or over the duration or frame-size limit (413).
    """
    check_size(len(data), settings)
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
    dispatch: Dispatch | None = None,
) -> dict[str, object]:
    """Run the job of the inbox video `key`: its result MP4 and original stored (both or
    neither), the inbox emptied, the status done; or failed with a plain reason, the inbox
    emptied all the same (no face is left lying there) and nothing half-written. A video
    of more than one segment is split instead: its segments' calls are posted
    (`dispatch`, by default the gateway's async route) and the job stays running.

    The inbox copy is the job's ticket: it is removed only once the job is done or failed.
    Deleting the video (`Store.remove_photo`, `accounts.remove_owned`) removes it first,
    so a run that finds it gone was deleted meanwhile: it takes back what it wrote and
    ends, state "deleted", leaving nothing of the job (`_take_back`).

    An unavailable store or model (503) is raised, so that the event is retried.
    """
    job = job_of_key(key)
    prefix, _ = split_owner(key)
    before = read_status(store, settings, job)  # a re-render's queued status names its result
    replaces = before.replaces if before is not None and before.prefix == prefix else None
    running = JobStatus(
        job, "running", prefix=prefix, name=key.rsplit("/", 1)[-1], replaces=replaces
    )
    dispatch = dispatch or gateway_dispatch(settings)
    with tempfile.TemporaryDirectory(prefix="faceblur-job-") as folder:
        try:
            done = _run(key, running, Path(folder), anonymiser, store, settings, clock, dispatch)
        except FaceblurError as error:
            if error.status == 503:
                raise
            if not store.exists(settings.bucket_inbox, key):
                return _take_back(key, running, store, settings)
            reason, code = _plain(str(error), folder), error.code
            failed = replace(running, state="failed", reason=reason, code=code)
            write_status(store, settings, failed)
            store.remove(settings.bucket_inbox, key)
            return {"key": key, "job": job, "state": "failed", "reason": reason, "code": code}
    if done.state == "running":  # split: the segments' calls run it, the inbox copy stays
        return {"key": key, "job": job, "state": "running", "segments": done.segments_total}
    if not store.exists(settings.bucket_inbox, key):  # checked after every write of the job
        return _take_back(key, done, store, settings)
    store.remove(settings.bucket_inbox, key)
    return {
        "key": key,
        "job": job,
        "state": "done",
        "original_key": done.original_key,
        "result_key": done.result_key,
    }


def _take_back(key: str, status: JobStatus, store: Store, settings: Settings) -> dict:
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


def _run(
    key: str,
    running: JobStatus,
    folder: Path,
    anonymiser: VideoAnonymiser,
    store: Store,
    settings: Settings,
    clock: Callable[[], float],
    dispatch: Dispatch,
) -> JobStatus:
    """The job's steps in `folder` (removed by the caller); the done status, written (or
    the running one of a split job, its segments' calls posted).

    Where originals are sealed, the originals bucket gets the seal (each track's pixels,
    faceblur.sealing.tracks) instead of the video; such a job, and one with a reviewer's
    edits, runs whole (not split): its tracks are followed across the whole clip.
    """
    started = clock()
    inbox = settings.bucket_inbox
    mime_type = video_type(store.head(inbox, key, SNIFF_BYTES)) or "video/mp4"
    source = folder / inbox_name(key, mime_type)
    check_size(store.size(inbox, key) or 0, settings)  # before a byte is downloaded
    store.fget(inbox, key, source, max_bytes=settings.max_video_bytes)
    info = probe(source)
    check_video(info, settings)
    edits = read_edits(store, settings, running.job)
    plan = plan_segments(source, settings.video_segment_seconds)
    if len(plan.segments) > 1 and edits is None and not settings.seal_public_key:
        return _split(key, running, plan, store, settings, dispatch)
    running = replace(running, frames_total=frames_expected(info))
    write_status(store, settings, running)
    options = Options()
    target = folder / "result.mp4"
    orientation = Orientation.from_matrix(info.display_matrix)
    tracks = TrackLog(orientation)
    sealed_path = folder / "result.sealed"
    with sealed_path.open("wb") as sealed_file:
        sealer = (
            TrackSealer(sealed_file, load_public_key(settings.seal_public_key), *seal_size(source))
            if settings.seal_public_key
            else None
        )

        def observe(shown, tracked, regions) -> None:
            tracks.add(shown, tracked, regions)
            if sealer is not None:
                sealer.add(shown, tracked, regions)

        result = anonymiser.anonymise_video(
            source,
            target,
            options,
            _progress(store, settings, running, clock),
            edits=edits,
            observe=observe,
            limits=decode_limits(settings, started, clock),
        )
        if sealer is not None:
            sealer.finish(file_sha256(target))
    # The seal is face crops, compressed: small beside the video it replaces.
    sealed = sealed_path.read_bytes() if sealer is not None else None
    metadata = {FACES_METADATA: str(result.tracks), FACE_FRAMES_METADATA: str(result.face_frames)}
    if not result.face_frames:  # as a photo's: a copy that hides nothing says so
        metadata[NOTHING_HIDDEN_METADATA] = "true"
    pair = store.put_pair(
        source,
        mime_type,
        target,
        VIDEO_RESULT_TYPE,
        vars(options),
        metadata,
        prefix=running.prefix,
        sealed=sealed,
    )
    # Boxes only, no pixels: the page's track list; private like the status. Boxes and
    # edits are in the pixels as stored (width x height); `orientation` (1 to 8,
    # faceblur.orientation) says how a player shows them, for a client to draw on it.
    review = {
        "job": running.job,
        "rate": float(info.rate),
        "width": info.width,
        "height": info.height,
        "orientation": orientation.number,
        "tracks": [record.to_json() for record in tracks.records()],
        "edits": edits.to_json() if edits is not None else None,
    }
    store.put(
        settings.bucket_originals,
        tracks_key(running.job),
        json.dumps(review).encode(),
        "application/json",
    )
    done = replace(
        running,
        state="done",
        frames_done=result.frames,
        frames_total=result.frames,
        result_key=pair.result_key,
        original_key=pair.original_key,
        replaces=None,
    )
    write_status(store, settings, done)
    return done


# -- a split job: segments (map) and their join (reduce) ----------------------------------


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
        return json.dumps(asdict(replace(self, updated=_now()))).encode()

    @staticmethod
    def from_bytes(data: bytes) -> SegmentStatus:
        document = json.loads(data)
        fields = SegmentStatus.__dataclass_fields__
        return SegmentStatus(**{name: document[name] for name in fields if name in document})


def _write_segment(
    store: Store, settings: Settings, job: str, index: int, status: SegmentStatus
) -> None:
    key = segment_status_key(job, index)
    store.put(settings.bucket_originals, key, status.to_bytes(), "application/json")


def _read_segment(store: Store, settings: Settings, job: str, index: int) -> SegmentStatus:
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


def segment_payload(job: str, index: int) -> dict:
    """The body of one segment's call: names only; the rest is read from the job's status."""
    return {"segment": {"job": job, "index": index}}


def _split(
    key: str, running: JobStatus, plan: Plan, store: Store, settings: Settings, dispatch: Dispatch
) -> JobStatus:
    running = replace(
        running,
        frames_total=plan.frames,
        segments_total=len(plan.segments),
        source_key=key,
        plan=[segment.to_dict() for segment in plan.segments],
        seed=new_seed(),
    )
    for segment in plan.segments:
        _write_segment(store, settings, running.job, segment.index, SegmentStatus("queued"))
    write_status(store, settings, running)
    for segment in plan.segments:
        dispatch(segment_payload(running.job, segment.index))
    return running


def _with_segments(store: Store, settings: Settings, status: JobStatus) -> JobStatus:
    """A split job's progress, summed from its segments' objects; its latest sign of life
    (now, while a segment waits for a free replica: a long job on a busy cluster waits
    without being stale)."""
    done = frames = 0
    updated = status.updated
    for index in range(status.segments_total):
        segment = _read_segment(store, settings, status.job, index)
        done += segment.state == "done"
        frames += segment.frames if segment.state == "done" else segment.frames_done
        updated = max(updated, _now() if segment.state == "queued" else segment.updated)
    return replace(status, segments_done=done, frames_done=frames, updated=updated)


def process_segment(
    payload: dict,
    anonymiser: VideoAnonymiser,
    store: Store,
    settings: Settings,
    clock: Callable[[], float] = time.monotonic,
    dispatch: Dispatch | None = None,
) -> dict[str, object]:
    """One segment's call (the map step), then the join when it was the last one.

    A failed try is posted again until the segment has had `video_segment_tries` calls;
    then the job fails with the segment's reason and nothing of it is kept. A call for a
    job that is no longer running does nothing (a repeated or late delivery).
    """
    try:
        job, index = check_job_id(str(payload["job"])), int(payload["index"])
    except (KeyError, TypeError, ValueError):
        raise BadRequestError('"segment" needs "job" and "index"', "bad_segment") from None
    dispatch = dispatch or gateway_dispatch(settings)
    status = read_status(store, settings, job)
    if status is None or status.state != "running" or not status.plan:
        return {"job": job, "segment": index, "state": "skipped"}
    if not 0 <= index < len(status.plan):
        raise BadRequestError(f"job {job} has no segment {index}", "bad_segment")
    segment = Segment.from_dict(status.plan[index])
    before = _read_segment(store, settings, job, index)
    if before.state == "done":
        return {"job": job, "segment": index, "state": "done"}
    tries = before.tries + 1
    running = SegmentStatus("running", tries, frames=segment.frames)
    _write_segment(store, settings, job, index, running)
    with tempfile.TemporaryDirectory(prefix="faceblur-segment-") as folder:
        try:
            result = _hide_segment(
                status, segment, tries, Path(folder), anonymiser, store, settings
            )
        except FaceblurError as error:
            if error.status == 503:
                raise
            if _deleted_meanwhile(status, store, settings):
                return _take_back_split(status, store, settings)
            reason = _plain(str(error), folder)
            if tries < settings.video_segment_tries:
                retry = replace(running, state="queued", reason=reason)
                _write_segment(store, settings, job, index, retry)
                dispatch(segment_payload(job, index))
                return {"job": job, "segment": index, "state": "retried", "reason": reason}
            return _fail_split(status, index, reason, error.code, store, settings)
    done = replace(
        running,
        state="done",
        frames_done=result.frames,
        face_frames=result.face_frames,
        tracks=result.tracks,
    )
    _write_segment(store, settings, job, index, done)
    if _deleted_meanwhile(status, store, settings):  # checked after the segment's writes
        return _take_back_split(status, store, settings)
    if _with_segments(store, settings, status).segments_done < status.segments_total:
        return {"job": job, "segment": index, "state": "done"}
    return _join(status, store, settings)


def _deleted_meanwhile(status: JobStatus, store: Store, settings: Settings) -> bool:
    """Whether a split job's ticket, its inbox copy, is gone: the video (or its owner's
    account) was deleted while a segment or the join ran."""
    assert status.source_key is not None
    return not store.exists(settings.bucket_inbox, status.source_key)


def _take_back_split(status: JobStatus, store: Store, settings: Settings) -> dict:
    """A split job deleted while one of its calls ran: what that call wrote (segments, or
    the join's pair and status) goes, as the rest of the job went with the delete."""
    _remove_segments(status, store, settings)
    assert status.source_key is not None
    return _take_back(status.source_key, status, store, settings)


def _hide_segment(
    status: JobStatus,
    segment: Segment,
    tries: int,
    folder: Path,
    anonymiser: VideoAnonymiser,
    store: Store,
    settings: Settings,
) -> VideoResult:
    assert status.source_key is not None
    source = folder / inbox_name(status.name)
    store.fget(settings.bucket_inbox, status.source_key, source, max_bytes=settings.max_video_bytes)
    target = folder / "segment.mp4"
    progress = _segment_progress(store, settings, status.job, segment, tries)
    result = anonymiser.encode_segment(source, target, segment, Options(), progress, status.seed)
    key = segment_video_key(status.job, segment.index)
    store.fput(settings.bucket_originals, key, target, VIDEO_RESULT_TYPE)
    return result


def _segment_progress(
    store: Store, settings: Settings, job: str, segment: Segment, tries: int
) -> ProgressCallback:
    """The segment's own status written at most every PROGRESS_INTERVAL_SECONDS."""
    last = [time.monotonic()]

    def report(done: int, total: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_INTERVAL_SECONDS:
            last[0] = time.monotonic()
            now = SegmentStatus("running", tries, frames_done=done, frames=segment.frames)
            _write_segment(store, settings, job, segment.index, now)

    return report


def _join(status: JobStatus, store: Store, settings: Settings) -> dict[str, object]:
    """The reduce step: the segments joined (remuxed, the source's audio copied once),
    the pair stored, the segments and the inbox copy removed, the job done."""
    assert status.source_key is not None and status.plan is not None
    latest = read_status(store, settings, status.job)
    if latest is None or latest.state != "running":  # another call's join came first
        return {"job": status.job, "state": latest.state if latest else "gone"}
    segments = [Segment.from_dict(document) for document in status.plan]
    originals = settings.bucket_originals
    with tempfile.TemporaryDirectory(prefix="faceblur-join-") as folder:
        mime_type = video_type(store.head(settings.bucket_inbox, status.source_key, SNIFF_BYTES))
        source = Path(folder) / inbox_name(status.name, mime_type or "video/mp4")
        store.fget(settings.bucket_inbox, status.source_key, source, settings.max_video_bytes)
        parts = []
        for segment in segments:
            part = Path(folder) / f"segment-{segment.index:05d}.mp4"
            store.fget(originals, segment_video_key(status.job, segment.index), part)
            parts.append(part)
        target = Path(folder) / "result.mp4"
        try:
            frames = join_segments(source, segments, parts, target, status.frames_total)
        except FaceblurError as error:
            return _fail_split(status, -1, _plain(str(error), folder), error.code, store, settings)
        counts = [_read_segment(store, settings, status.job, s.index) for s in segments]
        # Track ids are each segment's own: a face crossing a border is counted in both.
        metadata = {
            FACES_METADATA: str(sum(c.tracks for c in counts)),
            FACE_FRAMES_METADATA: str(sum(c.face_frames for c in counts)),
        }
        options = Options()
        pair = store.put_pair(
            source,
            mime_type or "video/mp4",
            target,
            VIDEO_RESULT_TYPE,
            vars(options),
            metadata,
            prefix=status.prefix,
        )
    done = replace(
        status,
        state="done",
        frames_done=frames,
        frames_total=frames,
        segments_done=status.segments_total,
        result_key=pair.result_key,
        original_key=pair.original_key,
        plan=None,
        seed=None,
    )
    write_status(store, settings, done)
    if _deleted_meanwhile(status, store, settings):  # checked after the join's writes
        return _take_back_split(done, store, settings)
    _remove_segments(status, store, settings)
    return {"job": status.job, "state": "done", "result_key": pair.result_key}


def _fail_split(
    status: JobStatus, index: int, reason: str, code: str, store: Store, settings: Settings
) -> dict[str, object]:
    where = f"segment {index + 1} of {status.segments_total}" if index >= 0 else "the join"
    reason = f"{where}: {reason}"
    failed = replace(status, state="failed", reason=reason, code=code, plan=None, seed=None)
    write_status(store, settings, failed)
    _remove_segments(status, store, settings)
    return {"job": status.job, "state": "failed", "reason": reason, "code": code}


def _remove_segments(status: JobStatus, store: Store, settings: Settings) -> None:
    for key in store.keys(settings.bucket_originals, prefix=segments_prefix(status.job)):
        store.remove(settings.bucket_originals, key)
    if status.source_key is not None:
        store.remove(settings.bucket_inbox, status.source_key)


# -- review: a finished job's tracks, and a new render with a reviewer's edits ----------------


def read_edits(store: Store, settings: Settings, job: str) -> VideoEdits | None:
    """The edits queued for job `job`'s next render; None when there are none."""
    key = edits_key(job)
    if not store.exists(settings.bucket_originals, key):
        return None
    return parse_edits(store.read(settings.bucket_originals, key))


def _finished(job: str, store: Store, settings: Settings, owner: str | None) -> JobStatus:
    """The done status of `job`, the caller's own: NotFoundError for a job unknown to
    them, BadRequestError (`job_not_done`) for one not finished."""
    state = job_answer(job, store, settings, owner)["state"]
    status = read_status(store, settings, job)
    if state != "done" or status is None or not status.original_key:
        raise BadRequestError(f"job {job} is {state}, not done", "job_not_done")
    return status


def tracks_answer(job: str, store: Store, settings: Settings, owner: str | None) -> dict:
    """`GET ?job=ID&tracks=1`'s body: every track of a finished job (the lines `faceblur
    tracks` prints, in pixels of the video as stored) and the edits its result has."""
    _finished(job, store, settings, owner)
    key = tracks_key(job)
    if not store.exists(settings.bucket_originals, key):
        raise NotFoundError(
            f"no tracks were kept for job {job} (split into segments, or done before tracks "
            "were kept); send edits to render it whole"
        )
    return json.loads(store.read(settings.bucket_originals, key))


def queue_edits(
    job: str,
    edits: object,
    store: Store,
    settings: Settings,
    owner: str | None,
    reason: object = None,
) -> Queued:
    """`POST {"job": ID, "edits": {...}}`: render the finished job's original again with
    `edits`; its result replaces the old one (same key) once done.

    The original goes back into the inbox as the job's video (its bucket event runs it as
    any job) and the status reads "queued", naming the result it replaces (so deleting
    that result finds the job), until it runs. Deleted while its copy was going up (the
    status is gone once it is there): the copy is taken back and the job is not found.
    Each track shown is an entry of the audit log in the originals bucket (who: the
    owner; why: `reason`, required then; which track; the original's hash), written
    before the render is queued.
    """
    if settings.seal_public_key:
        raise UnsupportedError(SEALING_REASON)
    parsed = parse_edits(edits)
    status = _finished(job, store, settings, owner)
    if reason is not None and not isinstance(reason, str):
        raise BadRequestError("reason must be text", "bad_option", option="reason")
    if parsed.show and not (reason or "").strip():
        raise BadRequestError('showing a person is logged: say why in "reason"', "reason_required")
    originals = settings.bucket_originals
    with tempfile.TemporaryDirectory(prefix="faceblur-edit-") as folder:
        path = Path(folder) / status.name
        store.fget(originals, status.original_key, path, max_bytes=settings.max_video_bytes)
        with path.open("rb") as head:
            mime_type = video_type(head.read(SNIFF_BYTES)) or "video/mp4"
        # Refused now rather than failing the job (and losing its result) later.
        info = probe(path)
        check_regions_inside([edit.region for edit in parsed.hide], info.width, info.height)
        if parsed.show:
            _log_shown(store, settings, owner, str(reason).strip(), path, sorted(parsed.show))
        edits_document = json.dumps(parsed.to_json()).encode()
        store.put(originals, edits_key(job), edits_document, "application/json")
        # Before the copy: its event may run the job at once, and finds this status.
        queued = JobStatus(
            job, "queued", prefix=status.prefix, name=status.name, replaces=status.result_key
        )
        write_status(store, settings, queued)
        waiting = inbox_key(status.prefix, job, status.name)
        try:
            store.fput(settings.bucket_inbox, waiting, path, mime_type)
        except FaceblurError:
            with contextlib.suppress(FaceblurError):
                write_status(store, settings, status)  # not queued after all: done as it was
            raise
    if not store.exists(originals, status_key(job)):  # deleted meanwhile (Store.remove_jobs)
        store.remove(settings.bucket_inbox, waiting)
        raise NotFoundError(f"no job {job}")
    return Queued(job, f"/function/{settings.function_name}?job={job}")


def _log_shown(
    store: Store, settings: Settings, owner: str | None, reason: str, original: Path, shown: list
) -> None:
    """One audit entry per track shown: the chain is checked first (nothing is shown under
    a broken log)."""
    # With the function's audit key every write signs the log's head (a cut tail is seen);
    # without it the chain alone is kept (docs/sealing.md).
    key = audit.load_audit_private_key(settings.audit_key.encode()) if settings.audit_key else None
    public_key = key.public_key() if key is not None else None
    log = BucketAuditLog(store, settings.bucket_originals, AUDIT_FOLDER, public_key)
    log.entries()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    source = file_sha256(original)
    for track in shown:
        log.append(
            lambda last, track=track: audit.audit_entry(
                last,
                time=now,
                operator=owner or "(accounts off)",
                reason=reason,
                outcome="shown",
                result_sha256=source,
                sealed_sha256=None,
                face=None,
                track=track,
            ),
            key,
        )
