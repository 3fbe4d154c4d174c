"""The function's video jobs run the detector the command line runs (and the bench measured).

Each door builds its detector with faceblur.detection.build_detector, and a video's frames
see it through media.follow.for_video, which makes it lighter (zoom near candidates only).
A wrapper around the detector once hid it from for_video in the function: its jobs ran
the photo detector on every frame. Here both doors run end to end, the command line on a
clip and the function (handler.py, in this process) on that clip's bucket event, and what
reached their frames is compared. The networks are stand-ins that load nothing and find
nothing: the doors' own code runs, in seconds rather than two model loads.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from template_runner import Context, Event, load_handler
from test_event_path import minio_event
from werkzeug.datastructures import Headers, MultiDict

from bench.clips import make_clip
from faceblur.cli.main import main
from faceblur.detection import base, build_detector, fusion
from faceblur.detection.angles import AnyAngleDetector
from faceblur.media import video
from faceblur.store.keys import inbox_key, new_job_id
from stack_fixtures import HANDLER, WEBHOOK_TOKEN, LocalS3, webhook_headers


class NoNetwork:
    """Stands in for CenterFace, MTCNN and YuNet: loads nothing, finds no face."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> base.RawCandidates:
        return base.RawCandidates.empty()

    def __getattr__(self, name: str) -> NoNetwork:
        return self  # every pass (scaled, window, upside_down...) finds nothing too


@pytest.fixture
def frame_detectors(monkeypatch) -> list:
    """What each video run hands its frames: for_video's result, recorded (patched in
    media.video, where the pipeline looks it up)."""
    for network in ("CenterFaceNet", "MtcnnNet", "YuNetNet"):
        monkeypatch.setattr(fusion, network, NoNetwork)
    seen: list = []
    real = video.for_video

    def recording(detector):
        seen.append(real(detector))
        return seen[-1]

    monkeypatch.setattr(video, "for_video", recording)
    return seen


def test_the_functions_video_jobs_use_the_command_lines_detector(
    s3: LocalS3, frame_detectors: list, monkeypatch, tmp_path
) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(np.zeros((360, 640, 3), np.uint8), [], clip, (320, 180), frames=4, audio=False)

    assert main(["blur", str(clip), "-o", str(tmp_path / "out")]) == 0

    for name, value in {**s3.env, "FACEBLUR_WEBHOOK_TOKEN": WEBHOOK_TOKEN}.items():
        monkeypatch.setenv(name, value)
    handler = load_handler(HANDLER)  # builds its detector now, with the stand-in networks
    key = inbox_key("", new_job_id(), "clip.mp4")
    s3.store().put(s3.settings.bucket_inbox, key, clip.read_bytes(), "video/mp4")
    event = minio_event(s3.settings.bucket_inbox, key, clip.stat().st_size)
    answer = handler.handle(
        Event(
            json.dumps(event).encode(),
            Headers(webhook_headers()),
            "POST",
            MultiDict(),
            "/",
        ),
        Context(),
    )
    assert answer["statusCode"] == 200
    assert [job["state"] for job in answer["body"]["processed"]] == ["done"]

    command_line, function = frame_detectors
    assert type(function) is type(command_line) is AnyAngleDetector
    assert function.settings == command_line.settings
    assert type(function.upright) is type(command_line.upright)
    assert function.upright.settings == command_line.upright.settings
    assert function.upright.settings.zoom_near_candidates  # the lighter detector for frames


def test_the_detector_and_its_video_copy_share_one_gate(monkeypatch) -> None:
    """The gate is the model's: threads of photos and of a video's frames together get at
    most `images_at_once` (two) images through the networks at a time."""
    for network in ("CenterFaceNet", "MtcnnNet", "YuNetNet"):
        monkeypatch.setattr(fusion, network, NoNetwork)
    running, most = [0], [0]
    guard = threading.Lock()

    def slow_detect(self, image):
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with guard:
            running[0] -= 1
        return []

    monkeypatch.setattr(fusion.FusedDetector, "detect", slow_detect)
    photos = build_detector(upright_only=True)
    frames = video.for_video(photos)
    image = np.zeros((32, 32, 3), np.uint8)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda d: d.detect(image), [photos, frames] * 4))
    assert photos.settings.images_at_once == 2
    assert most[0] == 2
