"""Every object key, id and name rule: the one contract the function, the page and the
command line share. Standard library and the format table only, so the page imports it
without the S3 SDK or the model.

Buckets and what they hold:
- originals (private): `[u/<owner>/]<image id><ext>`, or `<result key>.sealed` when
  originals are sealed; video jobs' statuses at `jobs/<job>.json`, their tracks at
  `jobs/<job>.tracks.json` and a reviewer's edits at `jobs/<job>.edits.json`; the audit
  log of tracks shown under `audit/`;
- results: `[u/<owner>/]<image id>/<options id><ext>`, so an original's results share a
  prefix; ids derive from the content (and the options), so a retry writes the same keys;
- inbox: anything an operator drops; a video sent from the page or over HTTP goes to
  `[u/<owner>/]videos/<job>/<name>`, `<job>` 32 lowercase hex chosen by the uploader,
  `<name>` the person's file name through `inbox_name`.

Names people give their files reach keys, temporary files and download headers only
through `safe_name`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from faceblur.errors import BadRequestError
from faceblur.formats import EXTENSIONS, SEALED_SUFFIX, VIDEO_EXTENSIONS

# -- ids ------------------------------------------------------------------------------

_ID_CHUNK_BYTES = 256 * 1024
IMAGE_ID = re.compile(r"[0-9a-f]{32}")


def content_id(data: bytes) -> str:
    """The image's identity: the same bytes always give the same id (128 bits of SHA-256)."""
    return hashlib.sha256(data).hexdigest()[:32]


def file_content_id(path: Path) -> str:
    """`content_id` of a file's bytes, read a piece at a time (a video need not fit in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while piece := file.read(_ID_CHUNK_BYTES):
            digest.update(piece)
    return digest.hexdigest()[:32]


def options_id(options: Mapping[str, object]) -> str:
    """The identity of a set of options, independent of their order."""
    canonical = json.dumps(dict(options), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# -- originals and results --------------------------------------------------------------

# What a video result is stored as (the function writes H.264 in MP4).
VIDEO_RESULT_TYPE = "video/mp4"


def extension(mime_type: str) -> str:
    """The key suffix of a stored photo or video of this type; "" when unknown."""
    return EXTENSIONS.get(mime_type) or VIDEO_EXTENSIONS.get(mime_type, "")


VIDEO_RESULT_SUFFIX = extension(VIDEO_RESULT_TYPE)
RESULT_SUFFIXES = frozenset(EXTENSIONS.values()) | {VIDEO_RESULT_SUFFIX}


def original_key(image_id: str, mime_type: str) -> str:
    return f"{image_id}{extension(mime_type)}"


def result_key(image_id: str, options_key: str, mime_type: str) -> str:
    """Results of one original share its id as prefix, so its results can be listed."""
    return f"{image_id}/{options_key}{extension(mime_type)}"


def sealed_key(result_key: str) -> str:
    """Where the originals bucket keeps a result's sealed faces when sealing is on."""
    return f"{result_key}{SEALED_SUFFIX}"


def image_id_of(result_key: str) -> str | None:
    """The id of the photo a result was made from (its key's first segment), if well formed."""
    image_id = result_key.split("/", 1)[0]
    return image_id if "/" in result_key and IMAGE_ID.fullmatch(image_id) else None


def is_video_key(key: str) -> bool:
    """A video result (the gallery plays it; no thumbnail is decoded from it)."""
    return key.lower().endswith(VIDEO_RESULT_SUFFIX)


# -- owners ---------------------------------------------------------------------------

# Where accounts are on, each person's objects live under `u/<their storage id>/`.
OWNERS_FOLDER = "u/"


def owner_prefix(storage_id: str) -> str:
    """Where a person's originals and results live in their buckets."""
    return f"{OWNERS_FOLDER}{storage_id}/"


def split_owner(key: str) -> tuple[str, str]:
    """(the owner's prefix, or "", the rest of the key)."""
    if key.startswith(OWNERS_FOLDER) and key.count("/") >= 2:
        owner, rest = key[len(OWNERS_FOLDER) :].split("/", 1)
        return owner_prefix(owner), rest
    return "", key


# -- keys from outside ----------------------------------------------------------------

MAX_KEY_BYTES = 1024  # S3's own limit


def key_problem(key: str) -> str | None:
    """Why an object key named by a caller (e.g. in a bucket event) is refused, or None.

    Names people give their photos pass (spaces, any script, brackets); what could reach
    outside a bucket on a server that keeps objects as files, or confuse a log, does not.
    """
    if not key:
        return "empty object key"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"object key longer than {MAX_KEY_BYTES} bytes"
    if key.startswith("/") or "\\" in key:
        return "object key is an absolute path or has a backslash"
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        return "object key has an empty, '.' or '..' path segment"
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in key):
        return "object key has control characters"
    return None


# A key the function writes: a few segments of ASCII letters, digits and `._-`, each
# starting with a letter or digit. Stricter than key_problem, which must pass the names
# operators give files in the inbox: the page takes result keys from URLs.
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_SAFE_KEY_CHARS = 512


def is_safe_key(key: str) -> bool:
    """True when `key` looks like a key the function wrote, with no way out of its bucket."""
    if not key or len(key) > MAX_SAFE_KEY_CHARS or key_problem(key):
        return False
    return all(_KEY_SEGMENT.fullmatch(segment) for segment in key.split("/"))


# -- names people give their files ------------------------------------------------------

MAX_NAME_CHARS = 100
MAX_EXTENSION_CHARS = 10  # a longer "extension" is part of the name
_ASCII_NAME_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)
# Kept in a download name besides letters, marks and digits of every script: harmless in a
# file name on any system and in a Content-Disposition header. The joiners are invisible
# but spell words in Persian and Indic scripts.
_SCRIPT_PUNCTUATION = frozenset(" -_.()") | {"\u200c", "\u200d"}
_RUNS = re.compile(r"_{2,}| {2,}|\.{2,}")
# Never at either end: no hidden file, no command-line option, no blank.
_NAME_ENDS = "._- \u200c\u200d"


def _kept(character: str, any_script: bool) -> bool:
    if any_script:
        return character in _SCRIPT_PUNCTUATION or unicodedata.category(character)[0] in "LMN"
    return character in _ASCII_NAME_CHARACTERS


def _cleaned(text: str, any_script: bool) -> str:
    if not any_script:
        # Decomposed, `é` is `e` and a mark; a fullwidth slash becomes `/`, then `_`.
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    kept = "".join(c if _kept(c, any_script) else "_" for c in text)
    return _RUNS.sub(lambda run: run.group()[0], kept).strip(_NAME_ENDS)


def safe_name(name: object, any_script: bool = False, max_chars: int = MAX_NAME_CHARS) -> str:
    """The one name sanitiser: the last segment of a name a person gave, "" if nothing is left.

    Anything else becomes `_`, and runs of `_`, spaces or dots one character; no end is a
    dot, dash, underscore or space. By default ASCII letters, digits and `._-` (accents
    dropped: `Zoë` becomes `Zoe`), for what goes into an object key or a file path. With
    `any_script`, letters, marks and digits of every script plus ` -_.()`, for a download
    name (a header, never a key or a path). The extension is cleaned apart, so a name is
    never only its extension, and kept when the rest is cut to `max_chars`.
    """
    base = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    stem, dot, extension = base.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION_CHARS:
        stem, extension = base, ""
    extension = _cleaned(extension, any_script)
    suffix = f".{extension}" if extension else ""
    stem = _cleaned(stem, any_script)[: max_chars - len(suffix)].rstrip(_NAME_ENDS)
    return stem + suffix if stem else ""


def download_name(user_name: str | None, key: str, fallback: str = "photo") -> str:
    """A safe file name for a result: the user's name without its path or unsafe characters.

    `user_name` is whatever the browser said the photo was called; only its stem
    survives, with the letters of any script (`famille été` stays `famille été`), and
    the extension comes from our key. The page sends a non-ASCII name as RFC 5987
    `filename*` with an ASCII `filename` beside it.
    """
    stem = PurePosixPath(str(user_name or "").replace("\\", "/")).stem
    safe_stem = safe_name(stem, any_script=True, max_chars=80) or fallback
    suffix = PurePosixPath(key).suffix.lower()
    if suffix not in RESULT_SUFFIXES:
        suffix = ""
    return f"{safe_stem}-anonymised{suffix}"


# -- video jobs -------------------------------------------------------------------------

VIDEOS_FOLDER = "videos/"
JOBS_FOLDER = "jobs/"
JOB_ID = re.compile(r"[0-9a-f]{32}")
# A job's states as its status tells them. A job whose inbox object exists with no status
# yet is queued; a stored "queued" is a render with a reviewer's edits waiting.
JOB_STATES = ("queued", "running", "done", "failed")


def new_job_id() -> str:
    return uuid.uuid4().hex


def check_job_id(job: str) -> str:
    """`job` when it is a well-formed id; BadRequestError otherwise."""
    if not JOB_ID.fullmatch(job or ""):
        raise BadRequestError("a job id is 32 lowercase hexadecimal characters", "bad_job_id")
    return job


def inbox_name(name: object, mime_type: str = "") -> str:
    """The last segment of a video's inbox key (and its temporary file's name): the
    person's file name through `safe_name`, else `video` with the type's extension."""
    return safe_name(name) or f"video{VIDEO_EXTENSIONS.get(mime_type, '')}"


def inbox_key(prefix: str, job: str, name: str) -> str:
    """Where a video of job `job` waits; `name` already an `inbox_name` ("" for the folder)."""
    return f"{prefix}{VIDEOS_FOLDER}{job}/{name}"


def job_inbox_folder(prefix: object, job: str) -> str | None:
    """Where job `job`'s video waits in the inbox, for the owner `prefix` its status names
    ("" where accounts are off); None for a prefix that is no owner's."""
    if not isinstance(prefix, str) or (prefix and split_owner(f"{prefix}-")[0] != prefix):
        return None
    return inbox_key(prefix, job, "")


def job_of_key(key: str) -> str:
    """The job an inbox key belongs to: its `videos/<job>/` folder, else a hash of the key."""
    _, rest = split_owner(key)
    parts = rest.split("/")
    if len(parts) >= 3 and parts[0] + "/" == VIDEOS_FOLDER and JOB_ID.fullmatch(parts[1]):
        return parts[1]
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def status_key(job: str) -> str:
    """Where the originals bucket keeps a video job's status (written by the function only)."""
    return f"{JOBS_FOLDER}{job}.json"


# The service's audit log of tracks shown, in the originals bucket: one object per entry
# (`faceblur audit verify s3://<originals>/audit/` checks it).
AUDIT_FOLDER = "audit/"


def tracks_key(job: str) -> str:
    """Where the originals bucket keeps a finished video job's tracks (`GET ?tracks=1`)."""
    return f"{JOBS_FOLDER}{job}.tracks.json"


def edits_key(job: str) -> str:
    """Where the originals bucket keeps the edits a video job's next render applies."""
    return f"{JOBS_FOLDER}{job}.edits.json"


def job_keys(job: str) -> list[str]:
    """The named objects of video job `job` in the originals bucket (its segments, listed
    under segments_prefix, go before them): what deleting the job removes. The status is
    last, so a delete that fails half-way still finds the job when it is tried again."""
    return [tracks_key(job), edits_key(job), status_key(job)]


def segments_prefix(job: str) -> str:
    """Where the originals bucket keeps a split job's segments while it runs (removed when
    the job is done or failed): one status object and one encoded MP4 per segment, so
    that workers never write the same object."""
    return f"{JOBS_FOLDER}{job}/segments/"


def segment_status_key(job: str, index: int) -> str:
    return f"{segments_prefix(job)}{index:05d}.json"


def segment_video_key(job: str, index: int) -> str:
    return f"{segments_prefix(job)}{index:05d}.mp4"
