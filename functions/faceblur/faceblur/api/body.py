"""Request bodies of the function's HTTP API, decoded with the limits a public door needs:
JSON nested no deeper than any request or event needs, base64 fields (a `data:` URL
prefix accepted), multipart forms of a handful of parts. Every problem is a 400
(BadRequestError) that says what is wrong, its code which kind: `bad_json`,
`json_too_deep`, `bad_base64`, `bad_multipart`, `missing_file`.
"""

from __future__ import annotations

import base64
import binascii
import json

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from faceblur.errors import BadRequestError

# One image and a handful of option fields: a form of more parts is not ours.
MAX_FORM_PARTS = 32
# Deeper than any request or bucket event needs (an event is 5 levels), far below where
# Python's parser or repr() would recurse out of stack.
MAX_JSON_DEPTH = 32
# The multipart fields that may carry the file when the part has no file name.
FILE_FIELDS = ("image", "file", "video")
# A bucket notification names objects, never carries them: one record is a few KB.
MAX_EVENT_BYTES = 1024 * 1024
# A JSON body carries a video when it names the field "video" before its file: its
# options are few and short, so the name comes within these first bytes.
VIDEO_FIELD_WINDOW = 4096
# What JSON (base64, a third larger) and multipart (part headers) add to the file.
ENVELOPE_BYTES = 64 * 1024


def may_carry_video(media_type: str, body: bytes) -> bool:
    """Whether a request of this Content-Type may carry a video, so be sized for one:
    raw video or octet bytes, a multipart form, JSON naming a "video" field. An image/*
    body, or JSON of an "image", is a photo and gets the photo limit."""
    if media_type.startswith("video/") or media_type in (
        "application/octet-stream",
        "multipart/form-data",
    ):
        return True
    return media_type == "application/json" and b'"video"' in body[:VIDEO_FIELD_WINDOW]


def body_limit(media_type: str, file_limit: int) -> int:
    """Most bytes a body of this Content-Type may hold to carry a file of `file_limit`."""
    if media_type in ("application/json", "multipart/form-data"):
        return file_limit * 4 // 3 + ENVELOPE_BYTES
    return file_limit


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


def parse_json(body: bytes) -> object:
    """The JSON document in `body`, nested at most MAX_JSON_DEPTH deep."""
    too_deep = BadRequestError(
        f"malformed JSON: nested too deeply (at most {MAX_JSON_DEPTH})", "json_too_deep"
    )
    try:
        document = json.loads(body)
    except RecursionError:
        raise too_deep from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequestError(f"malformed JSON: {error}", "bad_json") from None
    if _json_depth(document) > MAX_JSON_DEPTH:
        raise too_deep
    return document


def decode_base64(text: object, field: str = "image") -> bytes:
    """The bytes of a base64 JSON field, whitespace and a `data:...;base64,` prefix allowed."""
    if not isinstance(text, str):
        raise BadRequestError(f'"{field}" must be a base64 string', "bad_base64")
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise BadRequestError(
                f'a data URL in "{field}" must be base64 (data:{field}/...;base64,)', "bad_base64"
            )
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f'"{field}" is not valid base64', "bad_base64") from None


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
        raise BadRequestError(
            f"multipart/form-data of more than {MAX_FORM_PARTS} parts", "bad_multipart"
        ) from None
    except ValueError:
        raise BadRequestError("malformed multipart/form-data body", "bad_multipart") from None
    if isinstance(event, NeedData):
        raise BadRequestError("multipart/form-data body cut short", "bad_multipart")
    return parts


def parse_multipart(
    body: bytes, parameters: dict[str, str]
) -> tuple[bytes, dict[str, str], str | None]:
    """(the file's bytes, the other fields, the file's name if it has one).

    `parameters`: the Content-Type's (its `boundary`).
    """
    boundary = parameters.get("boundary")
    if not boundary:
        raise BadRequestError("multipart/form-data without a boundary", "bad_multipart")
    data: bytes | None = None
    filename: str | None = None
    fields: dict[str, str] = {}
    for part, payload in _multipart_parts(body, boundary):
        if isinstance(part, File) or part.name in FILE_FIELDS:
            if data is not None:
                raise BadRequestError("send one image per request", "bad_multipart")
            data = payload
            filename = part.filename if isinstance(part, File) else None
        elif part.name:
            fields[part.name] = payload.decode("utf-8", errors="replace")
    if data is None:
        raise BadRequestError("multipart/form-data without a file field", "missing_file")
    return data, fields, filename
