"""A split video job (issue 25): its segments' calls (map) and their join (reduce).

The event's call of a job longer than one segment plans it (`faceblur.media.segments`)
and posts one call per segment to the function's async route (`process_segment`), which
any free replica takes; each segment keeps its own status object
(`jobs/<job>/segments/<n>.json`: no two workers write one object), is retried alone up to
`FACEBLUR_VIDEO_SEGMENT_TRIES` calls, and the call that finishes the last one joins them
(no re-encoding), stores the pair and removes the segments and the inbox copy. A segment
out of tries fails the job with its reason, nothing of it kept.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from faceblur.config import Settings
from faceblur.errors import BadRequestError, FaceblurError
from faceblur.formats import SNIFF_BYTES, video_type
from faceblur.media.segments import Plan, Segment, join_segments, new_seed
from faceblur.media.video import ProgressCallback, VideoResult
from faceblur.options import Options
from faceblur.service.video_jobs import (
    FACE_FRAMES_METADATA,
    PROGRESS_INTERVAL_SECONDS,
    Dispatch,
    JobStatus,
    SegmentStatus,
    VideoAnonymiser,
    gateway_dispatch,
    plain_reason,
    read_segment,
    read_status,
    take_back,
    with_segments,
    write_segment,
    write_status,
)
from faceblur.store.keys import (
    VIDEO_RESULT_TYPE,
    check_job_id,
    inbox_name,
    segment_video_key,
    segments_prefix,
)
from faceblur.store.s3 import FACES_METADATA, Store


def segment_payload(job: str, index: int) -> dict:
    """The body of one segment's call: names only; the rest is read from the job's status."""
    return {"segment": {"job": job, "index": index}}


def split_job(
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
        write_segment(store, settings, running.job, segment.index, SegmentStatus("queued"))
    write_status(store, settings, running)
    for segment in plan.segments:
        dispatch(segment_payload(running.job, segment.index))
    return running


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
    before = read_segment(store, settings, job, index)
    if before.state == "done":
        return {"job": job, "segment": index, "state": "done"}
    tries = before.tries + 1
    running = SegmentStatus("running", tries, frames=segment.frames)
    write_segment(store, settings, job, index, running)
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
            reason = plain_reason(str(error), folder)
            if tries < settings.video_segment_tries:
                retry = replace(running, state="queued", reason=reason)
                write_segment(store, settings, job, index, retry)
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
    write_segment(store, settings, job, index, done)
    if _deleted_meanwhile(status, store, settings):  # checked after the segment's writes
        return _take_back_split(status, store, settings)
    if with_segments(store, settings, status).segments_done < status.segments_total:
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
    return take_back(status.source_key, status, store, settings)


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
            write_segment(store, settings, job, segment.index, now)

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
            return _fail_split(
                status, -1, plain_reason(str(error), folder), error.code, store, settings
            )
        counts = [read_segment(store, settings, status.job, s.index) for s in segments]
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
