"""Checks that keep user-supplied names away from storage keys and file paths."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from werkzeug.utils import secure_filename

from faceblur.formats import EXTENSIONS

# Result keys are made by the function from the image's content: a few path
# segments of letters, digits, dots, dashes and underscores. Anything else
# (.., absolute paths, backslashes, query characters) is refused.
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_KEY_LENGTH = 512


def is_safe_key(key: str) -> bool:
    """True when `key` looks like a key the function wrote, with no way out of its bucket."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return False
    segments = key.split("/")
    return all(_KEY_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments)


def download_name(user_name: str | None, key: str, fallback: str = "photo") -> str:
    """A safe file name for a result: the user's name without its path or odd characters.

    `user_name` is whatever the browser said the photo was called; only its stem
    survives, through `secure_filename`, and the extension comes from our key.
    """
    stem = PurePosixPath((user_name or "").replace("\\", "/")).stem
    safe_stem = secure_filename(stem)[:80].strip("._-") or fallback
    suffix = PurePosixPath(key).suffix.lower()
    if suffix not in EXTENSIONS.values():
        suffix = ""
    return f"{safe_stem}-anonymised{suffix}"
