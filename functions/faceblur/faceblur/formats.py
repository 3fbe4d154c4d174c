"""The image formats faceblur reads and writes: one table for decoding, storage and downloads.

Dependency-free on purpose: the web page's image needs the extensions without Pillow's
decoder or the model.
"""

from __future__ import annotations

from typing import NamedTuple


class Format(NamedTuple):
    mime_type: str
    extension: str


# Pillow's format name -> what the result is served and stored as.
FORMATS: dict[str, Format] = {
    "JPEG": Format("image/jpeg", ".jpg"),
    "PNG": Format("image/png", ".png"),
    "WEBP": Format("image/webp", ".webp"),
    "BMP": Format("image/bmp", ".bmp"),
    "TIFF": Format("image/tiff", ".tiff"),
    "GIF": Format("image/gif", ".gif"),
    "PPM": Format("image/x-portable-anymap", ".ppm"),
}

MIME_TYPES: dict[str, str] = {name: f.mime_type for name, f in FORMATS.items()}
EXTENSIONS: dict[str, str] = {f.mime_type: f.extension for f in FORMATS.values()}

# Videos as the inbox receives them (told apart by faceblur.jobs.video_type) and the
# MP4 every result is written as.
VIDEO_EXTENSIONS: dict[str, str] = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "video/webm": ".webm",
    "video/x-msvideo": ".avi",
}

# Sealed originals (faceblur.seal): the file beside a result, and its type in a bucket.
SEALED_SUFFIX = ".sealed"
SEALED_MIME_TYPE = "application/vnd.faceblur.sealed+json"
