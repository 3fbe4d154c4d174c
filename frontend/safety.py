"""Checks that keep user-supplied names away from storage keys and file paths."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

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


# What a video result is stored as (the function writes H.264 in MP4).
VIDEO_SUFFIX = ".mp4"
RESULT_SUFFIXES = frozenset(EXTENSIONS.values()) | {VIDEO_SUFFIX}

_INBOX_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_INBOX_NAME = 100


def inbox_name(user_name: object, fallback: str = "video") -> str:
    """The last segment of an uploaded video's inbox key: the person's file name reduced
    to letters, digits, dots, dashes and underscores (is_safe_key passes it)."""
    base = PurePosixPath(str(user_name or "").replace("\\", "/")).name
    name = _INBOX_UNSAFE.sub("_", base)[-MAX_INBOX_NAME:].strip("._-")
    return name or fallback


# Kept in a download name besides letters, marks and digits of every script: what is
# harmless in a file name on any system and in a Content-Disposition header. The joiners
# are invisible but spell words in Persian and Indic scripts.
_NAME_PUNCTUATION = frozenset(" -_.()") | {"\u200c", "\u200d"}
_UNSAFE_RUN = re.compile(r"_{2,}| {2,}|\.{2,}")
MAX_STEM_CHARACTERS = 80


def _safe_character(character: str) -> str:
    if character in _NAME_PUNCTUATION or unicodedata.category(character)[0] in "LMN":
        return character
    return "_"  # separators, quotes, controls, bidi overrides, symbols


def download_name(user_name: str | None, key: str, fallback: str = "photo") -> str:
    """A safe file name for a result: the user's name without its path or unsafe characters.

    `user_name` is whatever the browser said the photo was called; only its stem
    survives, with the letters of any script (`famille été` stays `famille été`), and
    the extension comes from our key. Flask sends a non-ASCII name as RFC 5987
    `filename*` with an ASCII `filename` beside it.
    """
    stem = PurePosixPath((user_name or "").replace("\\", "/")).stem
    stem = "".join(_safe_character(c) for c in unicodedata.normalize("NFC", stem))
    stem = _UNSAFE_RUN.sub(lambda run: run.group()[0], stem)
    safe_stem = stem[:MAX_STEM_CHARACTERS].strip("._- \u200c\u200d") or fallback
    suffix = PurePosixPath(key).suffix.lower()
    if suffix not in RESULT_SUFFIXES:
        suffix = ""
    return f"{safe_stem}-anonymised{suffix}"
