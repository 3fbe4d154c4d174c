"""The S3 store: originals and results in separate buckets, written as pairs.

Only the adapters use it, never the pipeline. It speaks S3 through the `minio` SDK
(keyword arguments only), so MinIO or any S3-compatible server can stand behind it.

Guarantees:
- keys derive from the content (and, for a result, the options): a retried request
  writes the same objects instead of new ones;
- never half a pair: the original is written first, then the result; if anything
  fails, what was written is undone so that only whole pairs remain (our original goes
  unless a result of it exists or it was there before; our result goes if its original
  is gone). When the server is down, that is retried in the background until it is back;
- only results get presigned URLs; originals stay private.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.datatypes import Object
from minio.error import MinioException, S3Error

from faceblur.config import Settings
from faceblur.errors import BadRequestError, TooLargeError, UnavailableError
from faceblur.formats import EXTENSIONS, SEALED_MIME_TYPE, SEALED_SUFFIX, VIDEO_EXTENSIONS

# Connect and read timeouts come from the settings (FACEBLUR_S3_TIMEOUT_SECONDS): a client
# waiting on a dead or frozen server gets its 503 in seconds. A refused connection is
# retried (cheap); a read that timed out is not, or a frozen server would cost the
# timeout twice.
RETRIES = urllib3.Retry(
    total=2, connect=2, read=0, backoff_factor=0.1, status_forcelist=(500, 502, 503, 504)
)
STREAM_CHUNK_BYTES = 256 * 1024

# What every caller (and through it every person) reads when the store fails; the
# details (host, port, key, the SDK's text) go to the log only.
UNAVAILABLE_MESSAGE = "storage unavailable: the photo store did not answer; try again later"

log = logging.getLogger(__name__)
POOL_SIZE = 16  # above the 8 concurrent requests a function replica is asked to bear

ROLLBACK_FIRST_DELAY_SECONDS = 0.5
ROLLBACK_MAX_DELAY_SECONDS = 30.0


T = TypeVar("T")

# User metadata on each result: how many faces it hides (shown by the gallery).
FACES_METADATA = "faceblur-faces"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def content_id(data: bytes) -> str:
    """The image's identity: the same bytes always give the same id (128 bits of SHA-256)."""
    return hashlib.sha256(data).hexdigest()[:32]


def file_content_id(path: Path) -> str:
    """`content_id` of a file's bytes, read a piece at a time (a video need not fit in memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while piece := file.read(STREAM_CHUNK_BYTES):
            digest.update(piece)
    return digest.hexdigest()[:32]


def options_id(options: Mapping[str, object]) -> str:
    """The identity of a set of options, independent of their order."""
    canonical = json.dumps(dict(options), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def extension(mime_type: str) -> str:
    return EXTENSIONS.get(mime_type) or VIDEO_EXTENSIONS.get(mime_type, "")


_IMAGE_ID = re.compile(r"[0-9a-f]{32}")


# Where accounts are on, each person's objects live under `u/<their storage id>/`.
OWNERS_FOLDER = "u/"


def split_owner(key: str) -> tuple[str, str]:
    """(the owner's prefix, or "", the rest of the key)."""
    if key.startswith(OWNERS_FOLDER) and key.count("/") >= 2:
        owner, rest = key[len(OWNERS_FOLDER) :].split("/", 1)
        return f"{OWNERS_FOLDER}{owner}/", rest
    return "", key


def image_id_of(result_key: str) -> str | None:
    """The id of the photo a result was made from (its key's first segment), if well formed."""
    image_id = result_key.split("/", 1)[0]
    return image_id if "/" in result_key and _IMAGE_ID.fullmatch(image_id) else None


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


def original_key(image_id: str, mime_type: str) -> str:
    return f"{image_id}{extension(mime_type)}"


def result_key(image_id: str, options_key: str, mime_type: str) -> str:
    """Results of one original share its id as prefix, so its results can be listed."""
    return f"{image_id}/{options_key}{extension(mime_type)}"


def sealed_key(result_key: str) -> str:
    """Where the originals bucket keeps a result's sealed faces when sealing is on."""
    return f"{result_key}{SEALED_SUFFIX}"


@dataclass(frozen=True)
class StoredPair:
    image_id: str
    original_key: str
    result_key: str


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: datetime
    size: int


@dataclass(frozen=True)
class _Rollback:
    """A pair whose writing failed, to be left whole or not at all."""

    pair: StoredPair
    original_was_there: bool


def _describe(error: Exception) -> str:
    if isinstance(error, S3Error):
        return f"{error.code}: {error.message}"
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]


def _unavailable(what: str, error: Exception) -> UnavailableError:
    log.warning("storage call failed (%s): %s", what, _describe(error))
    return UnavailableError(UNAVAILABLE_MESSAGE)


class Store:
    """Originals, results and the inbox in one S3 server."""

    def __init__(self, settings: Settings, client: Minio | None = None) -> None:
        self.settings = settings
        self.client = client or Minio(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(
                    connect=settings.s3_timeout_seconds, read=settings.s3_timeout_seconds
                ),
                retries=RETRIES,
                maxsize=POOL_SIZE,
                cert_reqs="CERT_REQUIRED" if settings.s3_secure else "CERT_NONE",
            ),
        )
        # Presigning is pure computation (the region is known): a client for the address
        # browsers use signs URLs they can open, while the code talks to the endpoint.
        public = urlsplit(settings.s3_public_url)
        self._presigner = Minio(
            endpoint=public.netloc,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=public.scheme == "https",
            region=settings.s3_region,
        )
        self._pending_rollbacks: set[_Rollback] = set()  # to finish once storage is back
        self._lock = threading.Lock()
        self._retrier: threading.Thread | None = None

    # -- errors ---------------------------------------------------------------------

    def _call(self, what: str, action: Callable[[], T]) -> T:
        """Run one SDK call; any storage failure becomes a 503 in plain words (the log
        gets what failed and why)."""
        try:
            return action()
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
            raise _unavailable(what, error) from error

    # -- health -------------------------------------------------------------------------

    def check(self) -> None:
        """Raise UnavailableError unless the server answers and our buckets exist."""
        for bucket in (self.settings.bucket_originals, self.settings.bucket_results):
            if not self._call(
                f"bucket {bucket}", lambda b=bucket: self.client.bucket_exists(bucket_name=b)
            ):
                log.warning("storage is missing the bucket %r", bucket)
                raise UnavailableError("storage unavailable: the photo store is not set up")

    # -- reading ------------------------------------------------------------------------

    def _stat(self, bucket: str, key: str) -> Object | None:
        """An object's stat, or None when there is no such object."""
        try:
            return self.client.stat_object(bucket_name=bucket, object_name=key)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise _unavailable(f"stat {bucket}/{key}", error) from error
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
            raise _unavailable(f"stat {bucket}/{key}", error) from error

    def exists(self, bucket: str, key: str) -> bool:
        return self._stat(bucket, key) is not None

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key in `bucket` under `prefix`, sorted."""

        def listing() -> list[str]:
            objects = self.client.list_objects(bucket_name=bucket, prefix=prefix, recursive=True)
            return sorted(obj.object_name for obj in objects)

        return self._call(f"list {bucket}", listing)

    def results_newest_first(self, prefix: str = "") -> list[StoredObject]:
        """Every result under `prefix` with its date and size, newest first (S3 lists by key)."""

        def listing() -> list[StoredObject]:
            objects = self.client.list_objects(
                bucket_name=self.settings.bucket_results, prefix=prefix, recursive=True
            )
            return [
                StoredObject(obj.object_name, obj.last_modified or _EPOCH, obj.size or 0)
                for obj in objects
                if not obj.is_dir and obj.object_name
            ]

        found = self._call(f"list {self.settings.bucket_results}", listing)
        return sorted(found, key=lambda obj: (obj.modified, obj.key), reverse=True)

    def face_count(self, key: str) -> int | None:
        """The number of faces a result hides, from its metadata (None if unknown)."""
        stat = self._call(
            f"stat {key}",
            lambda: self.client.stat_object(
                bucket_name=self.settings.bucket_results, object_name=key
            ),
        )
        metadata = {name.lower(): value for name, value in (stat.metadata or {}).items()}
        value = str(metadata.get(f"x-amz-meta-{FACES_METADATA}", "")).strip()
        return int(value) if value.isdigit() else None

    def read(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        """An object's bytes; BadRequestError when missing, TooLargeError above max_bytes."""
        if not self.exists(bucket, key):
            raise BadRequestError(f"no object {key!r} in bucket {bucket!r}")
        if max_bytes is not None:
            size = self._call(
                f"stat {bucket}/{key}",
                lambda: self.client.stat_object(bucket_name=bucket, object_name=key).size,
            )
            if size is not None and size > max_bytes:
                raise TooLargeError(f"object {key!r} has {size} bytes; the limit is {max_bytes}")

        def download() -> bytes:
            response = self.client.get_object(bucket_name=bucket, object_name=key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(f"read {bucket}/{key}", download)

    def size(self, bucket: str, key: str) -> int | None:
        """An object's size in bytes, or None when there is no such object."""
        stat = self._stat(bucket, key)
        return None if stat is None else int(stat.size or 0)

    def chunks(self, bucket: str, key: str) -> Iterator[bytes]:
        """An object's bytes a piece at a time, for streaming without holding it whole."""
        response = self._call(
            f"read {bucket}/{key}",
            lambda: self.client.get_object(bucket_name=bucket, object_name=key),
        )
        try:
            pieces = response.stream(STREAM_CHUNK_BYTES)
            while True:
                piece = self._call(f"read {bucket}/{key}", lambda: next(pieces, None))
                if piece is None:
                    return
                yield piece
        finally:
            response.close()
            response.release_conn()

    def head(self, bucket: str, key: str, length: int) -> bytes:
        """An object's first `length` bytes (fewer when it is shorter), to tell what it is.

        BadRequestError when missing; an empty object gives b"" (a range read of nothing
        is an error, or a stall, depending on the server)."""
        size = self.size(bucket, key)
        if size is None:
            raise BadRequestError(f"no object {key!r} in bucket {bucket!r}")
        if size == 0:
            return b""

        def download() -> bytes:
            response = self.client.get_object(
                bucket_name=bucket, object_name=key, offset=0, length=min(length, size)
            )
            try:
                return response.read()[:length]
            finally:
                response.close()
                response.release_conn()

        return self._call(f"read {bucket}/{key}", download)

    def fget(self, bucket: str, key: str, path: Path, max_bytes: int | None = None) -> int:
        """Stream an object into the file `path`; its size. BadRequestError when missing,
        TooLargeError above `max_bytes` (checked before a byte is read, and while reading)."""
        size = self.size(bucket, key)
        if size is None:
            raise BadRequestError(f"no object {key!r} in bucket {bucket!r}")
        if max_bytes is not None and size > max_bytes:
            raise TooLargeError(f"a file of {size} bytes; the limit is {max_bytes}")
        written = 0
        with path.open("wb") as file:
            for piece in self.chunks(bucket, key):
                written += len(piece)
                if max_bytes is not None and written > max_bytes:  # replaced since the stat
                    raise TooLargeError(f"a file of over {max_bytes} bytes; that is the limit")
                file.write(piece)
        return written

    def fput(
        self,
        bucket: str,
        key: str,
        path: Path,
        mime_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write the file `path` as one object, streamed (multipart above the SDK's part size)."""

        def upload() -> None:
            with path.open("rb") as file:
                self.client.put_object(
                    bucket_name=bucket,
                    object_name=key,
                    data=file,
                    length=path.stat().st_size,
                    content_type=mime_type,
                    metadata=dict(metadata or {}),
                )

        self._call(f"write {bucket}/{key}", upload)

    def put(self, bucket: str, key: str, data: bytes, mime_type: str) -> None:
        """Write one object as it is (an audit entry, for instance); 503 when storage fails."""
        self._put(bucket, key, data, mime_type, {})

    def remove(self, bucket: str, key: str) -> None:
        self._call(
            f"remove {bucket}/{key}",
            lambda: self.client.remove_object(bucket_name=bucket, object_name=key),
        )

    def remove_photo(self, result_key: str) -> bool:
        """Delete the photo a result was made from and every result made from it.

        The original goes first: should anything fail half-way, what is left is results
        without their original, which a retry (or the rollback rule) removes; never a
        photo with faces. False when nothing of that photo is stored.
        """
        owner, rest = split_owner(result_key)
        image_id = image_id_of(rest)
        if image_id is None:
            return False
        settings = self.settings
        # Originals are `<id><ext>` and ids have a fixed length: the prefix is exact.
        originals = self.keys(settings.bucket_originals, prefix=owner + image_id)
        results = self.keys(settings.bucket_results, prefix=f"{owner}{image_id}/")
        for key in originals:
            self.remove(settings.bucket_originals, key)
        for key in results:
            self.remove(settings.bucket_results, key)
        return bool(originals or results)

    def result_url(self, key: str) -> str:
        """A presigned GET for a result; there is deliberately no such method for originals."""
        expiry = timedelta(seconds=self.settings.presign_expiry_seconds)
        return self._call(
            "presign",
            lambda: self._presigner.presigned_get_object(
                bucket_name=self.settings.bucket_results, object_name=key, expires=expiry
            ),
        )

    # -- writing a pair -----------------------------------------------------------------

    def _put(
        self, bucket: str, key: str, data: bytes, mime_type: str, metadata: Mapping[str, str]
    ) -> None:
        self._call(
            f"write {bucket}/{key}",
            lambda: self.client.put_object(
                bucket_name=bucket,
                object_name=key,
                data=io.BytesIO(data),
                length=len(data),
                content_type=mime_type,
                metadata=dict(metadata),
            ),
        )

    def put_pair(
        self,
        original: bytes,
        original_type: str,
        result: bytes,
        result_type: str,
        options: Mapping[str, object],
        result_metadata: Mapping[str, str] | None = None,
        sealed: bytes | None = None,
        prefix: str = "",
    ) -> StoredPair:
        """Store the original and its result, both or neither (see the module docstring).

        With `sealed` (faceblur.seal.seal_original's file), the originals bucket gets that
        instead of the original, at sealed_key(result key): no face is stored in the clear.
        `prefix` (an owner's `u/<id>/`) goes before both keys: an owner's objects are
        theirs alone, even when two people send the same photo.
        """
        self.retry_rollbacks()
        image_id = content_id(original)
        kept_key = prefix + result_key(image_id, options_id(options), result_type)
        pair = StoredPair(
            image_id=image_id,
            original_key=prefix + original_key(image_id, original_type)
            if sealed is None
            else sealed_key(kept_key),
            result_key=kept_key,
        )
        if sealed is not None:
            original, original_type = sealed, SEALED_MIME_TYPE
        originals, results = self.settings.bucket_originals, self.settings.bucket_results
        original_was_there = self.exists(originals, pair.original_key)
        if sealed is not None and original_was_there and self.exists(results, pair.result_key):
            # A seal opens only the exact result it was made with, and a new result of the
            # same photo differs (fresh noise): keep the whole pair, never mix two.
            return pair
        metadata = {"faceblur-original": pair.original_key, **(result_metadata or {})}
        self._write_pair(
            _Rollback(pair, original_was_there),
            lambda: self._put(originals, pair.original_key, original, original_type, {}),
            lambda: self._put(results, pair.result_key, result, result_type, metadata),
        )
        return pair

    def put_file_pair(
        self,
        original: Path,
        original_type: str,
        result: Path,
        result_type: str,
        options: Mapping[str, object],
        result_metadata: Mapping[str, str] | None = None,
        prefix: str = "",
    ) -> StoredPair:
        """`put_pair` for files streamed from disk (videos): the same keys, the same
        both-or-neither; no sealing (videos cannot be sealed yet)."""
        self.retry_rollbacks()
        image_id = file_content_id(original)
        pair = StoredPair(
            image_id=image_id,
            original_key=prefix + original_key(image_id, original_type),
            result_key=prefix + result_key(image_id, options_id(options), result_type),
        )
        originals, results = self.settings.bucket_originals, self.settings.bucket_results
        original_was_there = self.exists(originals, pair.original_key)
        metadata = {"faceblur-original": pair.original_key, **(result_metadata or {})}
        self._write_pair(
            _Rollback(pair, original_was_there),
            lambda: self.fput(originals, pair.original_key, original, original_type),
            lambda: self.fput(results, pair.result_key, result, result_type, metadata),
        )
        return pair

    def _write_pair(
        self,
        rollback: _Rollback,
        write_original: Callable[[], None],
        write_result: Callable[[], None],
    ) -> None:
        """Original first, then result; on a storage failure, roll back (module docstring)."""
        try:
            write_original()
            write_result()
            # A concurrent request for the same photo may have rolled the shared original
            # back between our two writes: put it again so our result is not left alone.
            if not self.exists(self.settings.bucket_originals, rollback.pair.original_key):
                write_original()
        except UnavailableError:
            self._roll_back(rollback)
            raise

    # -- rolling back a half pair ----------------------------------------------------------

    def _finish(self, rollback: _Rollback) -> None:
        """Leave whole pairs only: drop our result if its original is gone, and our
        original if it has no result at all (unless it was there before us)."""
        pair, settings = rollback.pair, self.settings
        has_original = self.exists(settings.bucket_originals, pair.original_key)
        if not has_original:
            if self.exists(settings.bucket_results, pair.result_key):
                self.remove(settings.bucket_results, pair.result_key)
            return
        if rollback.original_was_there:
            return
        results_of_original = pair.result_key.rsplit("/", 1)[0] + "/"
        if not self.keys(settings.bucket_results, prefix=results_of_original):
            self.remove(settings.bucket_originals, pair.original_key)

    def _roll_back(self, rollback: _Rollback) -> None:
        try:
            self._finish(rollback)
        except UnavailableError:
            with self._lock:
                self._pending_rollbacks.add(rollback)
                if self._retrier is None:
                    self._retrier = threading.Thread(
                        target=self._retry_until_done, name="faceblur-rollback", daemon=True
                    )
                    self._retrier.start()

    @property
    def pending_rollbacks(self) -> frozenset[_Rollback]:
        with self._lock:
            return frozenset(self._pending_rollbacks)

    def retry_rollbacks(self) -> None:
        """Finish rollbacks that failed while storage was down; quiet if it still is."""
        for rollback in self.pending_rollbacks:
            try:
                self._finish(rollback)
            except UnavailableError:
                return
            with self._lock:
                self._pending_rollbacks.discard(rollback)

    def _retry_until_done(self) -> None:
        delay = ROLLBACK_FIRST_DELAY_SECONDS
        while True:
            time.sleep(delay)
            self.retry_rollbacks()
            delay = min(delay * 2, ROLLBACK_MAX_DELAY_SECONDS)
            with self._lock:
                if not self._pending_rollbacks:
                    self._retrier = None
                    return

    # -- uploads straight from a browser -------------------------------------------------

    def inbox_upload_url(self, key: str) -> str:
        """A presigned PUT of inbox object `key` on the public S3 address: a browser sends a
        large file (a video) straight to the inbox, never through a function request."""
        expiry = timedelta(seconds=self.settings.presign_expiry_seconds)
        return self._call(
            "presign",
            lambda: self._presigner.presigned_put_object(
                bucket_name=self.settings.bucket_inbox, object_name=key, expires=expiry
            ),
        )
