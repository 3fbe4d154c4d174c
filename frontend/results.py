"""Read-only access to the results bucket: the gallery, presigned URLs, downloads.

Only the results bucket is ever named here: originals stay private, and no
route of the frontend can reach them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from minio import Minio
from minio.error import MinioException
from urllib3.exceptions import HTTPError

from faceblur.config import Settings
from faceblur.errors import UnavailableError

from .safety import is_safe_key

# Object metadata names the function may use for the number of faces it found.
_FACE_COUNT_METADATA = ("x-amz-meta-faces", "x-amz-meta-face-count", "x-amz-meta-face_count")


@dataclass(frozen=True)
class GalleryItem:
    key: str
    url: str
    modified: datetime
    size: int
    face_count: int | None


@dataclass(frozen=True)
class GalleryPage:
    items: list[GalleryItem]
    number: int
    page_count: int
    total: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.page_count


@dataclass(frozen=True)
class StoredResult:
    data: bytes
    content_type: str


class ResultsBucket:
    """The results bucket as the frontend sees it; S3 failures become UnavailableError."""

    def __init__(self, client: Minio, bucket: str, presign_expiry_seconds: int) -> None:
        self._client = client
        self._bucket = bucket
        self._expiry = timedelta(seconds=presign_expiry_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> ResultsBucket:
        client = Minio(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
        return cls(client, settings.bucket_results, settings.presign_expiry_seconds)

    def presigned_url(self, key: str) -> str:
        try:
            return self._client.presigned_get_object(
                bucket_name=self._bucket, object_name=key, expires=self._expiry
            )
        except (MinioException, HTTPError, ValueError) as error:
            raise UnavailableError("storage unavailable") from error

    def page(self, number: int, per_page: int) -> GalleryPage:
        """One page of results, newest first (S3 lists by key, so we sort by date)."""
        try:
            objects = [
                obj
                for obj in self._client.list_objects(bucket_name=self._bucket, recursive=True)
                if not obj.is_dir and obj.object_name and is_safe_key(obj.object_name)
            ]
        except (MinioException, HTTPError, ValueError) as error:
            raise UnavailableError("storage unavailable") from error
        objects.sort(key=lambda obj: (obj.last_modified or datetime.min, obj.object_name))
        objects.reverse()
        page_count = max(1, math.ceil(len(objects) / per_page))
        number = min(max(1, number), page_count)
        chosen = objects[(number - 1) * per_page : number * per_page]
        items = [
            GalleryItem(
                key=obj.object_name,
                url=self.presigned_url(obj.object_name),
                modified=obj.last_modified,
                size=obj.size or 0,
                face_count=self._face_count(obj.object_name),
            )
            for obj in chosen
        ]
        return GalleryPage(items=items, number=number, page_count=page_count, total=len(objects))

    def read(self, key: str) -> StoredResult | None:
        """A result's bytes, or None when there is no such result."""
        try:
            response = self._client.get_object(bucket_name=self._bucket, object_name=key)
        except MinioException as error:
            if getattr(error, "code", "") in ("NoSuchKey", "NoSuchObject"):
                return None
            raise UnavailableError("storage unavailable") from error
        except (HTTPError, ValueError) as error:
            raise UnavailableError("storage unavailable") from error
        try:
            return StoredResult(
                data=response.read(),
                content_type=response.headers.get("Content-Type", "application/octet-stream"),
            )
        finally:
            response.close()
            response.release_conn()

    def _face_count(self, key: str) -> int | None:
        try:
            stat = self._client.stat_object(bucket_name=self._bucket, object_name=key)
        except (MinioException, HTTPError, ValueError):
            return None
        metadata = {name.lower(): value for name, value in (stat.metadata or {}).items()}
        for name in _FACE_COUNT_METADATA:
            value = metadata.get(name)
            if value is not None and str(value).isdigit():
                return int(value)
        return None
