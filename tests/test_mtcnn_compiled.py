"""MTCNN's networks run as compiled graphs (issue 24): the same faces as the package's own
eager calls, and one trace per network whatever the photo brings."""

from __future__ import annotations

import numpy as np
import pytest

from data import composed_photo
from faceblur.detection.mtcnn import load_mtcnn

THRESHOLDS = {"threshold_pnet": 0.6, "threshold_rnet": 0.7, "threshold_onet": 0.3}


@pytest.fixture(scope="module")
def compiled():
    return load_mtcnn()


def canvases() -> list[np.ndarray]:
    """512-px canvases, as the detector hands MTCNN: one face, several, none."""
    pictures = [
        composed_photo((160,), size=(512, 512))[0],
        composed_photo((90, 60, 40, 30), size=(512, 512), seed=1)[0],
        composed_photo((), size=(512, 512), seed=2)[0],
    ]
    return [np.ascontiguousarray(picture) for picture in pictures]


def test_compiled_networks_find_what_the_eager_ones_find(compiled) -> None:
    from mtcnn import MTCNN

    eager = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
    found = []
    for canvas in canvases():
        mine = compiled.detect_faces(canvas, **THRESHOLDS)
        theirs = eager.detect_faces(canvas, **THRESHOLDS)
        assert mine == theirs  # boxes, scores and landmarks, to the last bit
        found.append(len(mine))
    assert found[0] >= 1 and found[1] >= 3, "the pasted faces are found"


def test_each_network_is_traced_once_for_every_shape(compiled) -> None:
    # Other canvas sizes and numbers of proposals reuse the one graph: a retrace per shape
    # would cost its time and memory again on every photo.
    for size in ((512, 512), (300, 200), (640, 480)):
        picture = np.ascontiguousarray(composed_photo((60, 30), size=size, seed=3)[0])
        compiled.detect_faces(picture, **THRESHOLDS)
    counts = [stage.model.experimental_get_tracing_count() for stage in compiled.stages]
    assert counts == [1, 1, 1]
