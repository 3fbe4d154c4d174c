"""Bucket events: what the inbox bucket's notifications ask for, done once per object.

A photo dropped into the inbox is anonymised with the default options and stored as a
pair, then removed from the inbox; a video (told by its bytes) is a job
(`faceblur.service.videos`). Events for other buckets are ignored with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote_plus

from faceblur.config import Settings
from faceblur.errors import BadRequestError, FaceblurError
from faceblur.formats import SNIFF_BYTES, video_type
from faceblur.options import Options
from faceblur.service.photos import Anonymiser, pair_arguments
from faceblur.service.video_jobs import VideoAnonymiser
from faceblur.service.videos import process_video_object
from faceblur.store.keys import key_problem, split_owner
from faceblur.store.s3 import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectEvent:
    """One record of an S3 bucket notification: which object, and what happened to it."""

    bucket: str
    key: str
    event_name: str = ""


def events_of(document: Mapping[str, object]) -> list[ObjectEvent]:
    """The records of a MinIO/S3 bucket notification (keys arrive URL-encoded)."""
    records = document.get("Records")
    if not isinstance(records, list):
        raise BadRequestError('"Records" must be a list of S3 event records', "bad_event")
    events = []
    for record in records:
        try:
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
        except (KeyError, TypeError):
            raise BadRequestError(
                "an event record lacks s3.bucket.name or s3.object.key", "bad_event"
            ) from None
        events.append(ObjectEvent(str(bucket), key, str(record.get("eventName", ""))))
    return events


def _skip_reason(event: ObjectEvent, settings: Settings) -> tuple[str, str] | None:
    """(code, reason) of an event that is not for us, None for one to process."""
    if event.bucket in settings.output_buckets:
        return "output_bucket", "output bucket"
    if event.bucket != settings.bucket_inbox:
        return "not_inbox", "not the inbox bucket"
    if event.event_name and "ObjectCreated" not in event.event_name:
        return "not_created", f"event {event.event_name}"
    return None


def process_inbox_object(
    key: str, anonymiser: Anonymiser, store: Store, settings: Settings
) -> dict[str, object]:
    """Anonymise one inbox object with the default options, store the pair, empty the inbox.

    The original then lives in the originals bucket only: the inbox keeps no face. A key
    under an owner's prefix (`u/<owner>/...`, the page's uploads) keeps that prefix, so
    the pair is theirs to see and delete.
    """
    bucket = settings.bucket_inbox
    prefix, _ = split_owner(key)
    data = store.read(bucket, key, max_bytes=settings.max_bytes)
    options = Options()
    result = anonymiser.anonymise(data, options, settings.max_pixels)
    pair = store.put_pair(
        **pair_arguments(data, result, options, settings.seal_public_key, settings.max_pixels),
        prefix=prefix,
    )
    store.remove(bucket, key)
    return {
        "key": key,
        "id": pair.image_id,
        "original_key": pair.original_key,
        "result_key": pair.result_key,
        "faces": len(result.faces),
    }


def process_bucket_events(
    events: Sequence[ObjectEvent],
    anonymiser: Anonymiser,
    store: Store,
    settings: Settings,
    videos: VideoAnonymiser | None = None,
) -> dict[str, list[dict[str, object]]]:
    """Process each created inbox object once; ignore everything else, with the reason
    and its code (`unsafe_key`, `output_bucket`, `not_inbox`, `not_created`, `gone`, or
    the error's code).

    A photo that cannot be anonymised (not an image, too large) is reported and removed
    from the inbox: nobody is told to fetch it back, and with sealing on it would be an
    original kept in the clear. A video (told by its bytes) is a job run by `videos`
    (faceblur.jobs): a failed one is reported with its reason and removed from the inbox,
    one deleted while it ran is reported `gone`; without `videos` it is refused as a
    photo would be. An unavailable model or store fails the whole call (503) so the
    notification is retried.
    """
    processed: list[dict[str, object]] = []
    ignored: list[dict[str, object]] = []
    unsafe: list[str] = []
    for event in events:
        problem = key_problem(event.key)
        if problem:
            # Never sent to the store: on a server that keeps objects as files, a key
            # like ../../etc/passwd could name something outside the bucket.
            log.warning("bucket event ignored: %s (key %r)", problem, event.key[:200])
            unsafe.append(problem)
            ignored.append(
                {"bucket": event.bucket, "key": event.key[:200], "reason": problem}
                | {"code": "unsafe_key"}
            )
            continue
        skip = _skip_reason(event, settings)
        if skip is None and not store.exists(event.bucket, event.key):
            skip = "gone", "no longer in the inbox"
        if skip is None:
            try:
                head = store.head(event.bucket, event.key, SNIFF_BYTES) if videos else b""
                if videos and video_type(head):
                    job = process_video_object(event.key, videos, store, settings)
                    if job["state"] in ("failed", "deleted"):
                        ignored.append({"bucket": event.bucket, **job})
                    else:
                        processed.append(job)
                    continue
                processed.append(process_inbox_object(event.key, anonymiser, store, settings))
                continue
            except FaceblurError as error:
                if error.status == 503:
                    raise
                skip = error.code, str(error)
                store.remove(event.bucket, event.key)
        code, reason = skip
        ignored.append({"bucket": event.bucket, "key": event.key, "reason": reason, "code": code})
    if unsafe and len(unsafe) == len(events):
        raise BadRequestError(f"bucket event refused: {unsafe[0]}", "unsafe_key")
    return {"processed": processed, "ignored": ignored}
