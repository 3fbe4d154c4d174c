"""The rules that decide which passes run on a photo (bench/ablation.py chose them), and
that the photo is shrunk once for every pass."""

from __future__ import annotations

import numpy as np
import pytest

from faceblur.detection import base, fusion
from faceblur.detection.fusion import (
    DetectorSettings,
    FusedDetector,
    Passes,
    extra_passes_wanted,
    leaves_doubt,
)


def scores(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize(
    ("found", "wanted"),
    [
        ([scores(0.9, 0.35)], True),  # a face half seen
        ([scores(0.9), scores(0.2)], False),  # clear faces and weak clutter only
        ([scores(0.12)], True),  # nothing seen at 0.3 and up: a narrow or turned face?
        ([], True),
        ([scores(0.5, 0.99)], False),
    ],
)
def test_extra_passes_run_on_doubt_or_when_nothing_is_seen(found, wanted) -> None:
    assert extra_passes_wanted(found, 0.3, 0.5) is wanted


def test_doubt_is_a_score_between_the_bounds() -> None:
    assert leaves_doubt([scores(0.1, 0.2)], 0.2, 0.5)
    assert not leaves_doubt([scores(0.1, 0.5)], 0.2, 0.5)
    assert not leaves_doubt([], 0.2, 0.5)


class CountingNet:
    """Stands in for a network: remembers the image sizes it saw, finds what it is told."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.sizes: list[tuple[int, int]] = []
        self.found = base.RawCandidates.empty()

    def __call__(self, image: np.ndarray, *args: object) -> base.RawCandidates:
        self.sizes.append(image.shape[:2])
        return base.RawCandidates(
            self.found.boxes.copy(), self.found.scores.copy(), self.found.landmarks.copy()
        )

    def scaled(self, image: np.ndarray, scale: float, threshold: float) -> base.RawCandidates:
        return self(base.resize_to(image, scale)).scale_back(scale)

    def upside_down(self, image: np.ndarray, *args: object) -> base.RawCandidates:
        return self(image)

    def squeezed(self, image: np.ndarray, *args: object) -> base.RawCandidates:
        return self(image)


@pytest.fixture
def stand_ins(monkeypatch) -> dict[str, CountingNet]:
    nets = {name: CountingNet() for name in ("CenterFaceNet", "MtcnnNet", "YuNetNet")}
    for name, net in nets.items():
        monkeypatch.setattr(fusion, name, lambda *args, net=net, **kwargs: net)
    return nets


def one_candidate(score: float) -> base.RawCandidates:
    return base.RawCandidates(
        np.array([[10.0, 10, 110, 130]]), scores(score), np.full((1, 5, 2), 5.0)
    )


def test_a_clear_face_skips_mtcnn_and_the_extra_passes(stand_ins) -> None:
    stand_ins["CenterFaceNet"].found = one_candidate(0.95)
    detector = FusedDetector(DetectorSettings())
    passes = detector.passes(np.zeros((1500, 2000, 3), dtype=np.uint8))
    assert set(passes.centerface) == {"global", "shrink"}
    assert passes.mtcnn is None and not stand_ins["MtcnnNet"].sizes
    # One shrink for every network: CenterFace's global pass and YuNet see the same copy.
    assert passes.base.shape[:2] == (768, 1024)
    assert stand_ins["CenterFaceNet"].sizes[0] == stand_ins["YuNetNet"].sizes[0] == (768, 1024)


def test_a_doubtful_face_brings_mtcnn_and_the_extra_passes(stand_ins) -> None:
    stand_ins["CenterFaceNet"].found = one_candidate(0.4)
    detector = FusedDetector(DetectorSettings())
    passes = detector.passes(np.zeros((600, 800, 3), dtype=np.uint8))
    assert {"upside_down", "squeezed"} <= set(passes.centerface)
    assert passes.mtcnn is not None and stand_ins["MtcnnNet"].sizes == [(512, 512)]


def test_ungated_passes_run_everything(stand_ins) -> None:
    stand_ins["CenterFaceNet"].found = one_candidate(0.95)
    detector = FusedDetector(DetectorSettings(zoom=None))
    passes = detector.passes(np.zeros((600, 800, 3), dtype=np.uint8), gated=False)
    assert set(passes.centerface) == {"global", "shrink", "upside_down", "squeezed"}
    assert passes.mtcnn is not None


def test_combine_can_leave_out_a_pass_or_a_network(stand_ins) -> None:
    detector = FusedDetector(DetectorSettings())
    image = np.random.default_rng(1).integers(0, 255, (600, 800, 3), dtype=np.uint8)
    passes = Passes(image, 1.0, {"global": one_candidate(0.9)}, yunet=one_candidate(0.9))
    assert len(detector.combine(image, passes)) == 1
    assert len(detector.combine(image, passes, ("global", "yunet"))) == 0
    assert len(detector.combine(image, passes, ("centerface",))) == 1  # YuNet alone, weighted
