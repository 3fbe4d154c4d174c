"""Every pixel mode decodes to what it shows, or is refused with 415 naming it; 16-bit grey
keeps its depth. The modes are generated here (Pillow, numpy and a small PNG writer for the
16-bit layouts Pillow cannot write)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from data import composed_photo
from faceblur.errors import NotAnImageError
from faceblur.media.image import decode, encode
from faceblur.media.photo import anonymise_image

HEIGHT, WIDTH = 24, 32
RAMP = np.tile(np.linspace(0, 65_535, WIDTH).astype(np.uint16), (HEIGHT, 1))  # dark to light
RAMP_8 = np.round(RAMP / 257).astype(np.uint8)


def png_16_bit(planes: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG of any colour type (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA)."""
    height, width = planes.shape[:2]
    rows = b"".join(b"\x00" + planes[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def saved(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def grey_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def palette_image() -> Image.Image:
    indices = (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) % 4).astype(np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette([255, 0, 0, 0, 128, 0, 0, 0, 255, 250, 250, 10])
    return image


PALETTE_RGB = np.array([[255, 0, 0], [0, 128, 0], [0, 0, 255], [250, 250, 10]], np.uint8)[
    (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) % 4)
]
CHECKER = (np.indices((HEIGHT, WIDTH)).sum(axis=0) % 2).astype(bool)
ALPHA_16 = np.tile(np.linspace(65_535, 0, HEIGHT).astype(np.uint16)[:, None], (1, WIDTH))
COLOUR_16 = np.dstack([RAMP, 65_535 - RAMP, np.full_like(RAMP, 0x8000)])

# (name, bytes, RGB that must come out, alpha that must come out or None, tolerance)
CASES = [
    ("1-bit", saved(Image.fromarray(CHECKER), "PNG"), grey_rgb(CHECKER * np.uint8(255)), None, 0),
    ("8-bit grey", saved(Image.fromarray(RAMP_8, "L"), "PNG"), grey_rgb(RAMP_8), None, 0),
    (
        "8-bit grey + alpha",
        saved(Image.merge("LA", [Image.fromarray(RAMP_8), Image.fromarray(RAMP_8[::-1])]), "PNG"),
        grey_rgb(RAMP_8),
        RAMP_8[::-1],
        0,
    ),
    ("16-bit grey PNG", png_16_bit(RAMP, 0), grey_rgb(RAMP_8), None, 0),
    ("16-bit grey TIFF", saved(Image.fromarray(RAMP), "TIFF"), grey_rgb(RAMP_8), None, 0),
    ("16-bit grey PGM", saved(Image.fromarray(RAMP), "PPM"), grey_rgb(RAMP_8), None, 0),
    (
        "16-bit grey + alpha",
        png_16_bit(np.dstack([RAMP, ALPHA_16]), 4),
        grey_rgb(RAMP_8),
        np.round(ALPHA_16 / 257).astype(np.uint8),
        1,
    ),
    ("palette", saved(palette_image(), "PNG"), PALETTE_RGB, None, 0),
    ("16-bit RGB", png_16_bit(COLOUR_16, 2), np.round(COLOUR_16 / 257).astype(np.uint8), None, 1),
    (
        "16-bit RGBA",
        png_16_bit(np.dstack([COLOUR_16, ALPHA_16]), 6),
        np.round(COLOUR_16 / 257).astype(np.uint8),
        np.round(ALPHA_16 / 257).astype(np.uint8),
        1,
    ),
    (
        "CMYK JPEG",  # pure cyan ink: shows as (0, 255, 255)
        saved(Image.new("CMYK", (WIDTH, HEIGHT), (255, 0, 0, 0)), "JPEG", quality=95),
        np.broadcast_to(np.array([0, 255, 255], np.uint8), (HEIGHT, WIDTH, 3)),
        None,
        3,
    ),
]


@pytest.mark.parametrize(
    "data,rgb,alpha,tolerance", [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_each_mode_decodes_to_what_it_shows(data, rgb, alpha, tolerance) -> None:
    decoded = decode(data)
    difference = np.abs(decoded.pixels.astype(int) - rgb.astype(int))
    assert difference.max() <= tolerance
    if alpha is None:
        assert decoded.alpha is None
    else:
        assert np.abs(decoded.alpha.astype(int) - alpha.astype(int)).max() <= tolerance
    # and it encodes back to something that shows the same
    again = decode(encode(decoded))
    assert np.abs(again.pixels.astype(int) - rgb.astype(int)).max() <= tolerance + 2


@pytest.mark.parametrize(
    "image,named",
    [
        (Image.fromarray(RAMP.astype(np.float32) / 65_535, "F"), "floating-point"),
        (Image.fromarray(RAMP.astype(np.int32) * 1000, "I"), "32-bit integer"),
    ],
    ids=["float TIFF", "32-bit integer TIFF"],
)
def test_modes_without_one_meaning_are_refused_naming_the_mode(image, named) -> None:
    with pytest.raises(NotAnImageError, match=named) as refused:
        decode(saved(image, "TIFF"))
    assert refused.value.status == 415


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "PPM"])
def test_16_bit_grey_stays_16_bit_exact_outside_regions_widened_inside(fmt: str) -> None:
    data = png_16_bit(RAMP, 0) if fmt == "PNG" else saved(Image.fromarray(RAMP), fmt)
    decoded = decode(data)
    pixels = decoded.pixels.copy()
    box = (4, 6, 10, 8)  # x, y, w, h
    pixels[6:14, 4:14] = 77
    with Image.open(io.BytesIO(encode(decoded, pixels, [box]))) as result:
        assert result.format == fmt
        out = np.asarray(result).astype(np.uint16)
    assert out.dtype == np.uint16 and out.max() > 255  # still 16 bits deep
    outside = np.ones(RAMP.shape, bool)
    outside[6:14, 4:14] = False
    assert np.array_equal(out[outside], RAMP[outside])
    assert (out[~outside] == 77 * 257).all()  # nothing of the input's lower bits inside


def test_16_bit_grey_photo_keeps_its_faces(detector) -> None:
    grey = np.asarray(Image.fromarray(composed_photo((150,))[0]).convert("L"))
    as_8_bit = saved(Image.fromarray(grey, "L"), "PNG")
    as_16_bit = png_16_bit(grey.astype(np.uint16) * 257, 0)
    assert np.array_equal(decode(as_16_bit).pixels, decode(as_8_bit).pixels)
    result = anonymise_image(as_16_bit, detector)
    assert len(result.faces) >= 1
    with Image.open(io.BytesIO(result.data)) as out:
        assert out.mode.startswith("I;16")
        changed = np.asarray(out).astype(np.uint16) != grey.astype(np.uint16) * 257
    assert changed.any()
    for x, y, w, h in result.regions:
        changed[y : y + h, x : x + w] = False
    assert not changed.any()  # nothing outside the regions moved


@pytest.mark.parametrize(
    "planes,color_type",
    [
        (COLOUR_16, 2),
        (np.dstack([COLOUR_16, ALPHA_16]), 6),
        (np.dstack([RAMP, ALPHA_16]), 4),
    ],
    ids=["16-bit RGB", "16-bit RGBA", "16-bit grey + alpha"],
)
def test_16_bit_colour_png_stays_16_bit_exact_outside_regions(planes, color_type) -> None:
    import cv2

    decoded = decode(png_16_bit(planes, color_type))
    pixels = decoded.pixels.copy()
    pixels[6:14, 4:14] = (77, 88, 99)
    out = cv2.imdecode(
        np.frombuffer(encode(decoded, pixels, [(4, 6, 10, 8)]), np.uint8), cv2.IMREAD_UNCHANGED
    )
    assert out.dtype == np.uint16
    channels = out.shape[2]
    rgb = out[..., [2, 1, 0]]
    expected = planes if planes.ndim == 3 and planes.shape[2] >= 3 else None
    if expected is None:  # grey + alpha comes back as RGBA with equal channels
        expected = np.dstack([planes[..., 0]] * 3 + [planes[..., 1]])
    outside = np.ones(RAMP.shape, bool)
    outside[6:14, 4:14] = False
    assert np.array_equal(rgb[outside], expected[..., :3][outside])
    assert (rgb[~outside] == np.array([77, 88, 99]) * 257).all()
    if channels == 4:  # alpha is the input's, everywhere
        assert np.array_equal(out[..., 3], expected[..., 3])
