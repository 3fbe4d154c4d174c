"""The fused detector with its own gate: at most `images_at_once` images through its
networks at a time.

The function runs photos and video frames on several threads with one set of loaded
networks, and the command line runs a batch's photos side by side
(`media.photo.side_by_side`). The gate lives in the model object rather than in a wrapper
around it, so every door holds a detector of the same class and settings as the command
line and the bench (`build_detector`), and `media.follow.for_video` still sees what it can
make lighter. Copies made by `with_settings` share the networks, so they share the gate
too. Networks that are not known to be thread-safe (OpenCV's YuNet, TensorFlow's MTCNN)
hold a lock of their own around each call; onnxruntime's session takes concurrent calls.

Two images at once (the default): one image's calls leave a core idle in its serial
stretches (Python, fusion, waiting for its slowest pass); the other image's calls fill
it (docs/detection.md, "Speed"). More would only queue on the same cores and hold more
memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from faceblur.detection.base import Face
from faceblur.detection.fusion import DetectorSettings, FusedDetector


class SerialDetector(FusedDetector):
    """A `FusedDetector` whose `detect`, `glance` and `detect_glancing` calls run at most
    `settings.images_at_once` at a time (inside one call, its networks run side by side on
    the detector's own threads)."""

    def __init__(self, settings: DetectorSettings) -> None:
        super().__init__(settings)
        if settings.images_at_once < 1:
            raise ValueError(f"images_at_once must be at least 1, got {settings.images_at_once}")
        self._gate = threading.BoundedSemaphore(settings.images_at_once)

    def glance(self, image: np.ndarray, turn: int, max_side: int, threshold: float) -> list[Face]:
        with self._gate:
            return super().glance(image, turn, max_side, threshold)

    def detect_glancing(
        self, image: np.ndarray, turns: Sequence[int], max_side: int, threshold: float
    ) -> tuple[list[Face], list[list[Face]]]:
        with self._gate:
            return super().detect_glancing(image, turns, max_side, threshold)

    def detect(self, image: np.ndarray) -> list[Face]:
        # Per call, not per photo or video: a video's frames and photos take turns.
        with self._gate:
            return super().detect(image)
