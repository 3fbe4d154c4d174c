"""Face detection tuned for recall: CenterFace, YuNet and MTCNN, multi-scale, fused, at any
right angle. `build_detector()` is the one place the production detector is configured:
the command line, the function and the benchmarks all call it, and get the same detector.
"""

from __future__ import annotations

import cv2

from faceblur.detection.angles import AnyAngleDetector
from faceblur.detection.base import Detector
from faceblur.detection.centerface import replica_cores
from faceblur.detection.fusion import DetectorSettings
from faceblur.detection.serial import SerialDetector


def build_detector(
    upright_only: bool = False, cores: int | None = None, **overrides: object
) -> Detector:
    """The production detector with both models loaded (slow: TensorFlow import, ~5 s).

    It finds faces at any right angle (`faceblur.detection.angles`) unless `upright_only`,
    and may be shared between threads: its networks take at most `images_at_once`
    images at a time (two).
    `cores`: the process's thread budget, the cores it may keep busy; None: every core it
    may run on (`replica_cores`: a replica's cpuset). Worker processes that share a
    machine (`faceblur blur --jobs N`) each get their share, so that N of them spend the
    cores on N segments, not on threads waiting for each other. The budget sizes the
    network calls run side by side and OpenCV's pool (process-wide: the video
    pipeline's resizing, colour conversion and optical flow too); each ONNX and
    TensorFlow call runs on one thread whatever the budget.
    Keyword arguments override `DetectorSettings` fields, e.g. `zoom=None` or
    `mtcnn_threshold_onet=0.5`; `fusion=FusionSettings(...)` replaces the fusion.
    """
    unknown = sorted(set(overrides) - set(DetectorSettings.__dataclass_fields__))
    if unknown:
        choices = ", ".join(sorted(DetectorSettings.__dataclass_fields__))
        raise ValueError(f"unknown detector setting(s) {', '.join(unknown)}; choose from {choices}")
    budget = cores or replica_cores()
    cv2.setNumThreads(budget)
    settings = {"threads": budget, **overrides}
    fused = SerialDetector(DetectorSettings(**settings))  # type: ignore[arg-type]
    if upright_only:
        return fused
    return AnyAngleDetector(fused)
