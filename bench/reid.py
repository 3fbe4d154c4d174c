"""Re-identification benchmark: can an attacker still name the person behind an anonymised face?

On the AT&T (Olivetti) faces, 40 people x 10 photos: every method x strength (and "none")
anonymises all 400 photos, either the whole photo as one face region ("whole") or through the
normal pipeline ("pipeline": detector + default padding + anonymise + encode); "wide" reruns
the pipeline for the default method and solid with a wider padding (these photos are cropped
tight, so at the default padding some hair and chin stay outside the region). For
several seeded splits, one photo per person is held out; each attacker trains on the other
nine anonymised photos of every person (it knows the method and sees it applied the same
way) and names the held-out one. Rank-1 accuracy is printed beside chance (1/40) and written to
bench/results/reid.json.

Attackers:
- pca-1nn: PCA (120 components) + 1-nearest-neighbour on grey pixels, the classic attack that
  names 90 % of blurred faces.
- hog-ridge: HOG gradients plus a 4x4 grid of mean colours, standardised, then a linear
  classifier (ridge, a least-squares linear SVM: as accurate here as LinearSVC and 100x
  faster). It sees exactly what survives a blur: coarse shape, overall brightness and
  colour layout.
- lbp-logreg: uniform LBP texture histograms in a 4x4 grid plus the region's colour statistics
  (mean, spread, percentiles), multinomial logistic regression: texture and tone, independent
  of where things sit.
- dlib-resnet: a real face recogniser, dlib's ResNet face embedding (99.4 % on LFW), faces
  aligned by dlib's 5-point landmarks found in the frame, then 1-nearest-neighbour on the
  128-d embeddings, the way face_recognition matches people. About 0.1-0.3 s a photo, so it
  runs only on "none", the default method and blur (the usual peer), at the default
  strength. Needs dlib-bin and the two model files in .local/models (`make install`).

Usage: .venv/bin/python bench/reid.py [--splits N] [--modes whole,pipeline,wide] [--methods ...]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage.feature import hog, local_binary_pattern
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from faceblur.anonymise import METHODS, anonymise
from faceblur.options import DEFAULT_METHOD, DEFAULT_PADDING, DEFAULT_STRENGTH, STRENGTHS

ROOT = Path(__file__).resolve().parents[1]
DLIB_MODELS = ROOT / ".local" / "models"
ATT_FACES = ROOT.parent / "shared" / "data" / "att-faces"
RESULTS = ROOT / "bench" / "results" / "reid.json"
PCA_COMPONENTS = 120
# AT&T photos are cropped tight: at the default padding a few rows of hair and chin stay
# outside the region. "wide" reruns the pipeline with this padding for the fills that
# depend on nothing in the face, to show how much of what is left is the region's doing.
WIDE_PADDING = 0.5
WIDE_METHODS = (DEFAULT_METHOD, "solid")
DEEP_METHODS = ("none", DEFAULT_METHOD, "blur")  # the rows the slow attackers run on


@dataclass(frozen=True)
class FaceSet:
    images: list[np.ndarray]  # RGB uint8, all the same size
    people: np.ndarray  # person label per image


def load_att(
    root: Path = ATT_FACES,
    people: Sequence[int] = range(1, 41),
    photos: Sequence[int] = range(1, 11),
) -> FaceSet:
    """The AT&T photos as RGB arrays (grey copied to three channels), person labels 1..40."""
    images, labels = [], []
    for person in people:
        for photo in photos:
            grey = np.asarray(Image.open(root / f"s{person}" / f"{photo}.pgm").convert("L"))
            images.append(np.repeat(grey[..., None], 3, axis=2))
            labels.append(person)
    return FaceSet(images, np.array(labels))


def anonymise_whole(images: list[np.ndarray], method: str, strength: str) -> list[np.ndarray]:
    """Each photo anonymised as one face region covering the whole frame."""
    if method == "none":
        return [image.copy() for image in images]
    return [
        anonymise(image, [(0, 0, image.shape[1], image.shape[0])], method, strength=strength)
        for image in images
    ]


class RememberingDetector:
    """Wraps the real detector so each photo is detected once across all methods."""

    def __init__(self, detector) -> None:
        self._detector = detector
        self._seen: dict[bytes, list] = {}

    def detect(self, image: np.ndarray) -> list:
        key = image.tobytes()
        if key not in self._seen:
            self._seen[key] = self._detector.detect(image)
        return self._seen[key]


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def anonymise_pipeline(
    images: list[np.ndarray],
    method: str,
    strength: str,
    detector: RememberingDetector,
    padding: float = DEFAULT_PADDING,
) -> tuple[list[np.ndarray], float | None]:
    """Each photo through faceblur's own pipeline; also the share with at least one face."""
    from faceblur.media.photo import anonymise_image
    from faceblur.options import Options

    if method == "none":
        return [image.copy() for image in images], None
    options = Options(method=method, strength=strength, padding=padding)
    results, with_faces = [], 0
    for image in images:
        result = anonymise_image(_png(image), detector, options)
        with_faces += bool(result.faces)
        decoded = Image.open(io.BytesIO(result.data)).convert("RGB")
        results.append(np.asarray(decoded))
    return results, with_faces / len(images)


def _grey(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _colour_grid(image: np.ndarray, cells: int = 4) -> np.ndarray:
    h, w = image.shape[:2]
    rows = np.array_split(np.arange(h), cells)
    cols = np.array_split(np.arange(w), cells)
    return np.array(
        [image[r[0] : r[-1] + 1, c[0] : c[-1] + 1].mean(axis=(0, 1)) for r in rows for c in cols]
    ).ravel()


def _colour_stats(image: np.ndarray) -> np.ndarray:
    pixels = image.reshape(-1, 3).astype(np.float32)
    return np.concatenate(
        [pixels.mean(axis=0), pixels.std(axis=0), *np.percentile(pixels, [10, 50, 90], axis=0)]
    )


def pixel_features(image: np.ndarray) -> np.ndarray:
    return _grey(image).ravel()


def hog_features(image: np.ndarray) -> np.ndarray:
    gradients = hog(_grey(image), orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
    return np.concatenate([gradients, _colour_grid(image) / 255.0])


def lbp_features(image: np.ndarray, cells: int = 4, points: int = 8) -> np.ndarray:
    codes = local_binary_pattern(_grey(image).astype(np.uint8), points, 1, method="uniform")
    h, w = codes.shape
    histograms = []
    for rows in np.array_split(np.arange(h), cells):
        for cols in np.array_split(np.arange(w), cells):
            cell = codes[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            counts = np.bincount(cell.astype(int).ravel(), minlength=points + 2)
            histograms.append(counts / cell.size)
    return np.concatenate([*histograms, _colour_stats(image) / 255.0])


class DlibEmbedding:
    """dlib's ResNet face descriptor of a photo, aligned by its 5-point landmarks.

    The attacker does not search for the face (a detector finds nothing in a fill): like
    every attacker here it takes the frame as the face, as AT&T photos are cropped to it.
    """

    UPSCALE = 2  # the landmark model and the 150-px chip want a larger face than 92x112
    MARGIN = (0.04, 0.13, 0.04, 0.06)  # left, top, right, bottom shares left out of the box

    def __init__(self, models: Path = DLIB_MODELS) -> None:
        self._models = models
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            import dlib

            landmarks = self._models / "shape_predictor_5_face_landmarks.dat"
            network = self._models / "dlib_face_recognition_resnet_model_v1.dat"
            if not (landmarks.is_file() and network.is_file()):
                raise FileNotFoundError(f"dlib's models are not in {self._models}: make install")
            self._loaded = (
                dlib,
                dlib.shape_predictor(str(landmarks)),
                dlib.face_recognition_model_v1(str(network)),
            )
        return self._loaded

    def __call__(self, image: np.ndarray) -> np.ndarray:
        dlib, landmarks, network = self._load()
        h, w = image.shape[:2]
        big = cv2.resize(image, (w * self.UPSCALE, h * self.UPSCALE), interpolation=cv2.INTER_CUBIC)
        left, top, right, bottom = self.MARGIN
        H, W = big.shape[:2]
        frame = dlib.rectangle(
            round(left * W), round(top * H), round((1 - right) * W), round((1 - bottom) * H)
        )
        return np.array(network.compute_face_descriptor(big, landmarks(big, frame)))


@dataclass(frozen=True)
class Attacker:
    name: str
    features: Callable[[np.ndarray], np.ndarray]
    model: Callable[[], object]  # a fresh scikit-learn classifier
    every_row: bool = True  # else only on DEEP_METHODS at the default strength (slow ones)


def _pca_1nn():
    return make_pipeline(
        PCA(n_components=PCA_COMPONENTS, svd_solver="randomized", random_state=0),
        KNeighborsClassifier(n_neighbors=1),
    )


ATTACKERS = (
    Attacker("pca-1nn", pixel_features, _pca_1nn),
    Attacker(
        "hog-ridge",
        hog_features,
        lambda: make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0)),
    ),
    Attacker(
        "lbp-logreg",
        lbp_features,
        lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=200)),
    ),
    Attacker(
        "dlib-resnet",
        DlibEmbedding(),
        lambda: KNeighborsClassifier(n_neighbors=1),
        every_row=False,
    ),
)


def holdout_splits(people: np.ndarray, splits: int, seed: int = 0) -> list[np.ndarray]:
    """For each split, a boolean mask holding out one photo per person.

    Each person's photos are put in a seeded random order and split k holds out the k-th,
    so no photo is held out twice: with as many splits as photos per person, every photo
    is guessed exactly once (the most independent guesses the data allows).
    """
    rng = np.random.default_rng(seed)
    orders = {
        person: rng.permutation(np.flatnonzero(people == person)) for person in np.unique(people)
    }
    if splits > min(len(order) for order in orders.values()):
        raise ValueError(f"at most {min(len(o) for o in orders.values())} splits without repeats")
    masks = []
    for split in range(splits):
        held = np.zeros(len(people), dtype=bool)
        held[[order[split] for order in orders.values()]] = True
        masks.append(held)
    return masks


def rank1(
    images: list[np.ndarray], people: np.ndarray, attacker: Attacker, masks: list[np.ndarray]
) -> list[float]:
    """Rank-1 accuracy of `attacker` on each held-out split."""
    features = np.array([attacker.features(image) for image in images], dtype=np.float32)
    scores = []
    for held in masks:
        model = attacker.model()
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            # A solid fill makes every photo alike: PCA's variance ratio is then 0/0.
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            model.fit(features[~held], people[~held])
        scores.append(float(np.mean(model.predict(features[held]) == people[held])))
    return scores


def jobs(
    modes: Sequence[str], methods: Sequence[str], strengths: Sequence[str]
) -> list[tuple[str, float | None, str, str]]:
    """(mode, padding, method, strength) for every row of the table, "none" first."""
    every = [("none", "-")] + [(m, s) for m in methods for s in strengths]
    rows: list[tuple[str, float | None, str, str]] = []
    for mode in modes:
        if mode == "whole":
            rows += [(mode, None, m, s) for m, s in every]
        elif mode == "pipeline":
            rows += [(mode, DEFAULT_PADDING, m, s) for m, s in every]
        elif mode == "wide":
            chosen = [m for m in WIDE_METHODS if m in methods]
            rows += [(mode, WIDE_PADDING, m, DEFAULT_STRENGTH) for m in chosen]
        else:
            raise ValueError(f"unknown mode {mode!r}; choose whole, pipeline or wide")
    return rows


def run(
    faces: FaceSet,
    modes: Sequence[str],
    splits: int,
    methods: Sequence[str],
    strengths: Sequence[str],
    attackers: Sequence[Attacker] = ATTACKERS,
    detector=None,
    draws: int = 1,
) -> list[dict]:
    masks = holdout_splits(faces.people, splits)
    rows = []
    for mode, padding, method, strength in jobs(modes, methods, strengths):
        started = time.perf_counter()
        randomised = method != "none" and METHODS[method].randomised
        deep_row = method in DEEP_METHODS and strength in ("-", DEFAULT_STRENGTH)
        used = [a for a in attackers if a.every_row or deep_row]
        scores: dict[str, list[float]] = {attacker.name: [] for attacker in used}
        detected = None
        for _ in range(draws if randomised else 1):
            if mode == "whole":
                images = anonymise_whole(faces.images, method, strength)
            else:
                images, detected = anonymise_pipeline(
                    faces.images, method, strength, detector, padding
                )
            for attacker in used:
                scores[attacker.name] += rank1(images, faces.people, attacker, masks)
        row = {
            "mode": mode,
            "padding": padding,
            "method": method,
            "strength": strength,
            "chance": 1 / len(np.unique(faces.people)),
            "photos_with_faces": detected,
            "draws": draws if randomised else 1,
            "seconds": round(time.perf_counter() - started, 2),
            "rank1": {name: round(float(np.mean(s)), 4) for name, s in scores.items()},
            "rank1_per_draw_and_split": {
                name: [round(v, 4) for v in s] for name, s in scores.items()
            },
        }
        row["worst"] = max(row["rank1"].values())
        rows.append(row)
        print(_format_row(row, [a.name for a in attackers]), flush=True)
    return rows


def _format_header(names: Sequence[str]) -> str:
    cells = "".join(f"{n:>12}" for n in names)
    return f"{'mode':<9}{'method':<10}{'strength':<9}{cells}{'worst':>8}{'chance':>8}"


def _format_row(row: dict, names: Sequence[str]) -> str:
    cells = "".join(
        f"{row['rank1'][n]:>12.1%}" if n in row["rank1"] else f"{'-':>12}" for n in names
    )
    return (
        f"{row['mode']:<9}{row['method']:<10}{row['strength']:<9}{cells}"
        f"{row['worst']:>8.1%}{row['chance']:>8.1%}"
    )


def merged(earlier: dict, report: dict) -> dict:
    """`report` with the rows of `earlier` it did not rerun, each row naming its run."""

    def key(row: dict) -> tuple:
        return row["mode"], row["padding"], row["method"], row["strength"]

    runs = earlier.get("runs") or [
        {k: earlier.get(k) for k in ("seconds", "draws_for_randomised_methods")}
    ]
    report["runs"] = [*runs, {"seconds": report["seconds"], "rows": len(report["rows"])}]
    fresh = {key(row) for row in report["rows"]}
    for row in report["rows"]:
        row["run"] = len(report["runs"]) - 1
    kept = [{"run": 0, **row} for row in earlier["rows"] if key(row) not in fresh]
    report["rows"] = kept + report["rows"]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10, help="held-out splits (default 10)")
    parser.add_argument(
        "--modes", default="whole,pipeline,wide", help="whole, pipeline and/or wide"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--strengths", default=",".join(STRENGTHS))
    parser.add_argument(
        "--draws",
        type=int,
        default=3,
        help="fresh anonymisations of the 400 photos for randomised methods, averaged (default 3)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only this run's rows in --output, keep the others (marked by run)",
    )
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    faces = load_att()
    detector = None
    if {"pipeline", "wide"} & set(modes):
        from faceblur.detection import build_detector

        started = time.perf_counter()
        detector = RememberingDetector(build_detector())
        print(f"detector built in {time.perf_counter() - started:.1f} s", flush=True)
    names = [a.name for a in ATTACKERS]
    print(
        f"{len(faces.images)} photos of {len(np.unique(faces.people))} people, "
        f"{args.splits} splits; rank-1 re-identification (chance {1 / 40:.1%})"
    )
    print(_format_header(names), flush=True)
    started = time.perf_counter()
    # One BLAS thread: these fits are small, and threads fighting over 2 busy cores made
    # the run ten times slower.
    with threadpool_limits(limits=1):
        rows = run(
            faces,
            modes,
            args.splits,
            [m for m in args.methods.split(",") if m],
            [s for s in args.strengths.split(",") if s],
            detector=detector,
            draws=args.draws,
        )
    report = {
        "dataset": "AT&T (Olivetti) faces, 40 people x 10 photos, 92x112 grey",
        "splits": args.splits,
        "draws_for_randomised_methods": args.draws,
        "held_out_per_person": 1,
        "attackers": names,
        "pca_components": PCA_COMPONENTS,
        "default_method": DEFAULT_METHOD,
        "default_strength": DEFAULT_STRENGTH,
        "default_padding": DEFAULT_PADDING,
        "wide_padding": WIDE_PADDING,
        "seconds": round(time.perf_counter() - started, 1),
        "python": platform.python_version(),
        "rows": rows,
    }
    if args.merge and args.output.is_file():
        report = merged(json.loads(args.output.read_text()), report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
