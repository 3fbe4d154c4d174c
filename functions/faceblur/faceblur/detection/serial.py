"""The fused detector with its own lock: one image at a time through its networks.

The function runs photos and video frames on several threads with one set of loaded
networks (OpenCV dnn, TensorFlow), which are not known to be thread-safe. The lock lives
in the model object rather than in a wrapper around it, so every door holds a detector
of the same class and settings as the command line and the bench (`build_detector`), and
`media.video.for_video` still sees what it can make lighter. Copies made by
`with_settings` share the networks, so they share the lock too. Uncontended (the command
line), a lock costs nothing next to one network pass.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from faceblur.detection.base import Face
from faceblur.detection.fusion import DetectorSettings, FusedDetector


class SerialDetector(FusedDetector):
    """A `FusedDetector` whose `detect`, `glance` and `detect_glancing` calls run one at a
    time (inside one call, its networks run side by side on the detector's own threads)."""

    def __init__(self, settings: DetectorSettings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()

    def glance(self, image: np.ndarray, max_side: int, threshold: float) -> list[Face]:
        with self._lock:
            return super().glance(image, max_side, threshold)

    def detect_glancing(
        self, image: np.ndarray, turns: Sequence[int], max_side: int, threshold: float
    ) -> tuple[list[Face], list[list[Face]]]:
        with self._lock:
            return super().detect_glancing(image, turns, max_side, threshold)

    def detect(self, image: np.ndarray) -> list[Face]:
        # Per call, not per photo or video: a video's frames and photos take turns.
        with self._lock:
            return super().detect(image)
