"""Decode/encode: formats sniffed from bytes, limits, EXIF orientation, metadata stripped."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from data import astronaut
from faceblur.errors import (
    CorruptImageError,
    EmptyImageError,
    FaceblurError,
    NotAnImageError,
    TooLargeError,
)
from faceblur.media.image import MIME_TYPES, decode, encode
from faceblur.orientation import box_as_stored, size_as_stored


def real_photo(size: tuple[int, int] = (160, 120)) -> np.ndarray:
    return np.asarray(Image.fromarray(astronaut()).resize(size))


def save(array: np.ndarray, fmt: str, mode: str | None = None, **params) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, fmt, **params)
    return out.getvalue()


@pytest.mark.parametrize(
    "fmt,lossless",
    [("JPEG", False), ("PNG", True), ("WEBP", False), ("BMP", True), ("TIFF", True), ("PPM", True)],
)
def test_each_format_round_trips_in_its_own_format(fmt: str, lossless: bool) -> None:
    array = real_photo()
    decoded = decode(save(array, fmt))
    assert decoded.format == fmt
    assert decoded.pixels.shape == (120, 160, 3) and decoded.pixels.dtype == np.uint8
    again = decode(encode(decoded))
    assert again.format == fmt and again.mime_type == MIME_TYPES[fmt]
    difference = np.abs(again.pixels.astype(int) - decoded.pixels.astype(int))
    if lossless:
        assert difference.max() == 0
    else:  # high quality: a re-encode must not visibly change anything
        assert difference.mean() < 2.0


def test_png_keeps_its_alpha_exactly() -> None:
    array = real_photo()
    alpha = np.tile(np.linspace(0, 255, 160, dtype=np.uint8), (120, 1))
    decoded = decode(save(np.dstack([array, alpha]), "PNG", "RGBA"))
    assert decoded.alpha is not None
    again = decode(encode(decoded))
    assert np.array_equal(again.alpha, alpha)
    assert np.array_equal(again.pixels, array)


def test_gif_first_frame_and_unchanged_colours_stay_exact() -> None:
    frames = [Image.fromarray(real_photo()), Image.fromarray(255 - real_photo())]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    decoded = decode(out.getvalue())
    assert decoded.format == "GIF"
    with Image.open(io.BytesIO(out.getvalue())) as gif:
        first = np.asarray(gif.convert("RGB"))
    assert np.array_equal(decoded.pixels, first)
    changed = decoded.pixels.copy()
    changed[:10, :10] = 0
    again = decode(encode(decoded, changed))
    assert np.array_equal(again.pixels[20:], first[20:])


def test_format_comes_from_the_bytes_not_a_name() -> None:
    png = save(real_photo(), "PNG")
    assert decode(png).format == "PNG"  # no name is ever given: only bytes


def test_exif_orientation_is_applied_before_anything_else() -> None:
    array = np.zeros((40, 80, 3), np.uint8)
    array[:, :20] = 255  # a white band on the left of the stored image
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored rotated: displayed turned 90 degrees clockwise
    decoded = decode(save(array, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.pixels.shape[:2] == (80, 40)
    assert decoded.pixels[:20].mean() > 200  # the band is now on top
    assert decoded.pixels[40:].mean() < 50


def test_result_has_no_gps_exif_xmp_or_comment() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    source = save(real_photo(), "JPEG", exif=exif, xmp=xmp, comment=b"secret comment")
    with Image.open(io.BytesIO(source)) as original:  # the test photo really carries them
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"secret comment" in source and b"xmpmeta" in source

    result = encode(decode(source))
    with Image.open(io.BytesIO(result)) as anonymised:
        assert not anonymised.getexif()
        assert not anonymised.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert "comment" not in anonymised.info and "xmp" not in anonymised.info
    assert b"Exif\x00\x00" not in result
    assert b"xmpmeta" not in result and b"secret comment" not in result
    assert b"\xff\xfe" not in result  # no JPEG COM segment at all


def test_png_text_chunks_are_not_copied() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "taken at home")
    result = encode(decode(save(real_photo(), "PNG", pnginfo=info)))
    assert b"taken at home" not in result and b"tEXt" not in result


def test_empty_input_is_refused() -> None:
    with pytest.raises(EmptyImageError) as error:
        decode(b"")
    assert error.value.status == 400


@pytest.mark.parametrize("data", [b"hello, world", b"%PDF-1.7\n" + bytes(200), bytes(1000)])
def test_bytes_that_are_not_an_image_are_415(data: bytes) -> None:
    with pytest.raises(NotAnImageError) as error:
        decode(data)
    assert error.value.status == 415


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "GIF"])
def test_truncated_images_are_refused(fmt: str) -> None:
    data = save(real_photo(), fmt)
    with pytest.raises((CorruptImageError, NotAnImageError)):
        decode(data[: len(data) // 2])


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its few bytes could never hold: a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_pixel_limit_refuses_before_decoding() -> None:
    with pytest.raises(TooLargeError) as error:
        decode(png_header_claiming(60_000, 60_000))  # 3.6 gigapixels, about 10 GB decoded
    assert error.value.status == 413
    with pytest.raises(TooLargeError):
        decode(save(real_photo(), "PNG"), max_pixels=160 * 120 - 1)
    assert decode(save(real_photo(), "PNG"), max_pixels=160 * 120).width == 160


def test_default_limit_is_fifty_megapixels() -> None:
    with pytest.raises(TooLargeError):
        decode(png_header_claiming(10_000, 5_001))
    with pytest.raises(CorruptImageError):  # under the limit: decoded, and found truncated
        decode(png_header_claiming(10_000, 5_000))


SEED_FILES = {fmt: save(real_photo((48, 36)), fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP")}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(sorted(SEED_FILES)),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), max_size=8),
)
def test_fuzzed_real_images_only_raise_typed_errors(fmt: str, cut: float, flips: list) -> None:
    data = bytearray(SEED_FILES[fmt][: max(0, int(len(SEED_FILES[fmt]) * cut))] or b"")
    for position, bit in flips:
        if data:
            data[min(len(data) - 1, int(position * len(data)))] ^= 1 << bit
    try:
        decoded = decode(bytes(data), max_pixels=1_000_000)
    except FaceblurError as error:
        assert error.status in (400, 413, 415)
        return
    assert decoded.pixels.ndim == 3 and decoded.pixels.shape[2] == 3
    assert decoded.width * decoded.height <= 1_000_000
    encode(decoded)  # whatever decodes must encode back


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 400),
    height=st.integers(1, 400),
    fmt=st.sampled_from(["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"]),
)
def test_resized_real_images_decode_at_their_size(width: int, height: int, fmt: str) -> None:
    decoded = decode(save(real_photo((width, height)), fmt))
    assert decoded.pixels.shape == (height, width, 3)
    assert decode(encode(decoded)).pixels.shape == (height, width, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_boxes_map_back_to_the_pixels_as_stored(orientation: int) -> None:
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[5:15, 50:70] = 255  # a bright box at x=50, y=5, w=20, h=10 in the stored pixels
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    decoded = decode(save(stored, "PNG", exif=exif.tobytes()))
    assert decoded.orientation == orientation
    ys, xs = np.nonzero(decoded.pixels[..., 0] > 128)
    upright = (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
    if orientation > 1:
        assert upright != (50, 5, 20, 10), "the pixels were turned upright"
    assert box_as_stored(upright, decoded.width, decoded.height, orientation) == (50, 5, 20, 10)
    assert size_as_stored(decoded.width, decoded.height, orientation) == (80, 40)
