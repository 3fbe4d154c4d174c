"""Video jobs: a video in the inbox is anonymised by the bucket path, its status kept in S3.

The contract (shared with the page):
- A video's inbox key is `[u/<owner>/]videos/<job>/<file name>`, `<job>` 32 lowercase hex
  chosen by the uploader; a video dropped elsewhere gets the first 32 hex of sha256(key).
  A video is told from a photo by its bytes (the container's signature), never its name.
- Its status is `jobs/<job>.json` in the originals bucket (private), written by the job's
  calls only.
  "queued" is never written: a job whose inbox object exists with no status yet is queued.
- Never processed inside a synchronous call: the HTTP door only puts the video into the
  inbox (`queue_video`); the bucket event runs the job (`process_video_object`).
- Longer than one segment (`FACEBLUR_VIDEO_SEGMENT_SECONDS`), a job is split (issue 25):
  the event's call plans it and its segments run as calls of their own
  (`faceblur.service.video_segments`).
- The status objects, the limits and a poll's answer: `faceblur.service.video_jobs`.

Status lives in the bucket, not in memory, so it survives a restart of the function.
The keys and ids are faceblur.store.keys' rules (the page loads them without PyAV or OpenCV).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from faceblur.config import Settings
from faceblur.errors import (
    BadRequestError,
    FaceblurError,
    NotAVideoError,
    NotFoundError,
    UnsupportedError,
)
from faceblur.formats import SNIFF_BYTES, video_type
from faceblur.media.container import Orientation, probe
from faceblur.media.review import TrackLog
from faceblur.media.segments import plan_segments
from faceblur.media.video import ProgressCallback
from faceblur.options import Options, VideoEdits, check_regions_inside, parse_edits
from faceblur.sealing import audit
from faceblur.sealing.log import BucketAuditLog
from faceblur.sealing.seal import load_public_key
from faceblur.sealing.tracks import TrackSealer, file_sha256, seal_size
from faceblur.service.video_jobs import (
    FACE_FRAMES_METADATA,
    PROGRESS_INTERVAL_SECONDS,
    PROGRESS_STEP,
    Dispatch,
    JobStatus,
    Queued,
    VideoAnonymiser,
    check_size,
    check_video,
    decode_limits,
    frames_expected,
    gateway_dispatch,
    job_answer,
    plain_reason,
    read_status,
    take_back,
    write_status,
)
from faceblur.service.video_segments import split_job
from faceblur.store.keys import (
    AUDIT_FOLDER,
    VIDEO_RESULT_TYPE,
    edits_key,
    inbox_key,
    inbox_name,
    job_of_key,
    new_job_id,
    split_owner,
    status_key,
    tracks_key,
)
from faceblur.store.s3 import FACES_METADATA, NOTHING_HIDDEN_METADATA, Store

# Where originals are sealed the originals bucket holds no video to render again.
SEALING_REASON = "edits need the original, and originals are sealed here"

# -- the HTTP door: queue --------------------------------------------------------------


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
            raise NotAVideoError(plain_reason(str(error), folder)) from None
        check_video(info, settings)
        job = new_job_id()
        store.fput(settings.bucket_inbox, inbox_key(prefix, job, name), path, mime_type)
    return Queued(job, f"/function/{settings.function_name}?job={job}")


# -- the bucket path: run ---------------------------------------------------------------


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
    ends, state "deleted", leaving nothing of the job (`take_back`).

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
                return take_back(key, running, store, settings)
            reason, code = plain_reason(str(error), folder), error.code
            failed = replace(running, state="failed", reason=reason, code=code)
            write_status(store, settings, failed)
            store.remove(settings.bucket_inbox, key)
            return {"key": key, "job": job, "state": "failed", "reason": reason, "code": code}
    if done.state == "running":  # split: the segments' calls run it, the inbox copy stays
        return {"key": key, "job": job, "state": "running", "segments": done.segments_total}
    if not store.exists(settings.bucket_inbox, key):  # checked after every write of the job
        return take_back(key, done, store, settings)
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
        return split_job(key, running, plan, store, settings, dispatch)
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
