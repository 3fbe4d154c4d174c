"""Reviewing a video in the page, in a real browser (Debian chromium driven by Playwright).

The page under waitress, the real function (the template runner with the handler) and
the real S3 server; the job itself runs in this process (the local S3 server sends no
bucket events here), with the session's detector. The clip is made here: two people of
a dev photo crossing (bench/clips.py).

A person untick a track, draws a box over a frame range, applies, and the new copy plays;
the function then holds exactly those edits, and the copy hides the drawn area.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import expect

from bench.clips import EXPOSED, central_detail_kept, displayed_frames, make_crossing_clip
from conftest import FACES_DEV
from faceblur.service.entry import Engine
from faceblur.service.videos import process_video_object, tracks_answer
from stack_fixtures import running_frontend

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

PHOTO = "images/20_Family_Group_Family_Group_20_100.jpg"
FRAMES = 36
RESULT_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory, dev_annotations) -> tuple[Path, list]:
    entry = next(e for e in dev_annotations if e["image"] == PHOTO)
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / PHOTO)), cv2.COLOR_BGR2RGB)
    path = tmp_path_factory.mktemp("review") / "crossing.mp4"
    return path, make_crossing_clip(photo, entry["faces"][:2], path, frames=FRAMES)


@pytest.fixture
def review_page(s3, function_server, tmp_path) -> Iterator[str]:
    env = {
        **os.environ,
        **s3.env,
        "FACEBLUR_GATEWAY_URL": function_server,
        "FACEBLUR_FRONTEND_SECRET_KEY": "browser-test-secret",
    }
    env.pop("FLASK_DEBUG", None)
    with running_frontend(env, tmp_path / "waitress.log", ready_seconds=30) as url:
        yield url


def run_waiting_job(s3, detector) -> str:
    """Run the one video waiting in the inbox (bounded wait for it); its job id."""
    deadline = time.monotonic() + 60
    while not s3.snapshot()["inbox"] and time.monotonic() < deadline:
        time.sleep(0.2)
    (key,) = s3.snapshot()["inbox"]
    built: Future = Future()
    built.set_result(detector)
    engine = Engine(built)
    answer = process_video_object(key, engine, s3.store(), s3.settings)
    assert answer["state"] == "done", answer
    return answer["job"]


def plays(video) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if video.evaluate("v => v.readyState >= 2 && v.duration > 0"):
            return True
        time.sleep(0.3)
    return False


def test_untick_a_person_draw_a_box_apply_and_play(page, s3, detector, review_page, clip):
    path, truth = clip
    page.goto(review_page)
    page.set_input_files("#photos", str(path))
    page.get_by_role("button", name="Make faces unrecognisable").click()
    job = run_waiting_job(s3, detector)
    card = page.locator(".video-card")
    expect(card).to_have_class(re.compile(r"\bdone\b"), timeout=RESULT_TIMEOUT_MS)
    video = card.locator("video.result-video")
    assert plays(video)

    # The people found, each with a thumbnail cut from the person's own file.
    tracks = tracks_answer(job, s3.store(), s3.settings, None)["tracks"]
    boxes = card.locator(".track-hidden")
    expect(boxes).to_have_count(len(tracks))
    second = next(t["track"] for t in tracks if t["boxes"][0][1] > 300)
    thumb = card.locator(".track-thumb").first
    page.wait_for_function(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v)",
        arg=thumb.element_handle(),
        timeout=30_000,
    )
    # Outlines are drawn over the frame shown.
    page.wait_for_function(
        "c => c.width > 0 && c.getContext('2d').getImageData(0, 0, c.width, c.height)"
        ".data.some(v => v)",
        arg=card.locator(".review-overlay").element_handle(),
        timeout=30_000,
    )

    # Untick the second person with the keyboard alone.
    person = card.get_by_label(f"Person {second} hidden", exact=False)
    person.focus()
    page.keyboard.press("Space")
    expect(person).not_to_be_checked()

    # Draw a box on the paused first frame, then choose its frames by keyboard.
    card.get_by_role("button", name="Draw a box on the paused video").click()
    card.locator(".review-overlay").scroll_into_view_if_needed()
    overlay = card.locator(".review-overlay").bounding_box()
    width = video.evaluate("v => v.videoWidth")
    scale = overlay["width"] / width
    # Over the second person's head in frame 0: hidden while the box follows them.
    page.mouse.move(overlay["x"] + 392 * scale, overlay["y"] + 96 * scale)
    page.mouse.down()
    page.mouse.move(overlay["x"] + 472 * scale, overlay["y"] + 200 * scale, steps=5)
    page.mouse.up()
    drawn = [int(card.locator(f".area-{name}").input_value()) for name in "xywh"]
    expected = (392, 96, 80, 104)
    assert all(abs(a - b) <= 3 for a, b in zip(drawn, expected, strict=True)), drawn
    card.locator(".area-first").fill("0")
    card.locator(".area-last").fill("10")
    card.get_by_role("button", name="Add this area").focus()
    page.keyboard.press("Enter")
    expect(card.locator(".area-list li")).to_have_count(1)

    card.get_by_role("button", name="Apply").click()
    expect(card.locator(".review-message")).to_contain_text("Please say why")
    card.get_by_label("Why people are left visible").fill("subject access request 9")
    card.get_by_role("button", name="Apply").click()
    expect(card.locator(".card-status")).to_have_text(
        "Making a new copy with your changes…", timeout=30_000
    )
    assert run_waiting_job(s3, detector) == job
    expect(card).to_have_class(re.compile(r"\bdone\b"), timeout=RESULT_TIMEOUT_MS)
    expect(card.locator(".review")).to_be_visible(timeout=30_000)
    assert plays(video)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("v => v.currentTime > 0", arg=video.element_handle(), timeout=30_000)

    answer = tracks_answer(job, s3.store(), s3.settings, None)
    hide = [{"frames": [0, 10], "region": drawn}]
    assert answer["edits"] == {"show": [second], "hide": hide}
    (logged,) = s3.store().keys("originals", prefix="audit/")
    entry = json.loads(s3.store().read("originals", logged))
    assert (entry["outcome"], entry["track"]) == ("shown", second)
    assert entry["reason"] == "subject access request 9"
    # The second person is hidden by the box in its frames, and visible after them.
    status = s3.store().read("originals", f"jobs/{job}.json")
    result = path.with_name("result.mp4")
    result.write_bytes(s3.store().read("results", json.loads(status)["result_key"]))
    frames = zip(displayed_frames(path), displayed_frames(result), truth, strict=True)
    kept = [central_detail_kept(a, b, boxes[1]) for a, b, boxes in frames]
    assert all(k is not None and k <= EXPOSED for k in kept[:11]), kept
    later = [k for k in kept[12:] if k is not None]
    assert sum(k > 0.5 for k in later) >= 0.8 * len(later), kept
