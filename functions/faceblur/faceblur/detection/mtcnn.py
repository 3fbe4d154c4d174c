"""MTCNN (the `mtcnn` package, TensorFlow) with its output wrapped once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from typing import Any

import numpy as np

from faceblur.detection.base import LANDMARK_NAMES, RawCandidates

MTCNN_MIN_SIDE = 12
"""PNet's input size: a smaller image holds nothing MTCNN can find."""

NETWORK_INPUTS = {
    "StagePNet": (None, None, None, 3),  # fully convolutional: every level of the pyramid
    "StageRNet": (None, 24, 24, 3),  # a batch of 24-px crops, as many as PNet proposed
    "StageONet": (None, 48, 48, 3),
}
"""The input shapes each of MTCNN's networks is compiled for, by its stage's class name."""


def load_mtcnn() -> Any:
    """MTCNN's networks (imports TensorFlow), each call on the calling thread."""
    import tensorflow as tf
    from mtcnn import MTCNN

    # One thread per call, as CenterFace's (the detector runs calls side by side): TensorFlow's
    # own pools of threads, one per core, cost about 5 % more CPU per photo on two cores for
    # the same faces (docs/detection.md, "Speed"). Set before its first operation.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    networks = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
    # Each network compiled once as a graph for any batch (and PNet any size): called eagerly,
    # Keras dispatched every layer from Python, half of MTCNN's CPU time, for the same boxes,
    # scores and landmarks to the last bit (docs/detection.md, "Speed"). The open input
    # shapes trace each network once, so no new shape retraces it or grows the memory.
    for stage in networks.stages:
        spec = tf.TensorSpec(NETWORK_INPUTS[type(stage).__name__], tf.float32)
        # The package has no setter: its stages call `self._model(patches)`.
        stage._model = tf.function(stage.model.call, input_signature=[spec])
    return networks


class MtcnnNet:
    """MTCNN (the `mtcnn` package, TensorFlow) with its output wrapped once.

    It wants RGB, returns `np.int64` values and a type that depends on its
    arguments; `min_face_size` above ~24 silently finds nothing (its pyramid then
    starts under 12 px), so the caller resizes the image instead.
    """

    def __init__(self, threshold_pnet: float, threshold_rnet: float, threshold_onet: float):
        missing = [name for name in ("mtcnn", "tensorflow") if find_spec(name) is None]
        if missing:  # said at start, not at the first photo that wants MTCNN
            raise ModuleNotFoundError(f"MTCNN needs {' and '.join(missing)}: reinstall faceblur")
        # TensorFlow's import takes seconds: it runs on a thread of its own while the other
        # networks start on the first photos; the first call waits for it.
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceblur-mtcnn-load")
        self._loading = loader.submit(load_mtcnn)
        loader.shutdown(wait=False)
        # TensorFlow's eager Keras models are not known to be safe for concurrent calls:
        # one image at a time through them, whichever photo's thread asks.
        self._lock = threading.Lock()
        self._thresholds = {
            "threshold_pnet": threshold_pnet,
            "threshold_rnet": threshold_rnet,
            "threshold_onet": threshold_onet,
        }

    def wait_loaded(self) -> None:
        """Return once TensorFlow and the networks are loaded."""
        self._loading.result()

    def __call__(self, image: np.ndarray) -> RawCandidates:
        height, width = image.shape[:2]
        if min(height, width) < MTCNN_MIN_SIDE:
            return RawCandidates.empty()
        networks = self._loading.result()
        with self._lock:
            raw = networks.detect_faces(np.ascontiguousarray(image), **self._thresholds)
        if raw and isinstance(raw[0], list):  # batch-shaped answer for a single image
            raw = raw[0]
        if not raw:
            return RawCandidates.empty()
        boxes = np.array([[float(v) for v in face["box"]] for face in raw]).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        scores = np.array([float(face["confidence"]) for face in raw])
        marks = np.array(
            [
                [[float(c) for c in face["keypoints"][name]] for name in LANDMARK_NAMES]
                for face in raw
            ]
        ).reshape(-1, 5, 2)
        return RawCandidates(boxes, scores, marks)
