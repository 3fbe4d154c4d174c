"""OpenFaaS python3-http-debian handler: parse the request, run the pipeline, store, answer.

Requests (POST):
- JSON `{"image": "<base64>", ...options}` (a `data:image/...;base64,` prefix is accepted);
- raw image bytes with an `image/*` or `application/octet-stream` Content-Type;
- `multipart/form-data` with a file field (other fields are options);
- a MinIO/S3 bucket notification (`Records[].s3`): the inbox object it names is read,
  anonymised and stored; events for the output buckets are ignored.
Options (method, shape, strength, padding, crowd_padding, threshold; `store`) come from the
JSON body, the form fields or the query string. `GET` answers a small info JSON.

The answer is JSON (ids, object keys, a presigned URL of the result, faces, timings),
or with `Accept: image/*` the anonymised image itself with an `X-Faces` header.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
import time
import traceback
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from urllib.parse import unquote_plus

# The template copies this folder to `function/` and imports `function.handler` with
# only its parent on sys.path: make the `faceblur/` package beside this file importable.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from faceblur import __version__  # noqa: E402
from faceblur.anonymise import METHOD_INFO, SHAPES, STRENGTHS  # noqa: E402
from faceblur.config import ConfigError, Settings, load_settings, parse_flag  # noqa: E402
from faceblur.errors import (  # noqa: E402
    BadRequestError,
    EmptyImageError,
    FaceblurError,
    NotAnImageError,
    TooLargeError,
    UnavailableError,
)
from faceblur.pipeline import Options, Result, anonymise_image, faces_to_json, parse_options  # noqa: E402
from faceblur.seal import fingerprint, load_public_key, seal_for_store  # noqa: E402
from faceblur.storage import FACES_METADATA, Store, StoredPair  # noqa: E402

RAW_TYPES = ("application/octet-stream",)
JSON_HEADERS = {"Content-Type": "application/json"}


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
            from faceblur.detect import build_detector

            self._detector = build_detector()
        except Exception as error:  # reported as 503 on every request, with the cause
            traceback.print_exc()
            self._error = f"{type(error).__name__}: {error}"
        finally:
            self._ready.set()

    @property
    def loaded(self) -> bool:
        return self._ready.is_set() and self._detector is not None

    def get(self):
        self._ready.wait()
        if self._detector is None:
            raise UnavailableError(f"face detector unavailable: {self._error}")
        return self._detector


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


# -- responses ----------------------------------------------------------------------------


def _json(status: int, body: dict) -> dict:
    return {"statusCode": status, "body": body, "headers": dict(JSON_HEADERS)}


def _error(status: int, message: str) -> dict:
    return _json(status, {"error": message})


# -- parsing --------------------------------------------------------------------------------


def _content_type(headers) -> tuple[str, Message]:
    """The media type (lower case) and the parsed header, for its parameters."""
    message = Message()
    message["Content-Type"] = headers.get("Content-Type", "") or ""
    return message.get_content_type() if message["Content-Type"] else "", message


def _flag(name: str, value: object) -> bool:
    try:
        return parse_flag(value)
    except ValueError as error:
        raise BadRequestError(f"{name} {error}") from None


def _decode_base64(text: object) -> bytes:
    if not isinstance(text, str):
        raise BadRequestError('"image" must be a base64 string')
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise BadRequestError('a data URL in "image" must be base64 (data:image/...;base64,)')
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError('"image" is not valid base64') from None


def _from_multipart(body: bytes, header: Message) -> tuple[bytes, dict[str, str]]:
    if not header.get_param("boundary"):
        raise BadRequestError("multipart/form-data without a boundary")
    head = f"Content-Type: {header['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadRequestError("malformed multipart/form-data body")
    image: bytes | None = None
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None or name in ("image", "file"):
            if image is not None:
                raise BadRequestError("send one image per request")
            image = payload
        elif name:
            fields[str(name)] = payload.decode("utf-8", errors="replace")
    if image is None:
        raise BadRequestError("multipart/form-data without a file field")
    return image, fields


def _request_image(event, settings: Settings) -> tuple[bytes, dict[str, object]] | dict:
    """(image bytes, raw options) from any of the three forms; a bucket event's dict."""
    body: bytes = event.body or b""
    # JSON and multipart are a little larger than the image they carry.
    if len(body) > settings.max_bytes * 4 // 3 + 64 * 1024:
        raise TooLargeError(f"request of {len(body)} bytes; the limit is {settings.max_bytes}")
    media_type, header = _content_type(event.headers)
    raw: dict[str, object] = {}
    if media_type == "application/json" or (not media_type and body[:1] == b"{"):
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadRequestError(f"malformed JSON: {error}") from None
        if not isinstance(document, dict):
            raise BadRequestError('JSON body must be an object: {"image": "<base64>", ...}')
        if "Records" in document:
            return document
        if "image" not in document:
            raise BadRequestError('JSON body needs "image": "<base64>"')
        data = _decode_base64(document.pop("image"))
        raw = document
    elif media_type == "multipart/form-data":
        data, fields = _from_multipart(body, header)
        raw = dict(fields)
    elif media_type.startswith("image/") or media_type in RAW_TYPES:
        data = body
    else:
        raise NotAnImageError(
            f"unsupported Content-Type {media_type or '(none)'!r}: send image bytes as image/* "
            'or application/octet-stream, JSON {"image": "<base64>"}, or multipart/form-data'
        )
    if not data:
        raise EmptyImageError("no image bytes in the request")
    if len(data) > settings.max_bytes:
        raise TooLargeError(f"image of {len(data)} bytes; the limit is {settings.max_bytes}")
    # Query-string options, overridden by those in the body.
    return data, {**dict(event.query.items()), **raw}


def _wants_image(headers) -> bool:
    accept = headers.get("Accept", "") or ""
    return any(part.split(";")[0].strip().startswith("image/") for part in accept.split(","))


# -- the work -------------------------------------------------------------------------------


def _anonymise(data: bytes, options: Options, settings: Settings) -> tuple[Result, float]:
    detector = MODEL.get()
    with MODEL.lock:
        started = time.perf_counter()
        result = anonymise_image(data, detector, options, max_pixels=settings.max_pixels)
    return result, time.perf_counter() - started


def _store_pair(store: Store, data: bytes, result: Result, options: Options) -> StoredPair:
    settings = store.settings
    sealed = seal_for_store(
        settings.seal_public_key, data, result.data, result.regions, settings.max_pixels
    )
    # The result keeps the input's format, so its type is the original's type too.
    return store.put_pair(
        original=data,
        original_type=result.mime_type,
        result=result.data,
        result_type=result.mime_type,
        options=vars(options),
        result_metadata={FACES_METADATA: str(len(result.faces))},
        sealed=sealed,
    )


def _describe(result: Result, pair: StoredPair | None, store: Store | None, timings: dict) -> dict:
    return {
        "id": pair.image_id if pair else None,
        "stored": pair is not None,
        "original_key": pair.original_key if pair else None,
        "result_key": pair.result_key if pair else None,
        "result_url": store.result_url(pair.result_key) if pair and store else None,
        "format": result.format,
        "width": result.width,
        "height": result.height,
        "faces": faces_to_json(result),
        "timings": {name: round(seconds, 4) for name, seconds in timings.items()},
    }


def _process(event, settings: Settings) -> object:
    parsed = _request_image(event, settings)
    if isinstance(parsed, dict):
        return _json(200, _bucket_event(parsed, settings))
    started = time.perf_counter()
    data, raw = parsed
    store_it = _flag("store", raw.pop("store", True))
    options = parse_options(raw)
    store = _settings_and_store()[1] if store_it else None
    result, pipeline_seconds = _anonymise(data, options, settings)
    stored_at = time.perf_counter()
    pair = _store_pair(store, data, result, options) if store else None
    timings = {
        **result.timings,
        "pipeline": pipeline_seconds,
        "storage": time.perf_counter() - stored_at,
        "request": time.perf_counter() - started,
    }
    if _wants_image(event.headers):
        headers = {"Content-Type": result.mime_type, "X-Faces": str(len(result.faces))}
        if pair and store:
            headers |= {
                "X-Faceblur-Id": pair.image_id,
                "X-Result-Key": pair.result_key,
                "X-Result-Url": store.result_url(pair.result_key),
            }
        # A tuple goes to Flask untouched; a dict body would be str()-ed by the template.
        return (result.data, 200, headers)
    return _json(200, _describe(result, pair, store, timings))


def _bucket_event(document: dict, settings: Settings) -> dict:
    """Process each created inbox object once; ignore everything else, with the reason."""
    records = document.get("Records")
    if not isinstance(records, list):
        raise BadRequestError('"Records" must be a list of S3 event records')
    store = _settings_and_store()[1]
    processed, ignored = [], []
    for record in records:
        try:
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
        except (KeyError, TypeError):
            raise BadRequestError("an event record lacks s3.bucket.name or s3.object.key") from None
        event_name = str(record.get("eventName", ""))
        if bucket in settings.output_buckets:
            ignored.append({"bucket": bucket, "key": key, "reason": "output bucket"})
            continue
        if bucket != settings.bucket_inbox:
            ignored.append({"bucket": bucket, "key": key, "reason": "not the inbox bucket"})
            continue
        if event_name and "ObjectCreated" not in event_name:
            ignored.append({"bucket": bucket, "key": key, "reason": f"event {event_name}"})
            continue
        if not store.exists(bucket, key):
            ignored.append({"bucket": bucket, "key": key, "reason": "no longer in the inbox"})
            continue
        try:
            data = store.read(bucket, key, max_bytes=settings.max_bytes)
            result, _ = _anonymise(data, Options(), settings)
        except FaceblurError as error:
            if error.status == 503:
                raise
            ignored.append({"bucket": bucket, "key": key, "reason": str(error)})
            continue
        pair = _store_pair(store, data, result, Options())
        # The original now lives in the originals bucket: the inbox keeps no face.
        store.remove(bucket, key)
        processed.append(
            {
                "key": key,
                "id": pair.image_id,
                "original_key": pair.original_key,
                "result_key": pair.result_key,
                "faces": len(result.faces),
            }
        )
    return {"processed": processed, "ignored": ignored}


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
            "limits": {"max_bytes": settings.max_bytes, "max_pixels": settings.max_pixels},
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
            return _info()
        if event.method != "POST":
            return _error(405, f"method {event.method} not allowed: use GET or POST")
        settings = _settings_and_store()[0]
        return _process(event, settings)
    except FaceblurError as error:
        return _error(error.status, str(error))
    except Exception:
        traceback.print_exc()
        return _error(500, "internal error; see the function's log")
