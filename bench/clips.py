"""Video clips with known faces, made from a photo: a virtual camera pans and zooms over it.

Used by bench/video.py and tests/test_video.py. The ground-truth boxes go through the
same transform as the pixels, so every frame's faces are known. Clips are written
with PyAV: H.264 in MP4 (or another container), an optional AAC tone, an optional
display matrix (rotation) and container tags (a location among them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from faceblur.media.x264 import x264_repeatable

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Camera:
    """Where the virtual camera looks in frame t: centre (share of the photo) and zoom."""

    start: tuple[float, float] = (0.45, 0.5)
    end: tuple[float, float] = (0.55, 0.5)
    zoom: tuple[float, float] = (1.0, 1.0)  # 1.0: the output's width spans the photo's width
    shake: float = 0.0  # px of random jitter (in output pixels) per frame
    seed: int = 0


def camera_transforms(
    photo_size: tuple[int, int], size: tuple[int, int], frames: int, camera: Camera
) -> list[np.ndarray]:
    """One 2x3 affine matrix per frame, photo pixels -> output pixels."""
    photo_w, photo_h = photo_size
    width, height = size
    rng = np.random.default_rng(camera.seed)
    transforms = []
    for t in range(frames):
        share = t / max(frames - 1, 1)
        cx = photo_w * (camera.start[0] + (camera.end[0] - camera.start[0]) * share)
        cy = photo_h * (camera.start[1] + (camera.end[1] - camera.start[1]) * share)
        zoom = camera.zoom[0] + (camera.zoom[1] - camera.zoom[0]) * share
        scale = zoom * max(width / photo_w, height / photo_h)
        jitter = rng.normal(0.0, camera.shake, size=2) if camera.shake else np.zeros(2)
        tx = width / 2 - cx * scale + jitter[0]
        ty = height / 2 - cy * scale + jitter[1]
        transforms.append(np.array([[scale, 0.0, tx], [0.0, scale, ty]]))
    return transforms


def transform_box(box: Sequence[float], matrix: np.ndarray) -> Box:
    scale = matrix[0, 0]
    x, y, w, h = box
    return (x * scale + matrix[0, 2], y * scale + matrix[1, 2], w * scale, h * scale)


def write_tone(stream: av.audio.AudioStream, seconds: float, output) -> None:
    """An AAC 440 Hz tone of `seconds`, muxed into `output`."""
    rate = stream.codec_context.sample_rate
    samples = int(seconds * rate)
    t = np.arange(samples) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    chunk = 1024
    for start in range(0, samples, chunk):
        part = tone[start : start + chunk]
        frame = av.AudioFrame.from_ndarray(part[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        output.mux(stream.encode(frame))
    output.mux(stream.encode(None))


def make_clip(
    photo: np.ndarray,
    faces: Sequence[Sequence[float]],
    path: Path,
    size: tuple[int, int] = (320, 180),
    frames: int = 25,
    rate: int = 25,
    camera: Camera = Camera(),
    audio: bool = True,
    turns: int = 0,
    metadata: dict[str, str] | None = None,
    container_format: str | None = None,
    codec: str = "libx264",
) -> list[list[Box]]:
    """Write a clip of `photo` (RGB) to `path`; return each frame's face boxes as displayed.

    `turns` quarter turns clockwise are applied to the stored frames and undone by the
    display matrix, so a player (and faceblur) shows the photo upright.
    """
    width, height = size
    transforms = camera_transforms((photo.shape[1], photo.shape[0]), size, frames, camera)
    truth: list[list[Box]] = []
    with av.open(str(path), mode="w", format=container_format) as output:
        stored_w, stored_h = (height, width) if turns % 2 else (width, height)
        # Repeatable bits: x264's AVX-512 code encodes the same frames differently as
        # the process's memory changes, and the tests compare outputs of one source.
        repeatable = x264_repeatable() if codec == "libx264" else {}
        video = output.add_stream(codec, rate=rate, options=dict(repeatable))
        video.width, video.height, video.pix_fmt = stored_w, stored_h, "yuv420p"
        if turns:
            video.set_display_rotation(90 * turns)
        sound = output.add_stream("aac", rate=44100) if audio else None
        if metadata:
            output.metadata.update(metadata)
        for t, matrix in enumerate(transforms):
            shown = cv2.warpAffine(
                photo, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT
            )
            stored = np.ascontiguousarray(np.rot90(shown, -turns))
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, rate)
            output.mux(video.encode(frame))
            truth.append([transform_box(box, matrix) for box in faces])
        output.mux(video.encode(None))
        if sound is not None:
            write_tone(sound, frames / rate, output)
    return truth


MIN_FACE = 20  # px: smaller faces are not counted (too few pixels to recognise anyone)
CENTRE = 0.6  # the central share of a face box whose detail is compared
EXPOSED = 0.2  # exposed when the result keeps more than this share of that detail


def central_detail_kept(original: np.ndarray, result: np.ndarray, box: Box) -> float | None:
    """Laplacian variance of the box's central 60 % in `result` over that in `original`.

    None when the face is under MIN_FACE px high or its centre is not wholly in the frame.
    """
    x, y, w, h = box
    if h < MIN_FACE:
        return None
    x1, y1 = int(round(x + w * (1 - CENTRE) / 2)), int(round(y + h * (1 - CENTRE) / 2))
    x2, y2 = int(round(x1 + w * CENTRE)), int(round(y1 + h * CENTRE))
    height, width = original.shape[:2]
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height or x2 - x1 < 3 or y2 - y1 < 3:
        return None

    def detail(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(grey, cv2.CV_64F).var())

    before = detail(original)
    return detail(result) / before if before > 0 else 0.0


def displayed_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a (short) clip as RGB, turned as its display matrix says."""
    from faceblur.media.container import Orientation, probe

    orientation = Orientation.from_matrix(probe(path).display_matrix)
    with av.open(str(path)) as container:
        return [
            orientation.to_display(frame.to_ndarray(format="rgb24"))
            for frame in container.decode(video=0)
        ]


def make_crossing_clip(
    photo: np.ndarray,
    faces: Sequence[Sequence[float]],
    path: Path,
    size: tuple[int, int] = (480, 270),
    frames: int = 16,
    rate: int = 25,
    face_height: int = 80,
    seed: int = 0,
    turns: int = 0,
) -> list[list[Box]]:
    """Two people crossing: the first two `faces` of `photo` (RGB), cut out with a margin,
    pass each other on a still textured background, the first left to right a little
    higher, the second right to left, the first's chin behind the second as they cross.
    Returns each frame's [first person's box, second person's box] as displayed.

    `turns` quarter turns clockwise are applied to the stored frames and undone by the
    display matrix, as `make_clip` does: a phone's clip, stored sideways."""
    width, height = size
    background = cv2.GaussianBlur(
        np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3
    )
    cut = []
    for box in faces[:2]:
        x, y, w, h = (float(v) for v in box)
        margin = 0.25
        x0, y0 = max(int(x - margin * w), 0), max(int(y - margin * h), 0)
        x1 = min(int(x + (1 + margin) * w), photo.shape[1])
        y1 = min(int(y + (1 + margin) * h), photo.shape[0])
        scale = face_height / h
        patch = cv2.resize(photo[y0:y1, x0:x1], None, fx=scale, fy=scale)
        face = ((x - x0) * scale, (y - y0) * scale, w * scale, h * scale)
        cut.append((patch, face))
    truth: list[list[Box]] = []
    with av.open(str(path), mode="w") as output:
        video = output.add_stream("libx264", rate=rate, options=dict(x264_repeatable()))
        stored_w, stored_h = (height, width) if turns % 2 else (width, height)
        video.width, video.height, video.pix_fmt = stored_w, stored_h, "yuv420p"
        if turns:
            video.set_display_rotation(90 * turns)
        for t in range(frames):
            share = t / max(frames - 1, 1)
            frame = background.copy()
            boxes = []
            for person, (patch, face) in enumerate(cut):
                ph, pw = patch.shape[:2]
                travel = share if person == 0 else 1 - share
                left = int(round(travel * (width - pw)))
                top = int(round(height * (0.0 if person == 0 else 0.333)))
                top = min(top, height - ph)
                frame[top : top + ph, left : left + pw] = patch
                boxes.append((left + face[0], top + face[1], face[2], face[3]))
            stored = np.ascontiguousarray(np.rot90(frame, -turns))
            av_frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            av_frame.pts, av_frame.time_base = t, Fraction(1, rate)
            output.mux(video.encode(av_frame))
            truth.append(boxes)
        output.mux(video.encode(None))
    return truth
