"""Boxes and the geometry every floor shares: IoU, NMS, windows over an image, padded regions.

Pure numpy, no model: the detectors, the anonymisers, sealing and video tracking all
measure and grow boxes the same way.
"""

from __future__ import annotations

import math

import numpy as np

from faceblur.errors import BadRequestError

Box = tuple[int, int, int, int]
"""x, y, width, height in pixels of the image given to `detect`."""


MAX_TILES_PER_SIDE = 64
"""`tile_windows` tries at most this many columns and rows."""


TILE_EDGE_MARGIN = 2.0
"""A zoomed box within this many zoomed pixels of an inner window edge is cut by it."""


# Padding is added on each side as a share of the box's size and this many times that on
# top: hair is what re-identifies a face once its middle is gone (see DEFAULT_PADDING).
TOP_PADDING_FACTOR = 2.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` with every box of `b` (x1 y1 x2 y2)."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms_order(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes (x1 y1 x2 y2) that NMS keeps, best score first.

    One row of overlaps at a time: a crowd yields thousands of candidates, and a
    full overlap matrix of them would take gigabytes.
    """
    if len(boxes) < 2:
        return np.arange(len(boxes))
    order = np.argsort(-scores, kind="stable")
    boxes = boxes[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.ones(len(order), dtype=bool)
    keep = []
    for rank in range(len(order)):
        if not alive[rank]:
            continue
        keep.append(order[rank])
        rest = np.nonzero(alive[rank + 1 :])[0] + rank + 1
        if not len(rest):
            break
        box = boxes[rank]
        inter_w = np.minimum(box[2], boxes[rest, 2]) - np.maximum(box[0], boxes[rest, 0])
        inter_h = np.minimum(box[3], boxes[rest, 3]) - np.maximum(box[1], boxes[rest, 1])
        inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
        overlap = inter / np.maximum(areas[rank] + areas[rest] - inter, 1e-9)
        alive[rest[overlap > iou_threshold]] = False
    return np.array(keep)


def windows_around(boxes: np.ndarray, width: int, height: int, face: float) -> list[Box]:
    """Square windows (x, y, w, h) that hold each box (x1 y1 x2 y2, at most `face` px
    high) whole, away from the window's edges, a few boxes sharing one where they are
    close: each window is 3 `face` across (or the image's side), centred on the first box
    not yet held by one."""
    side = math.ceil(3 * face)
    margin = face / 2 + TILE_EDGE_MARGIN  # a box centred this far in lies whole inside
    windows: list[Box] = []
    for cx, cy in (boxes[:, :2] + boxes[:, 2:]) / 2:
        held = any(
            x + margin <= cx <= x + w - margin and y + margin <= cy <= y + h - margin
            for x, y, w, h in windows
        )
        if not held:
            w, h = min(side, width), min(side, height)
            x = min(max(round(cx - w / 2), 0), width - w)
            y = min(max(round(cy - h / 2), 0), height - h)
            windows.append((x, y, w, h))
    return windows


def tile_windows(width: int, height: int, max_area: float, overlap: int) -> list[Box]:
    """The fewest overlapping windows (x, y, w, h) of at most `max_area` px that cover the image.

    Neighbouring windows share `overlap` px, so a face smaller than that lies whole
    inside at least one window. Windows are as even as possible.
    """
    best: tuple[int, int, int, int] | None = None  # (count, covered area, columns, rows)
    for columns in range(1, MAX_TILES_PER_SIDE + 1):
        for rows in range(1, MAX_TILES_PER_SIDE + 1):
            tile_w = math.ceil((width + (columns - 1) * overlap) / columns)
            tile_h = math.ceil((height + (rows - 1) * overlap) / rows)
            if tile_w * tile_h > max_area and (tile_w > overlap or tile_h > overlap):
                continue
            key = (columns * rows, columns * rows * tile_w * tile_h, columns, rows)
            if best is None or key < best:
                best = key
            break  # more rows only add windows
    if best is None:
        raise ValueError(f"cannot tile {width}x{height} with windows of {max_area} px")
    _, _, columns, rows = best

    def spans(length: int, count: int) -> list[tuple[int, int]]:
        size = min(length, math.ceil((length + (count - 1) * overlap) / count))
        if count == 1:
            return [(0, length)]
        return [(round(i * (length - size) / (count - 1)), size) for i in range(count)]

    return [(x, y, w, h) for y, h in spans(height, rows) for x, w in spans(width, columns)]


def padded_region(box: Box, padding: float, width: int, height: int, turn: int = 0) -> Box:
    """`box` grown by `padding` x its size on each side (2 x on the side the head points
    to: on top, or right, below, left for a face turned 90, 180, 270 degrees clockwise),
    clipped to the image. A box wholly outside the image comes back with zero width or height.
    """
    if not padding >= 0:
        raise BadRequestError(
            f"padding must be a number >= 0; got {padding!r}", "bad_option", option="padding"
        )
    x, y, w, h = (float(v) for v in box)
    w, h = max(w, 0.0), max(h, 0.0)
    top_pad, right_pad, bottom_pad, left_pad = np.roll(
        [TOP_PADDING_FACTOR * padding, padding, padding, padding], (turn // 90) % 4
    )
    left = int(np.floor(x - left_pad * w))
    top = int(np.floor(y - top_pad * h))
    right = int(np.ceil(x + w + right_pad * w))
    bottom = int(np.ceil(y + h + bottom_pad * h))
    left, right = min(max(left, 0), width), min(max(right, 0), width)
    top, bottom = min(max(top, 0), height), min(max(bottom, 0), height)
    return left, top, max(right - left, 0), max(bottom - top, 0)
