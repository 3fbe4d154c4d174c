"""The use cases every door calls: anonymise and store; process an inbox object.

A door (the HTTP handler, later video jobs and sealing) parses its request, calls one of
these and answers; the workflow across the pipeline and storage lives here once. The
store is any `PairStore`: the S3 `Store`, or a `NullStore` when the caller asked for
nothing to be kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from faceblur.config import Settings
from faceblur.errors import BadRequestError, FaceblurError
from faceblur.formats import SNIFF_BYTES, video_type
from faceblur.media.photo import Result
from faceblur.options import Options
from faceblur.sealing.seal import seal_for_store
from faceblur.service.videos import VideoAnonymiser, process_video_object
from faceblur.store.keys import key_problem
from faceblur.store.pairs import StoredPair
from faceblur.store.s3 import FACES_METADATA, Store

log = logging.getLogger(__name__)


class Anonymiser(Protocol):
    """The pipeline as a door runs it (its model, its lock): bytes in, a result out."""

    def anonymise(self, data: bytes, options: Options, max_pixels: int) -> Result: ...


class PairStore(Protocol):
    """What the use cases need of a store: keep an original with its result."""

    def put_pair(
        self,
        original: bytes,
        original_type: str,
        result: bytes,
        result_type: str,
        options: Mapping[str, object],
        result_metadata: Mapping[str, str] | None = None,
        sealed: bytes | None = None,
        prefix: str = "",
    ) -> StoredPair | None: ...

    def result_url(self, key: str) -> str: ...


@dataclass(frozen=True)
class Kept:
    """A stored pair and the presigned URL of its result."""

    pair: StoredPair
    result_url: str


@dataclass(frozen=True)
class Outcome:
    """One anonymised image; `kept` is None when the store keeps nothing."""

    result: Result
    kept: Kept | None
    timings: dict[str, float]  # the pipeline's, plus 'pipeline' and 'storage' in seconds


def _pair(
    data: bytes, result: Result, options: Options, seal_key: str | None, max_pixels: int
) -> dict[str, object]:
    """`put_pair`'s arguments for an original and its result, with the face count.

    With a sealing public key, the original goes to the store sealed for its authority
    (faceblur.seal), never in the clear.
    """
    sealed = seal_for_store(seal_key, data, result.data, result.anonymised, max_pixels)
    # The result keeps the input's format, so its type is the original's type too.
    return {
        "sealed": sealed,
        "original": data,
        "original_type": result.mime_type,
        "result": result.data,
        "result_type": result.mime_type,
        "options": vars(options),
        "result_metadata": {FACES_METADATA: str(len(result.anonymised))},
    }


def anonymise_and_store(
    data: bytes,
    options: Options,
    anonymiser: Anonymiser,
    store: PairStore,
    max_pixels: int,
    seal_key: str | None = None,
    prefix: str = "",
) -> Outcome:
    """Anonymise `data` and keep the original with its result in `store` (both or neither).

    `seal_key`: the authority's public key (PEM) when originals are kept sealed.
    `prefix`: the owner's, where accounts are on (faceblur.accounts.owner_prefix).
    """
    started = time.perf_counter()
    result = anonymiser.anonymise(data, options, max_pixels)
    stored_at = time.perf_counter()
    pair = store.put_pair(**_pair(data, result, options, seal_key, max_pixels), prefix=prefix)
    kept = Kept(pair, store.result_url(pair.result_key)) if pair else None
    timings = {
        **result.timings,
        "pipeline": stored_at - started,
        "storage": time.perf_counter() - stored_at,
    }
    return Outcome(result, kept, timings)


@dataclass(frozen=True)
class ObjectEvent:
    """One record of an S3 bucket notification: which object, and what happened to it."""

    bucket: str
    key: str
    event_name: str = ""


def _skip_reason(event: ObjectEvent, settings: Settings) -> str | None:
    if event.bucket in settings.output_buckets:
        return "output bucket"
    if event.bucket != settings.bucket_inbox:
        return "not the inbox bucket"
    if event.event_name and "ObjectCreated" not in event.event_name:
        return f"event {event.event_name}"
    return None


def process_inbox_object(
    key: str, anonymiser: Anonymiser, store: Store, settings: Settings
) -> dict[str, object]:
    """Anonymise one inbox object with the default options, store the pair, empty the inbox.

    The original then lives in the originals bucket only: the inbox keeps no face.
    """
    bucket = settings.bucket_inbox
    data = store.read(bucket, key, max_bytes=settings.max_bytes)
    options = Options()
    result = anonymiser.anonymise(data, options, settings.max_pixels)
    pair = store.put_pair(
        **_pair(data, result, options, settings.seal_public_key, settings.max_pixels)
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
    """Process each created inbox object once; ignore everything else, with the reason.

    A photo that cannot be anonymised (not an image, too large) is reported and left in
    the inbox. A video (told by its bytes) is a job run by `videos` (faceblur.jobs): a
    failed one is reported with its reason and removed from the inbox; without `videos`
    it is refused as a photo would be. An unavailable model or store fails the whole call
    (503) so the notification is retried.
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
            ignored.append({"bucket": event.bucket, "key": event.key[:200], "reason": problem})
            continue
        reason = _skip_reason(event, settings)
        if reason is None and not store.exists(event.bucket, event.key):
            reason = "no longer in the inbox"
        if reason is None:
            try:
                head = store.head(event.bucket, event.key, SNIFF_BYTES) if videos else b""
                if videos and video_type(head):
                    job = process_video_object(event.key, videos, store, settings)
                    if job["state"] == "failed":
                        ignored.append({"bucket": event.bucket, **job})
                    else:
                        processed.append(job)
                    continue
                processed.append(process_inbox_object(event.key, anonymiser, store, settings))
                continue
            except FaceblurError as error:
                if error.status == 503:
                    raise
                reason = str(error)
        ignored.append({"bucket": event.bucket, "key": event.key, "reason": reason})
    if unsafe and len(unsafe) == len(events):
        raise BadRequestError(f"bucket event refused: {unsafe[0]}")
    return {"processed": processed, "ignored": ignored}
