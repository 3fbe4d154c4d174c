"""Typed errors that the adapters turn into HTTP statuses and CLI messages, and how a bad
value is quoted in them."""

from __future__ import annotations


class FaceblurError(Exception):
    """Base of every error a caller can cause or meet; `status` is its HTTP status.

    `code`, when set, names the kind of error for programs (the JSON answer's "code"), so
    that a client never has to match the English of the message.
    """

    status = 500
    code: str | None = None


class BadRequestError(FaceblurError, ValueError):
    """Malformed request or invalid option."""

    status = 400


class RegionsError(BadRequestError):
    """Regions a person gave that cannot be used (malformed, too many, outside the image)."""

    code = "regions"


class EmptyImageError(BadRequestError):
    """No bytes at all."""


class CorruptImageError(BadRequestError):
    """A known image format whose bytes are truncated or damaged."""


class CorruptVideoError(BadRequestError):
    """A video whose bytes are truncated or damaged, or that holds no frame."""


class NotAnImageError(FaceblurError):
    """Bytes that are not an image format we read."""

    status = 415


class NotAVideoError(FaceblurError):
    """Bytes that are not a video format and codec we read."""

    status = 415


class UnsupportedError(FaceblurError):
    """A request this deployment cannot serve as asked (a video where originals are sealed)."""

    status = 415


class NotFoundError(FaceblurError):
    """Nothing by that id (a video job), or nothing the caller may see."""

    status = 404


class TooLargeError(FaceblurError):
    """Too many bytes or too many pixels."""

    status = 413


class UnauthorizedError(FaceblurError):
    """No valid API key where accounts are on."""

    status = 401


class RateLimitedError(FaceblurError):
    """Too many requests for one caller; `retry_after` is in whole seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(FaceblurError):
    """Storage or model unreachable: try again later."""

    status = 503


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
