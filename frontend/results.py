"""Read-only access to the results bucket: the gallery, presigned URLs, downloads.

Only the results bucket is ever named here: originals stay private, and no
route of the frontend can reach them.
"""

from __future__ import annotations

import math
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime

from minio.error import MinioException
from urllib3.exceptions import HTTPError

from faceblur.config import Settings
from faceblur.errors import BadRequestError, UnavailableError
from faceblur.storage import Store

from .safety import is_safe_key

# The function stores the number of faces it found as the result's user metadata
# `faceblur-faces` (functions/faceblur/handler.py).
_FACE_COUNT_METADATA = ("x-amz-meta-faceblur-faces",)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    """The results bucket as the frontend sees it; S3 failures become UnavailableError.

    Presigned URLs and reads go through `faceblur.storage.Store`. The gallery needs
    each result's date, which `Store.keys` does not give, so `page` lists through the
    store's own minio client (keyword arguments, the store's timeouts).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._bucket = store.settings.bucket_results

    @classmethod
    def from_settings(cls, settings: Settings) -> ResultsBucket:
        return cls(Store(settings))

    def presigned_url(self, key: str) -> str:
        return self._store.result_url(key)

    def page(self, number: int, per_page: int) -> GalleryPage:
        """One page of results, newest first (S3 lists by key, so we sort by date)."""
        try:
            objects = [
                obj
                for obj in self._store.client.list_objects(bucket_name=self._bucket, recursive=True)
                if not obj.is_dir and obj.object_name and is_safe_key(obj.object_name)
            ]
        except (MinioException, HTTPError, OSError) as error:
            raise UnavailableError("storage unavailable") from error
        objects.sort(key=lambda obj: (obj.last_modified or _EPOCH, obj.object_name))
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
        if not self._store.exists(self._bucket, key):
            return None
        try:
            data = self._store.read(self._bucket, key)
        except BadRequestError:  # removed between the two calls
            return None
        mime_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return StoredResult(data=data, content_type=mime_type)

    def _face_count(self, key: str) -> int | None:
        try:
            stat = self._store.client.stat_object(bucket_name=self._bucket, object_name=key)
        except (MinioException, HTTPError, OSError):
            return None
        metadata = {name.lower(): value for name, value in (stat.metadata or {}).items()}
        for name in _FACE_COUNT_METADATA:
            value = metadata.get(name)
            if value is not None and str(value).strip().isdigit():
                return int(value)
        return None
