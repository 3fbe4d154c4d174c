"""OpenFaaS python3-http-debian handler: parse the request, call the service, answer.

Requests (POST):
- JSON `{"image": "<base64>", ...options}` (a `data:image/...;base64,` prefix is accepted);
- raw image bytes with an `image/*` or `application/octet-stream` Content-Type;
- a video (raw `video/*` bytes, multipart, or JSON `{"video": "<base64>"}`), told by its
  bytes: never processed in the call but put into the inbox as a job (faceblur.jobs),
  answered 202 with the job's id and status URL;
- `multipart/form-data` with a file field (other fields are options);
- a MinIO/S3 bucket notification (`Records[].s3`): the inbox object it names is read,
  anonymised and stored; events for the output buckets are ignored.
Options (method, shape, strength, padding, threshold, detect, regions; `store`) come from
the JSON body, the form fields or the query string (`regions` as JSON text there). `GET`
answers a small info JSON; `GET ?job=<id>` a video job's status.

The answer is JSON (ids, object keys, a presigned URL of the result, faces, every
anonymised region as `regions`, timings),
or with `Accept: image/*` the anonymised image itself with an `X-Faces` header.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import sys
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import unquote_plus

from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

# The template copies this folder to `function/` and imports `function.handler` with
# only its parent on sys.path: make the `faceblur/` package beside this file importable.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from faceblur import __version__  # noqa: E402
from faceblur.accounts import (  # noqa: E402
    AccountSettings,
    Identity,
    KeyChecker,
    RateLimiter,
    hash_key,
    load_account_settings,
    open_accounts,
)
from faceblur.config import (  # noqa: E402
    ConfigError,
    Settings,
    callback_refusal,
    load_settings,
)
from faceblur.errors import (  # noqa: E402
    BadRequestError,
    EmptyImageError,
    FaceblurError,
    NotAnImageError,
    RateLimitedError,
    TooLargeError,
    UnauthorizedError,
    UnavailableError,
    quoted,
)
from faceblur.formats import SNIFF_BYTES, video_type  # noqa: E402
from faceblur.media.photo import Result, anonymise_image, faces_to_json, regions_to_json  # noqa: E402
from faceblur.options import (  # noqa: E402
    METHOD_INFO,
    SHAPES,
    STRENGTHS,
    Options,
    parse_options,
    request_flag,
)
from faceblur.sealing.seal import fingerprint, load_public_key  # noqa: E402
from faceblur.service.photos import (  # noqa: E402
    ObjectEvent,
    Outcome,
    anonymise_and_store,
    process_bucket_events,
)
from faceblur.service.videos import job_answer, queue_video  # noqa: E402
from faceblur.store.null import NullStore  # noqa: E402
from faceblur.store.s3 import Store  # noqa: E402

RAW_TYPES = ("application/octet-stream",)
# What a video request may carry beside the video: its file name (options are for photos).
VIDEO_FIELDS = ("name", "store")
# One image and a handful of option fields: a form of more parts is not ours.
MAX_FORM_PARTS = 32
JSON_HEADERS = {"Content-Type": "application/json"}
# Deeper than any request or bucket event needs (an event is 5 levels), far below where
# Python's parser or repr() would recurse out of stack.
MAX_JSON_DEPTH = 32


# -- process-wide state: built once, never per request -------------------------------------


class _Model:
    """The detector, built once per process in the background from import time on."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._detector = None
        self._error: str | None = None
        # The detector's networks are not known to be thread-safe: one image at a time.
        self.lock = threading.Lock()
        threading.Thread(target=self._build, name="faceblur-model", daemon=True).start()

    def _build(self) -> None:
        try:
            from faceblur.detection import build_detector

            self._detector = build_detector()
        except Exception as error:  # reported as 503 on every request, with the cause
            traceback.print_exc()
            self._error = f"{type(error).__name__}: {error}"
        finally:
            self._ready.set()

    @property
    def loaded(self) -> bool:
        return self._ready.is_set() and self._detector is not None

    def anonymise(self, data: bytes, options: Options, max_pixels: int) -> Result:
        """The pipeline with this process's detector (the service's `Anonymiser`)."""
        self._ready.wait()
        if self._detector is None:
            raise UnavailableError(f"face detector unavailable: {self._error}")
        with self.lock:
            return anonymise_image(data, self._detector, options, max_pixels=max_pixels)

    def anonymise_video(self, source: Path, target: Path, options: Options, on_progress):
        """faceblur.video with this process's detector (faceblur.jobs' `VideoAnonymiser`).

        The lock is taken per frame, not per video: photos are not held up for minutes.
        """
        from faceblur.detection.angles import upright
        from faceblur.media.video import anonymise_video

        self._ready.wait()
        if self._detector is None:
            raise UnavailableError(f"face detector unavailable: {self._error}")
        # Chosen before the lock wraps it: upright() knows the detector's own type only.
        chosen = upright(self._detector) if options.upright_only else self._detector
        detector = _Locked(chosen, self.lock)
        return anonymise_video(source, target, detector, options, on_progress=on_progress)


class _Locked:
    """A detector used under a lock, one frame at a time (faceblur.detect's protocol)."""

    def __init__(self, detector, lock: threading.Lock) -> None:
        self.detector, self.lock = detector, lock

    def detect(self, image):
        with self.lock:
            return self.detector.detect(image)


MODEL = _Model()
_state_lock = threading.Lock()
_settings: Settings | None = None
_store: Store | None = None


def _settings_and_store() -> tuple[Settings, Store]:
    global _settings, _store
    with _state_lock:
        if _settings is None or _store is None:
            try:
                _settings = load_settings()
            except ConfigError as error:
                raise UnavailableError(f"misconfigured: {error}") from error
            _store = Store(_settings)
        return _settings, _store


class _Gate:
    """Who may ask for an anonymisation where accounts are on (FACEBLUR_AUTH=on).

    A caller shows `Authorization: Bearer <API key>`; the page shows the internal token
    and names its signed-in person in `X-Faceblur-Owner`. Either way the person must be
    active: the KeyChecker's short cache bounds how long a revoked key keeps working.
    """

    def __init__(self, settings: AccountSettings) -> None:
        self.settings = settings
        self.accounts = open_accounts(settings.database_url)
        self.checker = KeyChecker(self.accounts)
        self.limiter = RateLimiter(settings.rate_per_minute)

    def caller(self, headers, limited: bool = True) -> Identity:
        """The person this request acts for; 401 without a valid key, 429 over the limit.

        `limited=False` for polling a job's status: a page polls every second or two, and
        that must not use up what the person may ask of the detector.
        """
        scheme, _, token = (headers.get("Authorization", "") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthorizedError("an API key is required: Authorization: Bearer <key>")
        internal = self.settings.internal_token
        try:
            if internal and hmac.compare_digest(token.encode(), internal.encode()):
                identity = self.checker.owner(headers.get("X-Faceblur-Owner", "") or "")
                limit_key = f"page:{identity.user_id}" if identity else ""
            else:
                identity = self.checker.identity(token)
                limit_key = "key:" + hash_key(token)
        except SQLAlchemyError as error:
            raise UnavailableError("accounts database unavailable") from error
        if identity is None:
            raise UnauthorizedError("this API key is not valid (unknown, revoked or disabled)")
        wait = self.limiter.retry_after(limit_key) if limited else 0
        if wait:
            raise RateLimitedError(f"rate limit reached; retry after {wait} s", wait)
        return identity

    def count(self, identity: Identity) -> None:
        try:
            self.accounts.count_processed(identity.user_id)
        except SQLAlchemyError:  # usage figures must not fail a finished request
            traceback.print_exc()


_gate_built = False
_the_gate: _Gate | None = None


def _gate() -> _Gate | None:
    """The gate, built on first use; None where accounts are off."""
    global _gate_built, _the_gate
    with _state_lock:
        if not _gate_built:
            try:
                settings = load_account_settings()
            except ConfigError as error:
                raise UnavailableError(f"misconfigured: {error}") from error
            try:
                _the_gate = _Gate(settings) if settings.enabled else None
            except SQLAlchemyError as error:
                raise UnavailableError("accounts database unavailable") from error
            _gate_built = True
        return _the_gate


# -- responses ----------------------------------------------------------------------------


def _json(status: int, body: dict) -> dict:
    return {"statusCode": status, "body": body, "headers": dict(JSON_HEADERS)}


def _error(status: int, message: str, code: str | None = None) -> dict:
    return _json(status, {"error": message} | ({"code": code} if code else {}))


# -- parsing --------------------------------------------------------------------------------


def _content_type(headers) -> tuple[str, dict[str, str]]:
    """The media type (lower case) and its parameters."""
    media_type, parameters = parse_options_header(headers.get("Content-Type", "") or "")
    return media_type.lower(), parameters


def _json_depth(document: object) -> int:
    """How deeply lists and objects nest in a parsed document (without recursion)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                break
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _parse_json(body: bytes) -> object:
    too_deep = BadRequestError(f"malformed JSON: nested too deeply (at most {MAX_JSON_DEPTH})")
    try:
        document = json.loads(body)
    except RecursionError:
        raise too_deep from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequestError(f"malformed JSON: {error}") from None
    if _json_depth(document) > MAX_JSON_DEPTH:
        raise too_deep
    return document


def _decode_base64(text: object, field: str = "image") -> bytes:
    if not isinstance(text, str):
        raise BadRequestError(f'"{field}" must be a base64 string')
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise BadRequestError(
                f'a data URL in "{field}" must be base64 (data:{field}/...;base64,)'
            )
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f'"{field}" is not valid base64') from None


def _multipart_parts(body: bytes, boundary: str) -> list[tuple[Field | File, bytes]]:
    """Each part's header event and its raw bytes, by Werkzeug's multipart decoder.

    The decoder rather than `FormDataParser`: that one decodes every part without a
    filename as UTF-8 text, and an image sent as a plain `image` field must stay bytes.
    """
    parts: list[tuple[Field | File, bytes]] = []
    chunks: list[bytes] = []
    try:
        decoder = MultipartDecoder(boundary.encode("latin-1"), max_parts=MAX_FORM_PARTS)
        decoder.receive_data(body)
        decoder.receive_data(None)
        event = decoder.next_event()
        while not isinstance(event, (Epilogue, NeedData)):
            if isinstance(event, (Field, File)):
                parts.append((event, b""))
                chunks = []
            elif isinstance(event, Data) and parts:
                chunks.append(event.data)
                if not event.more_data:
                    parts[-1] = (parts[-1][0], b"".join(chunks))
            event = decoder.next_event()
    except RequestEntityTooLarge:
        raise BadRequestError(f"multipart/form-data of more than {MAX_FORM_PARTS} parts") from None
    except ValueError:
        raise BadRequestError("malformed multipart/form-data body") from None
    if isinstance(event, NeedData):
        raise BadRequestError("multipart/form-data body cut short")
    return parts


def _from_multipart(
    body: bytes, parameters: dict[str, str]
) -> tuple[bytes, dict[str, str], str | None]:
    """(the file's bytes, the other fields, the file's name if it has one)."""
    boundary = parameters.get("boundary")
    if not boundary:
        raise BadRequestError("multipart/form-data without a boundary")
    image: bytes | None = None
    filename: str | None = None
    fields: dict[str, str] = {}
    for part, payload in _multipart_parts(body, boundary):
        if isinstance(part, File) or part.name in ("image", "file", "video"):
            if image is not None:
                raise BadRequestError("send one image per request")
            image = payload
            filename = part.filename if isinstance(part, File) else None
        elif part.name:
            fields[part.name] = payload.decode("utf-8", errors="replace")
    if image is None:
        raise BadRequestError("multipart/form-data without a file field")
    return image, fields, filename


def _request_image(event, settings: Settings) -> tuple[bytes, dict[str, object], str | None] | dict:
    """(image or video bytes, raw options, file name if sent) from any of the three forms;
    a bucket event's dict."""
    body: bytes = event.body or b""
    largest = max(settings.max_bytes, settings.max_video_bytes)
    # JSON and multipart are a little larger than the file they carry.
    if len(body) > largest * 4 // 3 + 64 * 1024:
        raise TooLargeError(f"request of {len(body)} bytes; the limit is {largest}")
    filename: str | None = None
    media_type, parameters = _content_type(event.headers)
    raw: dict[str, object] = {}
    if media_type == "application/json" or (not media_type and body[:1] == b"{"):
        document = _parse_json(body)
        if not isinstance(document, dict):
            raise BadRequestError('JSON body must be an object: {"image": "<base64>", ...}')
        if "Records" in document:
            return document
        field = "video" if "video" in document else "image"
        if field not in document:
            raise BadRequestError('JSON body needs "image": "<base64>" (or "video")')
        data = _decode_base64(document.pop(field), field)
        raw = document
    elif media_type == "multipart/form-data":
        data, fields, filename = _from_multipart(body, parameters)
        raw = dict(fields)
    elif media_type.startswith(("image/", "video/")) or media_type in RAW_TYPES:
        data = body
    else:
        raise NotAnImageError(
            f"unsupported Content-Type {quoted(media_type or '(none)')}: send image or "
            "video bytes as image/*, video/* or application/octet-stream, JSON "
            '{"image": "<base64>"}, or multipart/form-data'
        )
    if not data:
        raise EmptyImageError("no image bytes in the request")
    # A video's own limits are checked when it is queued (faceblur.jobs.queue_video).
    if len(data) > settings.max_bytes and not video_type(data[:SNIFF_BYTES]):
        raise TooLargeError(f"image of {len(data)} bytes; the limit is {settings.max_bytes}")
    # Query-string options, overridden by those in the body.
    return data, {**dict(event.query.items()), **raw}, filename


def _wants_image(headers) -> bool:
    accept = headers.get("Accept", "") or ""
    return any(part.split(";")[0].strip().startswith("image/") for part in accept.split(","))


# -- the work -------------------------------------------------------------------------------


def _describe(outcome: Outcome, timings: dict[str, float]) -> dict:
    result, kept = outcome.result, outcome.kept
    return {
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
    }


def _process(event, settings: Settings) -> object:
    started = time.perf_counter()
    # In the cluster OpenFaaS's queue worker posts the answer to X-Callback-Url and passes
    # the header on: refusing here keeps photos and results away from unlisted hosts (the
    # worker still posts this error there; only a network policy stops that post).
    callback_url = event.headers.get("X-Callback-Url")
    refusal = callback_refusal(callback_url, settings.callback_hosts) if callback_url else None
    if refusal:
        raise BadRequestError(refusal)
    parsed = _request_image(event, settings)
    if isinstance(parsed, dict):
        store = _settings_and_store()[1]
        events = _object_events(parsed)
        return _json(200, process_bucket_events(events, MODEL, store, settings, videos=MODEL))
    # Bucket events come from the S3 server, not from people: they stay keyless.
    gate = _gate()
    caller = gate.caller(event.headers) if gate else None
    data, raw, filename = parsed
    video = video_type(data[:SNIFF_BYTES])
    if video:
        answer = _queue(data, video, raw, filename, settings, caller.prefix if caller else "")
        if gate and caller:
            gate.count(caller)
        return _json(202, answer)
    store_it = request_flag("store", raw.pop("store", True))
    options = parse_options(raw)
    store = _settings_and_store()[1] if store_it else NullStore()
    outcome = anonymise_and_store(
        data,
        options,
        MODEL,
        store,
        settings.max_pixels,
        settings.seal_public_key,
        prefix=caller.prefix if caller else "",
    )
    if gate and caller:
        gate.count(caller)
    timings = {**outcome.timings, "request": time.perf_counter() - started}
    result, kept = outcome.result, outcome.kept
    if _wants_image(event.headers):
        headers = {"Content-Type": result.mime_type, "X-Faces": str(len(result.faces))}
        if kept:
            headers |= {
                "X-Faceblur-Id": kept.pair.image_id,
                "X-Result-Key": kept.pair.result_key,
                "X-Result-Url": kept.result_url,
            }
        # A tuple goes to Flask untouched; a dict body would be str()-ed by the template.
        return (result.data, 200, headers)
    return _json(200, _describe(outcome, timings))


def _queue(
    data: bytes, mime_type: str, raw: dict, filename: str | None, settings: Settings, prefix: str
) -> dict:
    """Put a video into the inbox as a job (its bucket event runs it); the 202 answer."""
    options = sorted(str(name) for name in set(raw) - set(VIDEO_FIELDS))
    if options:
        raise BadRequestError(
            f"options are for photos; a video is anonymised with the defaults (got "
            f"{quoted(', '.join(options), quote=False)})"
        )
    if not request_flag("store", raw.get("store", True)):
        raise BadRequestError("store=false is for photos: a video's job runs through the buckets")
    name = raw.get("name") or filename
    store = _settings_and_store()[1]
    return queue_video(data, mime_type, str(name) if name else None, store, settings, prefix)


def _job_status(event) -> dict:
    """`GET ?job=<id>`: where accounts are on, only the caller's own jobs are known."""
    settings, store = _settings_and_store()
    gate = _gate()
    caller = gate.caller(event.headers, limited=False) if gate else None
    owner = caller.prefix if caller else None
    return _json(200, job_answer(event.query.get("job", ""), store, settings, owner))


def _object_events(document: dict) -> list[ObjectEvent]:
    """The records of a MinIO/S3 bucket notification (keys arrive URL-encoded)."""
    records = document.get("Records")
    if not isinstance(records, list):
        raise BadRequestError('"Records" must be a list of S3 event records')
    events = []
    for record in records:
        try:
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
        except (KeyError, TypeError):
            raise BadRequestError("an event record lacks s3.bucket.name or s3.object.key") from None
        events.append(ObjectEvent(str(bucket), key, str(record.get("eventName", ""))))
    return events


def _sealing(settings: Settings) -> dict:
    """Whether originals are stored sealed, and for which authority key (its fingerprint)."""
    key = settings.seal_public_key
    return {
        "enabled": key is not None,
        "authority": fingerprint(load_public_key(key)) if key else None,
    }


def _info() -> dict:
    settings, store = _settings_and_store()
    try:
        store.check()
        storage = {"reachable": True}
    except UnavailableError as error:
        storage = {"reachable": False, "error": str(error)}
    return _json(
        200,
        {
            "name": settings.function_name,
            "version": __version__,
            "model_loaded": MODEL.loaded,
            "storage": storage,
            "limits": {
                "max_bytes": settings.max_bytes,
                "max_pixels": settings.max_pixels,
                "max_video_bytes": settings.max_video_bytes,
                "max_video_seconds": settings.max_video_seconds,
                "max_video_pixels": settings.max_video_pixels,
            },
            "sealing": _sealing(settings),
            "options": vars(Options()),
            "methods": dict(METHOD_INFO),
            "shapes": list(SHAPES),
            "strengths": list(STRENGTHS),
        },
    )


def handle(event, context):
    """The template's entry point: never raises, every error is JSON with its status."""
    try:
        if event.method == "GET":
            return _job_status(event) if "job" in event.query else _info()
        if event.method != "POST":
            return _error(405, f"method {event.method} not allowed: use GET or POST")
        settings = _settings_and_store()[0]
        return _process(event, settings)
    except FaceblurError as error:
        answer = _error(error.status, str(error), error.code)
        if isinstance(error, RateLimitedError):
            answer["headers"]["Retry-After"] = str(error.retry_after)
        if isinstance(error, UnauthorizedError):
            answer["headers"]["WWW-Authenticate"] = "Bearer"
        return answer
    except Exception:
        traceback.print_exc()
        return _error(500, "internal error; see the function's log")
