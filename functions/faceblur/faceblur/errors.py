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

    def __init_subclass__(cls, status: int = 0, **kwargs: object) -> None:
        # `class NotFoundError(FaceblurError, status=404)`: the status beside the name.
        super().__init_subclass__(**kwargs)
        cls.status = status or cls.status


class BadRequestError(FaceblurError, ValueError, status=400):
    """Malformed request or invalid option."""


class RegionsError(BadRequestError):
    """Regions a person gave that cannot be used (malformed, too many, outside the image)."""

    code = "regions"


class EmptyImageError(BadRequestError):
    """No bytes at all."""


class CorruptImageError(BadRequestError):
    """A known image format whose bytes are truncated or damaged."""


class CorruptVideoError(BadRequestError):
    """A video whose bytes are truncated or damaged, or that holds no frame."""


class NotAnImageError(FaceblurError, status=415):
    """Bytes that are not an image format we read."""


class NotAVideoError(FaceblurError, status=415):
    """Bytes that are not a video format and codec we read."""


class UnsupportedError(FaceblurError, status=415):
    """A request this deployment cannot serve as asked (a video where originals are sealed)."""


class NotFoundError(FaceblurError, status=404):
    """Nothing by that id (a video job), or nothing the caller may see."""


class TooLargeError(FaceblurError, status=413):
    """Too many bytes or too many pixels."""


class UnauthorizedError(FaceblurError, status=401):
    """No valid API key where accounts are on."""


class RateLimitedError(FaceblurError, status=429):
    """Too many requests for one caller; `retry_after` is in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnavailableError(FaceblurError, status=503):
    """Storage or model unreachable: try again later."""


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
