"""The one entry point a door calls with a request it has parsed: `serve`.

A photo is anonymised and stored (or only anonymised when the caller keeps nothing): an
`Outcome`. A video is never processed inside the call: it goes into the inbox as a job
that its bucket event runs (`faceblur.service.videos`): a `Queued`. A video is told from
a photo by its bytes (the container's signature), never by its name or Content-Type.
Bucket events are the other way in (`faceblur.service.events`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from faceblur.config import Settings
from faceblur.detection.base import Detector
from faceblur.errors import BadRequestError, TooLargeError, UnavailableError, quoted
from faceblur.formats import SNIFF_BYTES, video_type
from faceblur.media.container import DecodeLimits
from faceblur.media.photo import PhotoResult, anonymise_image
from faceblur.media.segments import Segment, encode_segment
from faceblur.media.video import FrameObserver, ProgressCallback, VideoResult, anonymise_video
from faceblur.options import Options, VideoEdits, parse_options
from faceblur.service.photos import Anonymiser, Outcome, anonymise_and_store
from faceblur.service.video_jobs import Queued
from faceblur.service.videos import queue_video
from faceblur.store.null import NullStore
from faceblur.store.s3 import Store

log = logging.getLogger(__name__)

# What a video request may carry beside the video: its file name (options are for photos).
VIDEO_FIELDS = ("name",)


@dataclass(frozen=True)
class Request:
    """What a door parsed from a request: a photo's or a video's bytes and what to do.

    `options` are as sent (text from a form or query string, typed values from JSON); a
    video may carry only `name` there. `name` is the file's own name where the request
    form has one (a multipart file part). `owner` is the key prefix of the person the
    request acts for where accounts are on (faceblur.store.keys.owner_prefix).
    """

    data: bytes
    options: Mapping[str, object] = field(default_factory=dict)
    name: str | None = None
    store: bool = True
    owner: str = ""


class Engine:
    """The pipeline with one process's detector: the service's `Anonymiser` for photos
    and `VideoAnonymiser` for video jobs.

    The detector may still be loading (a door builds it in the background from its
    start): what needs it waits for it, while queueing a video or skipping an event does
    not. A build that failed is a 503 naming its cause, on every request that needs it.
    """

    def __init__(self, detector: Future[Detector]) -> None:
        self._detector = detector
        detector.add_done_callback(_log_failure)

    @property
    def loaded(self) -> bool:
        return self._detector.done() and self._detector.exception() is None

    def detector(self) -> Detector:
        try:
            return self._detector.result()
        except Exception as error:
            cause = f"{type(error).__name__}: {error}"
            raise UnavailableError(f"face detector unavailable: {cause}") from error

    def anonymise(self, data: bytes, options: Options, max_pixels: int) -> PhotoResult:
        return anonymise_image(data, self.detector(), options, max_pixels=max_pixels)

    def anonymise_video(
        self,
        source: Path,
        target: Path,
        options: Options,
        on_progress: ProgressCallback,
        limits: DecodeLimits | None = None,
        edits: VideoEdits | None = None,
        observe: FrameObserver | None = None,
    ) -> VideoResult:
        # The detector as built: anonymise_video makes it the lighter one for frames.
        return anonymise_video(
            source,
            target,
            self.detector(),
            options,
            on_progress=on_progress,
            edits=edits,
            observe=observe,
            limits=limits,
        )

    def encode_segment(
        self,
        source: Path,
        target: Path,
        segment: Segment,
        options: Options,
        on_progress: ProgressCallback,
        seed: int | None = None,
    ) -> VideoResult:
        return encode_segment(
            source, target, segment, self.detector(), options, None, on_progress, seed
        )


def _log_failure(detector: Future[Detector]) -> None:
    error = detector.exception()
    if error is not None:  # once, with its traceback; requests then name only the cause
        log.error("the face detector could not be built", exc_info=error)


def serve(
    request: Request, anonymiser: Anonymiser, store: Store, settings: Settings
) -> Outcome | Queued:
    """Anonymise the photo of `request` (stored in `store` unless `request.store` is
    false) or queue its video; FaceblurError (with its status) when it cannot be done."""
    video = video_type(request.data[:SNIFF_BYTES])
    if video:
        return _queue(request, video, store, settings)
    if len(request.data) > settings.max_bytes:
        raise TooLargeError(
            f"image of {len(request.data)} bytes; the limit is {settings.max_bytes}", "max_bytes"
        )
    return anonymise_and_store(
        request.data,
        parse_options(request.options),
        anonymiser,
        store if request.store else NullStore(),
        settings.max_pixels,
        settings.seal_public_key,
        prefix=request.owner,
        refuse_unhidden=settings.refuse_unhidden_faces,
    )


def _queue(request: Request, mime_type: str, store: Store, settings: Settings) -> Queued:
    """Put a video into the inbox as a job (faceblur.service.videos.queue_video)."""
    options = sorted(str(name) for name in set(request.options) - set(VIDEO_FIELDS))
    if options:
        raise BadRequestError(
            f"options are for photos; a video is anonymised with the defaults (got "
            f"{quoted(', '.join(options), quote=False)})",
            "video_options",
        )
    if not request.store:
        raise BadRequestError(
            "store=false is for photos: a video's job runs through the buckets", "video_options"
        )
    name = request.options.get("name") or request.name
    return queue_video(
        request.data, mime_type, str(name) if name else None, store, settings, request.owner
    )
