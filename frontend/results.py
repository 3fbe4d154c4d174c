"""The results bucket as the page sees it: the gallery, presigned URLs, downloads, and
deleting a photo with its results (and the presigned POST of a video into the inbox).

Originals are never read, listed or linked here: the only ways the page touches them are
`delete_photo` and `delete_owned`, which remove a person's uploads with their results.
"""

from __future__ import annotations

import math
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from faceblur.accounts import remove_owned
from faceblur.config import Settings
from faceblur.errors import BadRequestError, UnavailableError
from faceblur.store.keys import is_safe_key, is_video_key, sealed_key
from faceblur.store.s3 import Store, UploadForm


@dataclass(frozen=True)
class GalleryItem:
    key: str
    url: str
    modified: datetime
    size: int
    face_count: int | None

    @property
    def is_video(self) -> bool:
        return is_video_key(self.key)


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

    Listing, presigned URLs and reads all go through `faceblur.store.s3.Store`.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._bucket = store.settings.bucket_results

    @classmethod
    def from_settings(cls, settings: Settings) -> ResultsBucket:
        return cls(Store(settings))

    def presigned_url(self, key: str) -> str:
        return self._store.result_url(key)

    def inbox_upload_form(self, key: str, size: int, mime_type: str) -> UploadForm:
        """A presigned POST of a video of `size` bytes into the inbox (the page's only write
        there)."""
        return self._store.inbox_upload_form(key, size, mime_type)

    def videos_waiting(self, folder: str) -> tuple[int, int]:
        """How many videos, and how many bytes, wait in the inbox under `folder`."""
        return self._store.usage(self._store.settings.bucket_inbox, folder)

    def page(self, number: int, per_page: int, prefix: str = "") -> GalleryPage:
        """One page of the results under `prefix` (a person's own), newest first."""
        objects = [obj for obj in self._store.results_newest_first(prefix) if is_safe_key(obj.key)]
        page_count = max(1, math.ceil(len(objects) / per_page))
        number = min(max(1, number), page_count)
        chosen = objects[(number - 1) * per_page : number * per_page]
        counts = self._face_counts([obj.key for obj in chosen])
        items = [
            GalleryItem(
                key=obj.key,
                url=self.presigned_url(obj.key),
                modified=obj.modified,
                size=obj.size,
                face_count=counts.get(obj.key),
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

    def size(self, key: str) -> int | None:
        """A result's size in bytes, or None when there is no such result."""
        return self._store.size(self._bucket, key)

    def pieces(self, key: str) -> Iterator[bytes]:
        """A result's bytes a piece at a time (for the streamed zip)."""
        return self._store.chunks(self._bucket, key)

    def delete_photo(self, key: str) -> bool:
        """Delete the upload this result was made from and its results (and, for a video,
        its jobs' status, tracks and edits); False if none."""
        return self._store.remove_photo(key)

    def delete_result(self, key: str) -> None:
        """Delete one result (and its sealed faces, where sealing kept them), not the photo
        it was made from: a corrected copy replaces it."""
        self._store.remove(self._bucket, key)
        self._store.remove(self._store.settings.bucket_originals, sealed_key(key))

    def delete_owned(self, prefix: str) -> int:
        """Delete every upload and result under an owner's `prefix`; how many objects went."""
        return remove_owned(self._store, prefix)

    def _face_counts(self, keys: list[str]) -> dict[str, int | None]:
        """Each result's face count; once the store fails, the rest are left unknown, so a
        store that stalls mid-page costs one timeout, not one per photo."""
        counts: dict[str, int | None] = {}
        for key in keys:
            try:
                counts[key] = self._store.face_count(key)
            except UnavailableError:  # the page still shows the results, without counts
                break
        return counts
