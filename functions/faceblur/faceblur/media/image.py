"""Decode image bytes into RGB arrays and encode them back, with limits and no metadata.

Pillow reads the header before any pixel, so the pixel limit refuses a decompression
bomb before it is decoded; the format is sniffed from the bytes, never a file name.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceblur.errors import CorruptImageError, EmptyImageError, NotAnImageError, TooLargeError
from faceblur.formats import MIME_TYPES
from faceblur.geometry import Box

DEFAULT_MAX_PIXELS = 50_000_000

# MPO is what phones write for some JPEGs.
_READ_AS = {"MPO": "JPEG"}

ORIENTATION_TAG = 0x0112

# High enough that nothing but the faces visibly changes; 4:4:4 keeps colour edges.
JPEG_QUALITY = 95
WEBP_QUALITY = 95


@dataclass(frozen=True)
class DecodedImage:
    """Pixels as RGB uint8 (H, W, 3) after EXIF orientation, plus what encoding needs."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str
    grey: bool = False
    palette: bytes | None = None  # GIF: re-encode with its own colours
    transparent_index: int | None = None  # GIF: the palette entry that means "transparent"
    orientation: int = 1  # the EXIF orientation that was applied to reach these pixels
    grey16: np.ndarray | None = None  # 16-bit grey input as read (upright): the output keeps it
    colour16: np.ndarray | None = None  # 16-bit RGB(A) PNG as read, RGB order: kept likewise

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.format]


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise EmptyImageError("empty input: no image bytes were sent")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLargeError(f"image has more than {max_pixels} pixels", "max_pixels") from None
    except UnidentifiedImageError:
        raise NotAnImageError(
            "not an image: expected JPEG, PNG, WebP, BMP, TIFF, GIF or PNM bytes"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f"corrupt image header: {error}") from None
    image_format = _READ_AS.get(image.format or "", image.format)
    if image_format not in MIME_TYPES:
        raise NotAnImageError(f"unsupported image format {image.format}")
    width, height = image.size
    if width * height > max_pixels:
        raise TooLargeError(
            f"image is {width}x{height} = {width * height} pixels, the limit is {max_pixels}",
            "max_pixels",
        )
    if width == 0 or height == 0:
        raise CorruptImageError("image has no pixels")
    return image


# Pillow's modes we can show as RGB(A) without guessing. 16-bit colour and 16-bit grey with
# alpha arrive here already reduced to 8 bits by Pillow (RGB, RGBA; a PNG's 16 bits are read
# again by OpenCV to be kept); 16-bit grey arrives as I;16* and is scaled here, because
# Pillow's own convert clips it to white.
_GREY_16 = ("I;16", "I;16L", "I;16B", "I;16N")
_MODES_AS_RGB = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
_MODE_NAMES = {
    "F": "32-bit floating-point greyscale",
    "I": "32-bit integer greyscale",
    "LAB": "CIE L*a*b* colour",
    "HSV": "HSV colour",
}


def _refuse_mode(image: Image.Image, image_format: str) -> NotAnImageError:
    name = _MODE_NAMES.get(image.mode, f"pixel mode {image.mode}")
    return NotAnImageError(
        f"unsupported image: {name} {image_format} is not read here; "
        "save it as 8- or 16-bit greyscale or 8-bit colour"
    )


def _grey16_to_8(grey16: np.ndarray) -> np.ndarray:
    return ((grey16.astype(np.uint32) * 255 + 32_767) // 65_535).astype(np.uint8)


_PNG_COLOUR_WITH_16_BITS = (2, 4, 6)  # RGB, grey + alpha, RGBA


def _png_colour16(data: bytes, image: Image.Image) -> np.ndarray | None:
    """A 16-bit colour (or grey + alpha) PNG's own 16 bits as RGB(A), or None.

    Pillow reduces these to 8 bits; OpenCV reads them whole (as BGR(A): grey + alpha comes
    as BGRA with equal channels). Only plain files: a tRNS colour or an EXIF turn would
    need more than a copy, so those stay 8-bit.
    """
    if data[12:16] != b"IHDR" or data[24] != 16 or data[25] not in _PNG_COLOUR_WITH_16_BITS:
        return None
    if "transparency" in image.info or image.getexif().get(ORIENTATION_TAG, 1) not in (1, None):
        return None
    import cv2  # only here: the 8-bit path and the web page's image need no OpenCV

    deep = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    channels = 4 if data[25] in (4, 6) else 3
    if deep is None or deep.dtype != np.uint16 or deep.shape != (*image.size[::-1], channels):
        return None
    return np.ascontiguousarray(deep[..., [2, 1, 0, 3][:channels]])


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Bytes -> DecodedImage; raises the typed errors of faceblur.errors, nothing else."""
    image = _open(data, max_pixels)
    image_format = _READ_AS.get(image.format or "", image.format or "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF/ICC oddities must not stop decoding
            image.seek(0)  # first frame of a GIF or multi-page TIFF
            image.load()
            palette, transparent_index = None, None
            if image_format == "GIF" and image.mode == "P":
                palette = bytes(image.getpalette() or b"")
                if isinstance(image.info.get("transparency"), int):
                    transparent_index = image.info["transparency"]
            orientation = int(image.getexif().get(ORIENTATION_TAG, 1) or 1)
            colour16 = _png_colour16(data, image) if image_format == "PNG" else None
            image = ImageOps.exif_transpose(image) or image
            grey16 = None
            # Pillow reads a 16-bit PGM as mode I; its maximum is 65535 by the format's rule.
            if image.mode in _GREY_16 or (image.mode == "I" and image_format == "PPM"):
                grey16 = np.asarray(image).astype(np.uint16)
                grey8 = _grey16_to_8(grey16)
                has_alpha, grey = False, True
                array = np.repeat(grey8[..., None], 3, axis=2)
            elif colour16 is not None:
                has_alpha, grey = colour16.shape[2] == 4, False
                array = _grey16_to_8(colour16)
            elif image.mode in _MODES_AS_RGB:
                has_alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
                    "transparency" in image.info
                )
                grey = image.mode in ("1", "L", "LA", "La")
                converted = image.convert("RGBA" if has_alpha else "RGB")
                array = np.asarray(converted, dtype=np.uint8)
            else:
                raise _refuse_mode(image, image_format)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as error:
        raise CorruptImageError(f"corrupt or truncated image: {error}") from None
    except MemoryError:
        raise TooLargeError("image too large to decode", "max_pixels") from None
    return DecodedImage(
        pixels=np.ascontiguousarray(array[..., :3]),
        alpha=np.ascontiguousarray(array[..., 3]) if has_alpha else None,
        format=image_format,
        grey=grey,
        palette=palette,
        transparent_index=transparent_index,
        orientation=orientation if 1 <= orientation <= 8 else 1,
        grey16=grey16,
        colour16=colour16,
    )


def _to_pil(decoded: DecodedImage, pixels: np.ndarray) -> Image.Image:
    if decoded.grey:
        rgb = Image.fromarray(pixels, "RGB").convert("L")
        if decoded.alpha is not None:
            return Image.merge("LA", (rgb, Image.fromarray(decoded.alpha, "L")))
        return rgb
    if decoded.alpha is not None:
        return Image.fromarray(np.dstack([pixels, decoded.alpha]), "RGBA")
    return Image.fromarray(pixels, "RGB")


def _palette_indices(pixels: np.ndarray, palette: bytes, reserved: int | None) -> np.ndarray:
    """Each pixel's index in the palette: exact where the colour is there, else the nearest.

    Pillow's own quantize approximates even exact colours; unchanged pixels must stay exact.
    """
    colours = np.frombuffer(palette, np.uint8).reshape(-1, 3).astype(np.int64)
    if reserved is not None and reserved < len(colours):
        colours[reserved] = 1 << 20  # the transparent entry is never a match for a colour
    keys = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    flat = pixels.reshape(-1, 3).astype(np.int64)
    pixel_keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    positions = np.clip(np.searchsorted(sorted_keys, pixel_keys), 0, len(keys) - 1)
    indices = order[positions]
    missing = np.flatnonzero(sorted_keys[positions] != pixel_keys)
    for chunk in np.array_split(missing, len(missing) // 65_536 + 1):
        distances = ((flat[chunk, None, :] - colours[None]) ** 2).sum(axis=2)
        indices[chunk] = distances.argmin(axis=1)
    return indices.reshape(pixels.shape[:2]).astype(np.uint8)


def _to_palette(decoded: DecodedImage, pixels: np.ndarray) -> Image.Image:
    """Map onto the GIF's own colours, so unchanged pixels keep their exact colour."""
    assert decoded.palette is not None
    indices = _palette_indices(pixels, decoded.palette, decoded.transparent_index)
    if decoded.transparent_index is not None and decoded.alpha is not None:
        indices[decoded.alpha == 0] = decoded.transparent_index
    mapped = Image.fromarray(indices, "P")
    mapped.putpalette(decoded.palette)
    if decoded.transparent_index is not None:
        mapped.info["transparency"] = decoded.transparent_index
    return mapped


def _kept(decoded: DecodedImage, pixels: np.ndarray, regions: Sequence[Box]) -> np.ndarray:
    """Where 16-bit output keeps the input's own values: pixels left unchanged, outside
    every anonymised region."""
    keep = (pixels == decoded.pixels).all(axis=2)
    for x, y, w, h in regions:
        keep[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = False
    return keep


def _grey16_result(
    decoded: DecodedImage, pixels: np.ndarray, regions: Sequence[Box]
) -> Image.Image:
    """16-bit grey out: the input's exact values outside the regions, the anonymised 8-bit
    grey widened to 16 bits inside them (so nothing of a face's finer bits survives)."""
    assert decoded.grey16 is not None
    grey8 = np.asarray(Image.fromarray(pixels, "RGB").convert("L"))
    out = np.where(_kept(decoded, pixels, regions), decoded.grey16, grey8.astype(np.uint16) * 257)
    return Image.fromarray(out.astype(np.uint16))  # uint16 makes mode I;16


def _colour16_png(decoded: DecodedImage, pixels: np.ndarray, regions: Sequence[Box]) -> bytes:
    """16-bit RGB(A) PNG out, by the same rule as 16-bit grey; alpha is never changed."""
    import cv2

    assert decoded.colour16 is not None
    keep = _kept(decoded, pixels, regions)
    out = decoded.colour16.copy()
    out[..., :3] = np.where(keep[..., None], out[..., :3], pixels.astype(np.uint16) * 257)
    bgr = out[..., [2, 1, 0, 3][: out.shape[2]]]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ValueError("could not encode a 16-bit PNG")
    return encoded.tobytes()


def encode(
    decoded: DecodedImage, pixels: np.ndarray | None = None, regions: Sequence[Box] = ()
) -> bytes:
    """Encode pixels (default: the decoded ones) in the input's format, without metadata.

    A new Pillow image carries no EXIF, XMP, ICC or comments, and nothing is passed to save.
    `regions` are the anonymised boxes: 16-bit output takes nothing of the input inside them.
    """
    pixels = decoded.pixels if pixels is None else pixels
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if decoded.colour16 is not None and decoded.format == "PNG":
        return _colour16_png(decoded, pixels, regions)
    if decoded.grey16 is not None and decoded.format in ("PNG", "TIFF", "PPM"):
        image = _grey16_result(decoded, pixels, regions)
    else:
        image = _to_pil(decoded, pixels)
    out = io.BytesIO()
    fmt = decoded.format
    if fmt == "JPEG":
        image = image.convert("L" if decoded.grey else "RGB")  # JPEG has no alpha, no CMYK here
        image.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    elif fmt == "GIF":
        if decoded.palette:
            image = _to_palette(decoded, np.ascontiguousarray(pixels, dtype=np.uint8))
        extra = {"transparency": image.info["transparency"]} if "transparency" in image.info else {}
        image.save(out, "GIF", optimize=False, **extra)
    elif fmt == "TIFF":
        image.save(out, "TIFF", compression="tiff_deflate")
    elif fmt == "PPM":
        if image.mode != "I;16":
            image = image.convert("L" if decoded.grey else "RGB")
        image.save(out, "PPM")
    elif fmt == "BMP" and image.mode == "LA":
        image.convert("RGBA").save(out, "BMP")
    else:
        image.save(out, fmt)
    return out.getvalue()
