"""Small JPEG thumbnails of results for the gallery, made once and kept in memory.

Result keys derive from the content, so a key's thumbnail never changes: a small
LRU cache and long browser caching are both safe.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image, UnidentifiedImageError

THUMBNAIL_SIZE = 480  # px, the longer side: sharp at two columns on a phone
THUMBNAIL_QUALITY = 80
CACHE_ENTRIES = 256  # ~ 30 KB each


class NotAThumbnailable(ValueError):
    """The stored result is not an image Pillow can read (or is too large to try)."""


def make_thumbnail(data: bytes, max_pixels: int, size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG no larger than size x size; transparency is laid on white."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise NotAThumbnailable("too many pixels")
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, much faster
            image.thumbnail((size, size))
            if image.mode in ("RGBA", "LA", "P"):
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                image = flat
            output = io.BytesIO()
            image.convert("RGB").save(output, format="JPEG", quality=THUMBNAIL_QUALITY)
            return output.getvalue()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise NotAThumbnailable(str(error)) from error


class ThumbnailCache:
    """A thread-safe LRU of thumbnails by result key."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._entries = entries
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._entries:
                self._items.popitem(last=False)

    def forget_photo(self, result_key: str) -> None:
        """Drop the thumbnails of every result of the photo `result_key` was made from."""
        # A photo's results share every key segment but the last (owner prefix included).
        self.forget_under(result_key.rsplit("/", 1)[0] + "/")
        self.forget_under(result_key)

    def forget_under(self, prefix: str) -> None:
        """Drop every thumbnail whose key starts with `prefix` (e.g. a deleted owner's)."""
        with self._lock:
            for key in [k for k in self._items if k.startswith(prefix)]:
                del self._items[key]
