"""Contact sheets: dev photos before and after, faceblur's default beside blur and deface.

For a portrait, a small group, a group and a crowd (three of each, spread over how many
faces they hold, plus the densest crowd of the dev set), one PNG per photo under
bench/sheets/ (git-ignored: these are WIDER photos, never committed): the photo, faceblur's
default method, faceblur's blur (same detections and regions) and deface 1.5.0's own output
(its CLI, `--mask-scale 1.3`, onnxruntime), side by side, each labelled. And `crop-*.png`:
100 % crops (no scaling) of the densest crowd, a group and two close-ups (one running
off the frame), original beside default beside blur beside deface: open them at 100 %.

Usage: .venv/bin/python bench/sheets.py [--per-scene N] [--output DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from faceblur.options import DEFAULT_METHOD

ROOT = Path(__file__).resolve().parents[1]
FACES_DEV = ROOT.parent / "shared" / "data" / "faces-dev"
OUTPUT = ROOT / "bench" / "sheets"
SCENES = ("portrait", "small_group", "group", "crowd")
PANEL_WIDTH = 640  # px: each photo is scaled to this width on the sheet
DEFACE_MASK_SCALE = 1.3
# The 100 % crops: a close-up running off the frame's top and bottom (issue 28), another
# close-up, a group; the densest crowd is added by pick_photos.
CROPPED = (
    "images/13_Interview_Interview_On_Location_13_542.jpg",
    "images/13_Interview_Interview_On_Location_13_791.jpg",
    "images/20_Family_Group_Family_Group_20_493.jpg",
)
CROP = (480, 360)  # px across and down, at 100 %


def pick_photos(entries: list[dict], per_scene: int) -> list[dict]:
    """`per_scene` photos of each scene spread from fewest to most faces, and the densest."""
    chosen: list[dict] = []
    for scene in SCENES:
        ranked = sorted(
            (e for e in entries if e["scene"] == scene), key=lambda e: (e["n_faces"], e["image"])
        )
        spots = np.linspace(0, len(ranked) - 1, per_scene).round().astype(int)
        chosen += [ranked[i] for i in dict.fromkeys(spots)]
    densest = max(entries, key=lambda e: e["n_faces"])
    for extra in [densest, *(e for e in entries if e["image"] in CROPPED)]:
        if extra not in chosen:
            chosen.append(extra)
    return chosen


def crop_window(entry: dict) -> tuple[int, int, int, int]:
    """A CROP-sized window (x, y, w, h) on the photo: around its largest face, or for
    the densest crowd around the face with the most others near it."""
    faces = np.array(entry["faces"], dtype=float).reshape(-1, 4)
    centres = faces[:, :2] + faces[:, 2:] / 2
    if entry["image"] in CROPPED:
        centre = centres[np.argmax(faces[:, 3])]
    else:
        near = (np.abs(centres[:, None] - centres[None]) < np.array(CROP) / 2).all(axis=2)
        centre = centres[np.argmax(near.sum(axis=1))]
    width, height = min(CROP[0], entry["width"]), min(CROP[1], entry["height"])
    x = int(np.clip(centre[0] - width / 2, 0, entry["width"] - width))
    y = int(np.clip(centre[1] - height / 2, 0, entry["height"] - height))
    return x, y, width, height


def crops(panels: list[tuple[np.ndarray, str]], window: tuple[int, int, int, int]) -> np.ndarray:
    """The same window of every panel at 100 %, side by side, each labelled."""
    x, y, w, h = window
    tiles = []
    for image, label in panels:
        band = np.full((28, w, 3), 255, dtype=np.uint8)
        cv2.putText(band, label[:40], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        tiles.append(np.vstack([band, image[y : y + h, x : x + w]]))
        tiles.append(np.full((h + 28, 8, 3), 255, dtype=np.uint8))
    return np.hstack(tiles[:-1])


@dataclass(frozen=True)
class Found:
    """A detector that answers with detections made once: every method gets the same."""

    candidates: list

    def detect(self, image: np.ndarray) -> list:
        return self.candidates


def faceblur_outputs(photos: list[Path], methods: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """Each photo through faceblur's pipeline with each method, detecting each photo once."""
    from faceblur.detection import build_detector
    from faceblur.media.photo import anonymise_image
    from faceblur.options import Options

    detector = build_detector()
    outputs: dict[str, list[np.ndarray]] = {method: [] for method in methods}
    for photo in photos:
        data = photo.read_bytes()
        candidates = detector.detect(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))

        for method in methods:
            result = anonymise_image(data, Found(candidates), Options(method=method))
            outputs[method].append(np.asarray(Image.open(io.BytesIO(result.data)).convert("RGB")))
    return outputs


def deface_outputs(photos: list[Path]) -> list[np.ndarray]:
    """deface's own CLI output for each photo, as its users run it."""
    deface = Path(sys.executable).with_name("deface")
    outputs = []
    with tempfile.TemporaryDirectory() as folder:
        for index, photo in enumerate(photos):
            target = Path(folder) / f"{index}.png"
            subprocess.run(
                [
                    str(deface),
                    "--mask-scale",
                    str(DEFACE_MASK_SCALE),
                    "--backend",
                    "onnxrt",
                    "-o",
                    str(target),
                    str(photo),
                ],
                check=True,
                capture_output=True,
            )
            outputs.append(np.asarray(Image.open(target).convert("RGB")))
    return outputs


def _panel(image: np.ndarray, label: str) -> np.ndarray:
    height, width = image.shape[:2]
    size = (PANEL_WIDTH, max(1, round(height * PANEL_WIDTH / width)))
    panel = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    band = np.full((28, PANEL_WIDTH, 3), 255, dtype=np.uint8)
    cv2.putText(band, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([band, panel])


def sheet(panels: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """Panels side by side (two by two when the photo is wider than tall), white gutters."""
    tiles = [_panel(image, label) for image, label in panels]
    gutter = np.full((tiles[0].shape[0], 8, 3), 255, dtype=np.uint8)
    if panels[0][0].shape[1] > panels[0][0].shape[0]:
        rows = [tiles[:2], tiles[2:]]
        lines = [np.hstack([row[0], gutter, row[1]]) for row in rows]
        space = np.full((8, lines[0].shape[1], 3), 255, dtype=np.uint8)
        return np.vstack([lines[0], space, lines[1]])
    return np.hstack([part for tile in tiles for part in (tile, gutter)][:-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-scene", type=int, default=3)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    entries = json.loads((FACES_DEV / "annotations.json").read_text())
    chosen = pick_photos(entries, args.per_scene)
    densest = max(entries, key=lambda e: e["n_faces"])["image"]
    photos = [FACES_DEV / entry["image"] for entry in chosen]
    methods = [DEFAULT_METHOD, "blur"]
    ours = faceblur_outputs(photos, methods)
    theirs = deface_outputs(photos)
    args.output.mkdir(parents=True, exist_ok=True)
    for index, (entry, photo) in enumerate(zip(chosen, photos, strict=True)):
        before = np.asarray(Image.open(photo).convert("RGB"))
        panels = [(before, f"before: {entry['n_faces']} faces ({entry['scene']})")]
        panels += [(ours[m][index], f"faceblur {m}") for m in methods]
        panels.append((theirs[index], f"deface 1.5.0 --mask-scale {DEFACE_MASK_SCALE}"))
        name = f"{index:02d}-{entry['scene']}-{Path(entry['image']).stem}.png"
        Image.fromarray(sheet(panels)).save(args.output / name)
        print(args.output / name, flush=True)
        if entry["image"] in (*CROPPED, densest):
            crop_name = f"crop-{entry['scene']}-{Path(entry['image']).stem}.png"
            Image.fromarray(crops(panels, crop_window(entry))).save(args.output / crop_name)
            print(args.output / crop_name, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
