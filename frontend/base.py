"""What every view of the page shares: the blueprint the routes join (its endpoints are
`pages.*`), the services built once per app, which results a person may see, and the
answers (an error page, a JSON error, sizes and dates as people read them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template

from faceblur.accounts import RateLimiter
from faceblur.config import Settings
from faceblur.store.keys import is_safe_key

from . import accounts
from .gateway import PLAIN_ERRORS, FunctionClient
from .results import ResultsBucket
from .thumbnails import ThumbnailCache

# Videos a person may start an hour (in bursts up to as many), counted per signed-in person,
# or per address with accounts off (what may wait in the inbox: frontend.videos).
VIDEO_STARTS_PER_HOUR = 30

UNAVAILABLE = PLAIN_ERRORS[503]
pages = Blueprint("pages", __name__)


@dataclass
class Services:
    """What the views need, built once per app from the settings."""

    settings: Settings
    function: FunctionClient
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    video_starts: RateLimiter = field(
        default_factory=lambda: RateLimiter(VIDEO_STARTS_PER_HOUR, period_seconds=3600)
    )
    _results: ResultsBucket | None = None

    @property
    def results(self) -> ResultsBucket:
        # Built on first use so the page starts even while the S3 server is down.
        if self._results is None:
            self._results = ResultsBucket.from_settings(self.settings)
        return self._results


def current_services() -> Services:
    return current_app.extensions["faceblur"]


def readable(key: str) -> bool:
    """A key the function could have written, of a result this person may see."""
    return is_safe_key(key) and accounts.owns(key)


def result_key(answer: dict[str, Any]) -> str | None:
    """The results-bucket key in the function's answer, if it is one we trust."""
    candidate = answer.get("result_key")
    return candidate if isinstance(candidate, str) and readable(candidate) else None


def whole(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def shown_name(user_name: str | None) -> str:
    # Shown back to the person (autoescaped); never used for a key or a path.
    return (user_name or "photo").replace("\\", "/").rsplit("/", 1)[-1][:120]


def json_error(status: int, message: str) -> tuple[Any, int]:
    return jsonify(error=message), status


def error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


def human_bytes(size: int) -> str:
    """25 MB, 800 KB: sizes as people read them."""
    if size >= 1024 * 1024:
        value = size / (1024 * 1024)
        return f"{value:.0f} MB" if value >= 10 or value.is_integer() else f"{value:.1f} MB"
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} bytes"


def human_date(moment: datetime | None) -> str:
    if moment is None:
        return "unknown date"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")
