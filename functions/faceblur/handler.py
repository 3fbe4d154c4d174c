"""OpenFaaS python3-http-debian handler: parse the request, call the service, answer.

POST a photo or a video (JSON `{"image"|"video": "<base64>", ...options}`, raw bytes, or
multipart; options in the query string too): a photo's JSON answer (or, with `Accept:
image/*`, the image), or 202 and a queued video job. A bucket notification (`Records`),
carrying the S3 server's webhook token, runs the inbox objects it names. POST `{"job":
<id>, "edits": {...}}`: a finished video job rendered again with a reviewer's edits
(202). GET: info; `GET ?job=<id>`: a video job's status; `GET ?job=<id>&tracks=1`: its
tracks.

The order of a POST is the order of trust: who asks (the webhook token, else the
caller's key where accounts are on) before a byte of the body is parsed; then the body's
size against the photo limit, or the video limit where its Content-Type may carry one.
The work is faceblur.service's; faceblur.api holds the HTTP door's own rules.
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from werkzeug.http import parse_options_header

# The template copies this folder to `function/` and imports `function.handler` with
# only its parent on sys.path: make the `faceblur/` package beside this file importable.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from faceblur import __version__  # noqa: E402
from faceblur.accounts import Identity, load_account_settings  # noqa: E402
from faceblur.api.body import (  # noqa: E402
    MAX_EVENT_BYTES,
    body_limit,
    decode_base64,
    may_carry_video,
    parse_json,
    parse_multipart,
)
from faceblur.api.callbacks import check_callback  # noqa: E402
from faceblur.api.gate import Gate, from_notifier, open_gate  # noqa: E402
from faceblur.config import ConfigError, Settings, load_settings  # noqa: E402
from faceblur.detection import build_detector  # noqa: E402
from faceblur.errors import (  # noqa: E402
    BadRequestError,
    EmptyImageError,
    FaceblurError,
    NotAnImageError,
    RateLimitedError,
    TooLargeError,
    UnauthorizedError,
    UnavailableError,
    WebhookTokenError,
    quoted,
)
from faceblur.media.photo import faces_to_json, regions_to_json  # noqa: E402
from faceblur.options import METHOD_INFO, SHAPES, STRENGTHS, Options, request_flag  # noqa: E402
from faceblur.sealing.seal import fingerprint, load_public_key  # noqa: E402
from faceblur.service.entry import Engine, Request, serve  # noqa: E402
from faceblur.service.events import events_of, process_bucket_events  # noqa: E402
from faceblur.service.photos import Outcome  # noqa: E402
from faceblur.service.video_jobs import Queued, job_answer  # noqa: E402
from faceblur.service.video_segments import process_segment  # noqa: E402
from faceblur.service.videos import queue_edits, tracks_answer  # noqa: E402
from faceblur.store.s3 import Store  # noqa: E402

JSON_HEADERS = {"Content-Type": "application/json"}
# Said to anyone who posts a bucket event without the token: nothing about its objects.
WEBHOOK_REFUSAL = "bucket events and segment calls are taken only with the stack's webhook token"
LIMITS = (
    "max_bytes",
    "max_pixels",
    "max_video_bytes",
    "max_video_seconds",
    "max_video_pixels",
    "max_video_frames",
    "video_job_seconds",
)


# -- process state: built once per process, on first use (functools.cache) ----------------


@functools.cache
def _engine() -> Engine:
    """The pipeline with this process's detector, built in the background (~5 s)."""
    return Engine(ThreadPoolExecutor(1, thread_name_prefix="faceblur-model").submit(build_detector))


_engine()  # from import time on, while importing is single-threaded: built exactly once


# Two first requests at once may each build the light objects below; one is kept.
@functools.cache
def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        raise UnavailableError(f"misconfigured: {error}", "misconfigured") from error


@functools.cache
def _store() -> Store:
    return Store(_settings())


@functools.cache
def _gate() -> Gate | None:
    """Who may ask, where accounts are on; None where they are off."""
    try:
        return open_gate(load_account_settings())
    except ConfigError as error:
        raise UnavailableError(f"misconfigured: {error}", "misconfigured") from error


@functools.cache
def _authority(seal_key: str | None) -> str | None:
    """The fingerprint of the authority originals are sealed for; None: not sealed."""
    return fingerprint(load_public_key(seal_key)) if seal_key else None


# -- answers -----------------------------------------------------------------------------


def _json(status: int, body: dict) -> dict:
    return {"statusCode": status, "body": body, "headers": dict(JSON_HEADERS)}


def _photo(outcome: Outcome, started: float, accept: str) -> object:
    result, kept = outcome.result, outcome.kept
    if any(part.split(";")[0].strip().startswith("image/") for part in accept.split(",")):
        headers = {"Content-Type": result.mime_type, "X-Faces": str(len(result.faces))}
        if kept:
            headers |= {
                "X-Faceblur-Id": kept.pair.image_id,
                "X-Result-Key": kept.pair.result_key,
                "X-Result-Url": kept.result_url,
            }
        # A tuple goes to Flask untouched; a dict body would be str()-ed by the template.
        return (result.data, 200, headers)
    timings = {**outcome.timings, "request": time.perf_counter() - started}
    return _json(
        200,
        {
            "id": kept.pair.image_id if kept else None,
            "stored": kept is not None,
            "original_key": kept.pair.original_key if kept else None,
            "result_key": kept.pair.result_key if kept else None,
            "result_url": kept.result_url if kept else None,
            "format": result.format,
            "width": result.width,
            "height": result.height,
            "faces": faces_to_json(result),
            "regions": regions_to_json(result),
            "timings": {name: round(seconds, 4) for name, seconds in timings.items()},
        },
    )


def _info() -> dict:
    settings, store = _settings(), _store()
    try:
        store.check()
        storage = {"reachable": True}
    except UnavailableError as error:
        storage = {"reachable": False, "error": str(error), "code": error.code}
    seal_key = settings.seal_public_key
    return _json(
        200,
        {
            "name": settings.function_name,
            "version": __version__,
            "model_loaded": _engine().loaded,
            "storage": storage,
            "limits": {name: getattr(settings, name) for name in LIMITS},
            "sealing": {"enabled": seal_key is not None, "authority": _authority(seal_key)},
            "options": vars(Options()),
            "methods": dict(METHOD_INFO),
            "shapes": list(SHAPES),
            "strengths": list(STRENGTHS),
        },
    )


# -- requests ----------------------------------------------------------------------------


def _media_type(event) -> tuple[str, dict[str, str]]:
    media_type, parameters = parse_options_header(event.headers.get("Content-Type", "") or "")
    if not media_type and (event.body or b"")[:1] == b"{":
        media_type = "application/json"
    return media_type.lower(), parameters


def _parse(event, settings: Settings) -> Request | dict:
    """The file, options and name of any of the three forms, within the size limit; a
    reviewer's edits of a video job (JSON with "edits") as they are."""
    body: bytes = event.body or b""
    media_type, parameters = _media_type(event)
    video = may_carry_video(media_type, body)
    file_limit = settings.max_video_bytes if video else settings.max_bytes
    if len(body) > body_limit(media_type, file_limit):
        raise TooLargeError(
            f"request of {len(body)} bytes; the limit is {file_limit}",
            "max_video_bytes" if video else "max_bytes",
        )
    filename, raw = None, {}
    if media_type == "application/json":
        document = parse_json(body)
        if not isinstance(document, dict):
            raise BadRequestError('JSON body must be an object: {"image": "<base64>"}', "bad_json")
        if "Records" in document or "segment" in document:
            raise WebhookTokenError(WEBHOOK_REFUSAL)
        if "edits" in document:
            return document
        field = "video" if "video" in document else "image"
        if field not in document:
            raise BadRequestError('JSON body needs "image" (or "video"): base64', "missing_file")
        data, raw = decode_base64(document.pop(field), field), document
    elif media_type == "multipart/form-data":
        data, raw, filename = parse_multipart(body, parameters)
    elif media_type.startswith(("image/", "video/")) or media_type == "application/octet-stream":
        data = body
    else:
        raise NotAnImageError(
            f"unsupported Content-Type {quoted(media_type or '(none)')}: send image or "
            "video bytes as image/*, video/* or application/octet-stream, JSON "
            '{"image": "<base64>"}, or multipart/form-data',
            "content_type",
        )
    if not data:
        raise EmptyImageError("no image bytes in the request")
    options = {**dict(event.query.items()), **raw}  # the body's options win
    store = request_flag("store", options.pop("store", True))
    return Request(data, options, filename, store)


def _bucket_events(event, settings: Settings) -> dict:
    """A notification from the S3 server, or a segment call of the function's own (the
    webhook token checked by the caller)."""
    body: bytes = event.body or b""
    if len(body) > MAX_EVENT_BYTES:
        raise TooLargeError(f"bucket event of {len(body)} bytes; the limit is {MAX_EVENT_BYTES}")
    document = parse_json(body)
    if not isinstance(document, dict):
        raise BadRequestError('a bucket event is a JSON object with "Records"', "bad_event")
    engine = _engine()
    if "segment" in document:
        # One segment of a split video job, posted by the function itself to its async
        # route (with the same token): it names a job and a segment, everything else is
        # read from the job's status in the bucket.
        if not isinstance(document["segment"], dict):
            raise BadRequestError('"segment" must be an object', "bad_segment")
        return _json(200, process_segment(document["segment"], engine, _store(), settings))
    answer = process_bucket_events(events_of(document), engine, _store(), settings, videos=engine)
    return _json(200, answer)


def _post(event) -> object:
    started = time.perf_counter()
    settings = _settings()
    check_callback(event.headers.get("X-Callback-Url"), settings.callback_hosts)
    if from_notifier(event.headers, settings.webhook_token):
        return _bucket_events(event, settings)
    gate = _gate()
    # The key before a byte of the body is parsed: without one, nothing is read.
    caller = gate.caller(event.headers) if gate else None
    request = _parse(event, settings)
    if isinstance(request, dict):  # a reviewer's edits of a finished video job
        return _edit_job(request, gate, caller)
    if caller:
        request = replace(request, owner=caller.prefix)
    done = serve(request, _engine(), _store(), settings)
    if gate and caller:
        gate.count(caller)
    if isinstance(done, Queued):
        return _json(202, asdict(done))
    return _photo(done, started, event.headers.get("Accept", "") or "")


def _job_status(event) -> dict:
    """`GET ?job=<id>` (`&tracks=1`: its tracks): where accounts are on, only the caller's
    own jobs are known."""
    settings, store, gate = _settings(), _store(), _gate()
    caller = gate.caller(event.headers, limited=False) if gate else None
    owner = caller.prefix if caller else None
    job = event.query.get("job", "")
    if request_flag("tracks", event.query.get("tracks", False)):
        return _json(200, tracks_answer(job, store, settings, owner))
    return _json(200, job_answer(job, store, settings, owner))


def _edit_job(document: dict, gate: Gate | None, caller: Identity | None) -> dict:
    """`POST {"job": <id>, "edits": {...}}`: the caller's own finished job, rendered again
    (`caller`: who the gate let in, None where accounts are off)."""
    if not {"job", "edits"} <= set(document) <= {"job", "edits", "reason"} or not isinstance(
        document["job"], str
    ):
        raise BadRequestError(
            'expected {"job": "<id>", "edits": {...}, "reason": "..."}', "bad_json"
        )
    settings, store = _settings(), _store()
    owner = caller.prefix if caller else None
    queued = queue_edits(
        document["job"], document["edits"], store, settings, owner, document.get("reason")
    )
    if gate and caller:
        gate.count(caller)
    return _json(202, asdict(queued))


def handle(event, context):
    """The template's entry point: never raises, every error is JSON with its status."""
    try:
        if event.method == "GET":
            return _job_status(event) if "job" in event.query else _info()
        if event.method != "POST":
            refusal = f"method {event.method} not allowed: use GET or POST"
            return _json(405, {"error": refusal, "code": "method_not_allowed"})
        return _post(event)
    except FaceblurError as error:
        answer = _json(error.status, {"error": str(error), "code": error.code, **error.details})
        if isinstance(error, RateLimitedError):
            answer["headers"]["Retry-After"] = str(error.retry_after)
        if isinstance(error, UnauthorizedError):
            answer["headers"]["WWW-Authenticate"] = "Bearer"
        return answer
    except Exception:
        traceback.print_exc()
        return _json(500, {"error": "internal error; see the function's log", "code": "internal"})
