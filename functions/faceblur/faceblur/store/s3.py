"""The S3 store: originals, results and the inbox, each a bucket, in one S3 server.

Only the adapters use it, never the pipeline. It speaks S3 through the `minio` SDK
(keyword arguments only), so MinIO or any S3-compatible server can stand behind it.

Guarantees:
- keys follow faceblur.store.keys: derived from the content (and, for a result, the
  options), so a retried request writes the same objects instead of new ones;
- never half a pair: faceblur.store.pairs writes an original and its result over the
  calls here, both or neither;
- only results get presigned URLs; originals stay private.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.datatypes import Object, PostPolicy
from minio.error import MinioException, S3Error

from faceblur.config import Settings
from faceblur.errors import BadRequestError, TooLargeError, UnavailableError
from faceblur.store.keys import (
    JOB_ID,
    JOBS_FOLDER,
    image_id_of,
    is_video_key,
    job_inbox_folder,
    job_keys,
    segments_prefix,
    split_owner,
    status_key,
)
from faceblur.store.pairs import PairWriter

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


T = TypeVar("T")

# User metadata on each result: how many faces it hides (shown by the gallery).
FACES_METADATA = "faceblur-faces"
# "true" on a result that hides nothing (no face found, no region given): a copy of its
# original, which a reader must not take for an anonymised photo.
NOTHING_HIDDEN_METADATA = "faceblur-nothing-hidden"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# How long a presigned upload form may be used to begin an upload: enough to pick it up
# and start sending, not an hour of reuse.
INBOX_UPLOAD_SECONDS = 600


@dataclass(frozen=True)
class UploadForm:
    """Where a browser POSTs a file, and the form fields (policy, signature) to send first."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: datetime
    size: int


def _describe(error: Exception) -> str:
    if isinstance(error, S3Error):
        return f"{error.code}: {error.message}"
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]


def _unavailable(what: str, error: Exception) -> UnavailableError:
    log.warning("storage call failed (%s): %s", what, _describe(error))
    return UnavailableError(UNAVAILABLE_MESSAGE)


class Store(PairWriter):
    """Originals, results and the inbox in one S3 server; pairs written by PairWriter."""

    def __init__(self, settings: Settings, client: Minio | None = None) -> None:
        super().__init__()
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

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        mime_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write one object as it is (an audit entry, for instance); 503 when storage fails."""
        self._call(
            f"write {bucket}/{key}",
            lambda: self.client.put_object(
                bucket_name=bucket,
                object_name=key,
                data=io.BytesIO(data),
                length=len(data),
                content_type=mime_type,
                metadata=dict(metadata or {}),
            ),
        )

    def remove(self, bucket: str, key: str) -> None:
        self._call(
            f"remove {bucket}/{key}",
            lambda: self.client.remove_object(bucket_name=bucket, object_name=key),
        )

    def remove_photo(self, result_key: str) -> bool:
        """Delete the photo a result was made from and every result made from it (for a
        video, also the jobs that made those results: `remove_jobs`).

        A video's jobs go first, their inbox copies with them: a render still waiting or
        running then finds its copy gone and keeps nothing (`service.videos`), and what it
        wrote before is listed below. Then the original: should anything fail half-way,
        what is left is results without their original, which a retry (or the rollback
        rule) removes; never a photo with faces. False when nothing of that photo is
        stored.
        """
        owner, rest = split_owner(result_key)
        image_id = image_id_of(rest)
        if image_id is None:
            return False
        settings = self.settings
        jobs = 0
        if is_video_key(result_key):  # the jobs that made these results, or are remaking them
            made_here = f"{owner}{image_id}/"
            jobs = self.remove_jobs(
                lambda status: any(
                    str(status.get(name) or "").startswith(made_here)
                    for name in ("result_key", "replaces")
                )
            )
        # Originals are `<id><ext>` and ids have a fixed length: the prefix is exact.
        originals = self.keys(settings.bucket_originals, prefix=owner + image_id)
        results = self.keys(settings.bucket_results, prefix=f"{owner}{image_id}/")
        for key in originals:
            self.remove(settings.bucket_originals, key)
        for key in results:
            self.remove(settings.bucket_results, key)
        return bool(originals or results or jobs)

    def remove_jobs(self, chosen: Callable[[dict], bool]) -> int:
        """Remove every video job whose status `chosen` accepts, with all that belongs to it
        (its video waiting in the inbox, segments, tracks, edits, status: `job_keys`); how
        many objects went.

        Statuses live by job id (`jobs/<job>.json`) and name their owner and result inside,
        so every status is read: a delete costs one read per stored job. The inbox copy
        goes first (a render that finds it gone keeps nothing) and is looked for again
        after the status: a reviewer's edits being queued at that moment put it back only
        while the status is there (`service.videos.queue_edits`).
        """
        originals = self.settings.bucket_originals
        removed = 0
        for key in self.keys(originals, prefix=JOBS_FOLDER):
            job = key.removeprefix(JOBS_FOLDER).removesuffix(".json")
            if key != status_key(job) or not JOB_ID.fullmatch(job):
                continue  # a job's other objects, removed with its status below
            try:
                status = json.loads(self.read(originals, key))
            except (ValueError, BadRequestError):  # torn, or removed since the listing
                continue
            if not isinstance(status, dict) or not chosen(status):
                continue  # foreign or someone else's: not known to be one of these
            folder = job_inbox_folder(status.get("prefix"), job)
            removed += self._remove_waiting(folder)
            parts = [*self.keys(originals, prefix=segments_prefix(job)), *job_keys(job)]
            for part in [p for p in parts if self.exists(originals, p)]:
                self.remove(originals, part)
                removed += 1
            removed += self._remove_waiting(folder)
        return removed

    def _remove_waiting(self, folder: str | None) -> int:
        """Remove a job's video waiting in the inbox (`folder`: keys.job_inbox_folder)."""
        waiting = self.keys(self.settings.bucket_inbox, prefix=folder) if folder else []
        for key in waiting:
            self.remove(self.settings.bucket_inbox, key)
        return len(waiting)

    def result_url(self, key: str) -> str:
        """A presigned GET for a result; there is deliberately no such method for originals."""
        expiry = timedelta(seconds=self.settings.presign_expiry_seconds)
        return self._call(
            "presign",
            lambda: self._presigner.presigned_get_object(
                bucket_name=self.settings.bucket_results, object_name=key, expires=expiry
            ),
        )

    # -- uploads straight from a browser -------------------------------------------------

    def inbox_upload_form(self, key: str, size: int, mime_type: str) -> UploadForm:
        """A presigned POST form for inbox object `key` on the public S3 address: a browser
        sends a large file (a video) straight to the inbox, never through a function request.

        Its policy allows exactly this key and type and exactly `size` bytes (the size the
        uploader declared and the page checked), and only for INBOX_UPLOAD_SECONDS: MinIO
        refuses any other upload with it. (The local s3rver ignores the policy: there the
        function's own size check, before it downloads a byte, is the guard.)
        """
        expires = datetime.now(UTC) + timedelta(seconds=INBOX_UPLOAD_SECONDS)
        policy = PostPolicy(self.settings.bucket_inbox, expires)
        policy.add_equals_condition("key", key)
        policy.add_equals_condition("Content-Type", mime_type)
        policy.add_content_length_range_condition(size, size)
        signed = self._call("presign", lambda: self._presigner.presigned_post_policy(policy))
        url = f"{self.settings.s3_public_url.rstrip('/')}/{self.settings.bucket_inbox}"
        # The file itself goes last, after these fields (S3 ignores fields after it).
        return UploadForm(url, {"key": key, "Content-Type": mime_type, **signed})

    def usage(self, bucket: str, prefix: str) -> tuple[int, int]:
        """How many objects, and how many bytes, `bucket` holds under `prefix`."""

        def listing() -> tuple[int, int]:
            objects = self.client.list_objects(bucket_name=bucket, prefix=prefix, recursive=True)
            sizes = [obj.size or 0 for obj in objects if not obj.is_dir]
            return len(sizes), sum(sizes)

        return self._call(f"list {bucket}", listing)
