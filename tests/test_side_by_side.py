"""A batch's photos side by side (issue 24): the detector takes two images at once, and
`faceblur detect` / `blur` run the next photo while this one ends, printing in order.

The results must be exactly those of one photo at a time, in the input's order, and one
bad photo must be reported by name without stopping the others.
"""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FACES_DEV
from faceblur.cli.main import main
from faceblur.detection import base, build_detector, fusion
from faceblur.detection.fusion import DetectorSettings
from faceblur.detection.serial import SerialDetector
from faceblur.detection.yunet import YUNET_MODEL, YuNetNet
from faceblur.errors import NotAnImageError
from faceblur.media.photo import PHOTOS_AT_ONCE, faces_to_json, locate_faces, side_by_side

# ---------------------------------------------------------------- side_by_side itself


def test_results_come_in_the_items_order_whatever_finishes_first() -> None:
    # The first item finishes last: it waits until every later one has started.
    later_started = threading.Event()

    def work(item: int) -> int:
        if item == 0:
            assert later_started.wait(10)
        else:
            later_started.set()
        return item * item

    out = [(item, done.result()) for item, done in side_by_side(range(6), work, 2)]

    assert out == [(i, i * i) for i in range(6)]


def test_one_failing_item_fails_alone() -> None:
    def work(item: int) -> int:
        if item == 2:
            raise NotAnImageError("not an image")
        return item

    outcomes = []
    for _, done in side_by_side(range(5), work, 2):
        try:
            outcomes.append(done.result())
        except NotAnImageError as error:
            outcomes.append(str(error))

    assert outcomes == [0, 1, "not an image", 3, 4]


def test_at_most_at_once_items_are_in_work() -> None:
    lock, running, most = threading.Lock(), [0], [0]

    def work(item: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threading.Event().wait(0.01)  # long enough for the next ones to start if they could
        with lock:
            running[0] -= 1
        return item

    consumed = [done.result() for _, done in side_by_side(range(12), work, 3)]

    assert consumed == list(range(12))
    assert most[0] == 3


def test_nothing_more_starts_once_the_caller_stops() -> None:
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        return item

    batch = side_by_side(range(100), work, 2)
    first, done = next(batch)
    assert (first, done.result()) == (0, 0)
    batch.close()  # the caller gives up after the first photo

    assert len(started) <= 3, started


def test_at_once_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next(side_by_side([1], lambda item: item, 0))


# ---------------------------------------------------------------- the detector's gate


class Meeting:
    """A stand-in CenterFace whose global pass waits for `images` calls to be inside at
    once: it tells whether the detector lets that many images through together."""

    images = 2

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.met = threading.Barrier(self.images, timeout=2)

    def __call__(self, image: np.ndarray, threshold: float) -> base.RawCandidates:
        if image.shape[1] == 64:  # the global pass of the test's 64-px images
            self.met.wait()
        return base.RawCandidates.empty()

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: base.RawCandidates.empty()


@pytest.fixture
def meeting_networks(monkeypatch) -> None:
    class Quiet:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __call__(self, *args: object, **kwargs: object) -> base.RawCandidates:
            return base.RawCandidates.empty()

    monkeypatch.setattr(fusion, "CenterFaceNet", Meeting)
    monkeypatch.setattr(fusion, "MtcnnNet", Quiet)
    monkeypatch.setattr(fusion, "YuNetNet", Quiet)


def detect_together(detector: SerialDetector, images: int) -> list:
    picture = np.full((48, 64, 3), 128, np.uint8)
    with ThreadPoolExecutor(images) as callers:
        return list(callers.map(lambda _: detector.detect(picture), range(images)))


def test_the_detector_takes_two_images_at_once(meeting_networks) -> None:
    detector = SerialDetector(DetectorSettings())
    assert detector.settings.images_at_once == 2 == PHOTOS_AT_ONCE

    assert detect_together(detector, 2) == [[], []]  # both were inside at the same time


def test_one_image_at_a_time_when_asked(meeting_networks) -> None:
    detector = SerialDetector(DetectorSettings(images_at_once=1))

    with pytest.raises(threading.BrokenBarrierError):
        detect_together(detector, 2)  # the second waits outside: the first waits alone


def test_images_at_once_must_be_positive(meeting_networks) -> None:
    with pytest.raises(ValueError, match="images_at_once"):
        build_detector(images_at_once=0)


def test_yunet_called_from_many_threads_answers_as_one_at_a_time(dev_annotations) -> None:
    # One OpenCV net whose input size is set per call: without its lock, a call could run
    # at another photo's size.
    net = YuNetNet(YUNET_MODEL, 0.3)
    photos = []
    for entry in dev_annotations[:4]:
        with Image.open(FACES_DEV / entry["image"]) as photo:
            rgb = np.asarray(photo.convert("RGB"))
        photos.append(rgb[: rgb.shape[0] - 16 * len(photos)])  # four different sizes
    alone = [net(photo) for photo in photos]

    with ThreadPoolExecutor(4) as callers:
        together = list(callers.map(net, photos * 4))

    for found, expected in zip(together, alone * 4, strict=True):
        assert np.array_equal(found.boxes, expected.boxes)
        assert np.array_equal(found.scores, expected.scores)


# ---------------------------------------------------------------- the command line


def batch_folder(tmp_path: Path, names: list[str], suffix: str, not_a_photo: str) -> Path:
    """A folder of the dev photos `names` as `<index><suffix>.jpg`, and a file
    `not_a_photo` that is no photo (named to sort between two of them)."""
    folder = tmp_path / "batch"
    folder.mkdir()
    for index, name in enumerate(names):
        (folder / f"{index}{suffix}.jpg").write_bytes((FACES_DEV / name).read_bytes())
    (folder / not_a_photo).write_text("not a photo")
    return folder


def test_detect_on_a_batch_prints_what_one_photo_at_a_time_finds_in_order(
    tmp_path: Path, dev_annotations, detector
) -> None:
    names = [entry["image"] for entry in dev_annotations[10:15]]
    folder = batch_folder(tmp_path, names, "a", "2b.jpg")  # between the third and the fourth
    out, err = io.StringIO(), io.StringIO()

    with redirect_stdout(out), redirect_stderr(err):
        code = main(["detect", str(folder), "--json"])

    assert code == 1, "a failed photo makes the batch fail"
    assert f"{folder / '2b.jpg'}: " in err.getvalue() and "[not_an_image]" in err.getvalue()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [Path(r["path"]).name for r in records] == [f"{i}a.jpg" for i in range(5)]
    for record, name in zip(records, names, strict=True):
        one = locate_faces((FACES_DEV / name).read_bytes(), detector)
        assert record["faces"] == faces_to_json(one, as_stored=True)
        assert len(record["faces"]) > 0


def test_mtcnn_runs_each_call_on_its_calling_thread(detector) -> None:
    # TensorFlow's own pools (one thread per core) cost CPU for the same faces; the
    # detector runs its calls side by side instead, each on one thread.
    import tensorflow as tf

    detector.upright.wait_loaded()
    assert tf.config.threading.get_intra_op_parallelism_threads() == 1
    assert tf.config.threading.get_inter_op_parallelism_threads() == 1


def test_blur_on_a_batch_writes_what_one_photo_at_a_time_writes(
    tmp_path: Path, dev_annotations
) -> None:
    names = [entry["image"] for entry in dev_annotations[20:23]]
    folder = batch_folder(tmp_path, names, "", "1b.jpg")  # between the second and the third
    err = io.StringIO()
    # `blur`, not the default: the default draws a fresh secret on every photo by design.
    method = ["--method", "blur"]

    with redirect_stderr(err):
        batch = main(["blur", str(folder), "-o", str(tmp_path / "batch-out"), *method])
        alone = [
            main(["blur", str(folder / f"{i}.jpg"), "-o", str(tmp_path / f"alone-{i}"), *method])
            for i in range(len(names))
        ]

    assert batch == 1 and alone == [0] * len(names)
    assert "1b.jpg: " in err.getvalue() and "[not_an_image]" in err.getvalue()
    assert "3 photo(s) anonymised" in err.getvalue() and "1 failed" in err.getvalue()
    for index in range(len(names)):
        written = (tmp_path / "batch-out" / f"{index}.jpg").read_bytes()
        assert written == (tmp_path / f"alone-{index}" / f"{index}.jpg").read_bytes()
