"""Typed errors that the adapters turn into HTTP statuses and CLI messages, and how a bad
value is quoted in them."""

from __future__ import annotations


class FaceblurError(Exception):
    """Base of every error a caller can cause or meet; `status` is its HTTP status.

    `code` names the kind of error for programs (the JSON answer's "code"), so that a
    client never has to match the English of the message. Each class has a default; a
    raiser names a narrower one where one class covers conditions a client must tell
    apart: `TooLargeError(message, code="max_video_seconds")`. `details` are more
    structured values for the JSON answer beside "error" and "code" (which option, which
    region).
    """

    status = 500
    code = "internal"

    def __init_subclass__(cls, status: int = 0, code: str = "", **kwargs: object) -> None:
        # `class NotFoundError(FaceblurError, status=404, code="not_found")`.
        super().__init_subclass__(**kwargs)
        cls.status = status or cls.status
        cls.code = code or cls.code

    def __init__(self, message: str = "", code: str | None = None, **details: object) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.details = details


class BadRequestError(FaceblurError, ValueError, status=400, code="bad_request"):
    """Malformed request or invalid option (`bad_option`, `unknown_option`, `bad_json`...)."""


class RegionsError(BadRequestError, code="regions"):
    """Regions a person gave that cannot be used (malformed, too many, outside the image);
    `details`: `problem` says what is wrong, `region` which one (from 1)."""


class NothingHiddenError(BadRequestError, code="nothing_hidden"):
    """A request that would hide nothing in a photo where the detector finds faces
    (FACEBLUR_REFUSE_UNHIDDEN_FACES=on): its "result" would show every face."""


class EditsError(BadRequestError, code="edits"):
    """A video's edits (tracks shown, regions hidden over frames) that cannot be used;
    `details`: `problem` says what is wrong, `hide` which hide edit (from 1) where one is."""


class EmptyImageError(BadRequestError, code="empty"):
    """No bytes at all."""


class CorruptImageError(BadRequestError, code="corrupt_image"):
    """A known image format whose bytes are truncated or damaged."""


class CorruptVideoError(BadRequestError, code="corrupt_video"):
    """A video whose bytes are truncated or damaged, or that holds no frame."""


class NotAnImageError(FaceblurError, status=415, code="not_an_image"):
    """Bytes that are not an image format we read."""


class NotAVideoError(FaceblurError, status=415, code="not_a_video"):
    """Bytes that are not a video format and codec we read."""


class UnsupportedError(FaceblurError, status=415, code="unsupported"):
    """A request this deployment cannot serve as asked (a video where originals are sealed)."""


class NotFoundError(FaceblurError, status=404, code="not_found"):
    """Nothing by that id (a video job), or nothing the caller may see."""


class TooLargeError(FaceblurError, status=413, code="too_large"):
    """Too many bytes or too many pixels; the code says which limit (`bytes`, `pixels`,
    `video_bytes`, `video_seconds`, `video_pixels`)."""


class UnauthorizedError(FaceblurError, status=401, code="unauthorized"):
    """No valid API key where accounts are on."""


class WebhookTokenError(UnauthorizedError, code="webhook_token"):
    """A bucket event without the S3 server's webhook token: refused, nothing read."""


class RateLimitedError(FaceblurError, status=429, code="rate_limited"):
    """Too many requests for one caller; `retry_after` is in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class UnavailableError(FaceblurError, status=503, code="unavailable"):
    """Storage or model unreachable: try again later."""


def tag(error: FaceblurError) -> str:
    """`[code key=value ...]`: the code and details as a command line prints them after
    the message, for scripts that must tell errors apart."""
    return "[" + " ".join([error.code, *(f"{k}={v}" for k, v in error.details.items())]) + "]"


# A bad value is quoted back to help the caller, but only its start: a request may carry
# a value of megabytes, and an error message should not echo it whole.
QUOTE_LIMIT = 40


def quoted(value: object, quote: bool = True, limit: int = QUOTE_LIMIT) -> str:
    """`repr(value)` (or `str` when `quote` is false) cut to `limit` characters + "..."."""
    try:
        text = repr(value) if quote else str(value)
    except ValueError:  # an int too long for Python to print
        return "(a value too long to show)"
    return text if len(text) <= limit else text[:limit] + "..."
