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

# Videos as the inbox receives them (told apart by formats.video_type, below) and the
# MP4 every result is written as.
VIDEO_EXTENSIONS: dict[str, str] = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "video/webm": ".webm",
    "video/x-msvideo": ".avi",
}

# Sealed originals (faceblur.sealing): the file beside a result, and its type in a bucket.
SEALED_SUFFIX = ".sealed"
SEALED_MIME_TYPE = "application/vnd.faceblur.sealed+json"

# File name suffixes the command line treats as photos and as videos.
# Only used to pick files out of folders; the format itself is sniffed from the bytes.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".pgm", ".ppm"}
# Suffixes the command line picks out of folders as videos; the format itself is probed.
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}

# Enough of a file to read any of the signatures below (WebM names itself in the EBML header).
SNIFF_BYTES = 64

# ISO base media brands of still images (HEIF, AVIF): an `ftyp` box alone is not a video.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif"}


def video_type(head: bytes) -> str | None:
    """The MIME type of a video container from a file's first bytes; None if not a video."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, or WebM by its DocType
        return "video/webm" if b"webm" in head[:SNIFF_BYTES] else "video/x-matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    return None
