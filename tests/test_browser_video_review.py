"""Reviewing a video in the page, in a real browser (Debian chromium driven by Playwright).

The page under waitress, the real function (the template runner with the handler) and
the real S3 server; the job itself runs in this process (the local S3 server sends no
bucket events here), with the session's detector. The clip is made here: two people of
a dev photo crossing (bench/clips.py).

A person untick a track, draws a box over a frame range, applies, and the new copy plays;
the function then holds exactly those edits, and the copy hides the drawn area. A phone
clip stored sideways is outlined and edited as it plays (the function keeps boxes as
stored; the page turns them), and Chromium plays all eight orientations as the core
turns boxes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from playwright.sync_api import expect

from bench.clips import EXPOSED, central_detail_kept, displayed_frames, make_crossing_clip
from conftest import FACES_DEV
from faceblur.media.container import Orientation, probe
from faceblur.orientation import box_as_shown, box_as_stored, size_as_shown
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


# -- a clip stored sideways, as phones write them ----------------------------------------

TURNED_FRAMES = 24


@pytest.fixture(scope="module")
def turned_clip(tmp_path_factory, dev_annotations) -> tuple[Path, list]:
    """The crossing clip stored turned a quarter (270x480), played upright (480x270)."""
    entry = next(e for e in dev_annotations if e["image"] == PHOTO)
    photo = cv2.cvtColor(cv2.imread(str(FACES_DEV / PHOTO)), cv2.COLOR_BGR2RGB)
    path = tmp_path_factory.mktemp("turned") / "phone.mp4"
    truth = make_crossing_clip(photo, entry["faces"][:2], path, frames=TURNED_FRAMES, turns=1)
    return path, truth


def outline_pixels(overlay) -> np.ndarray:
    """(x, y) of every pixel of the dashed yellow outlines drawn over the player."""
    found = overlay.evaluate(
        """c => {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          const out = [];
          for (let i = 0; i < d.length; i += 4) {
            if (d[i] > 200 && d[i + 1] > 150 && d[i + 2] < 90) {
              out.push((i / 4) % c.width, Math.floor(i / 4 / c.width));
            }
          }
          return out;
        }"""
    )
    return np.asarray(found, dtype=float).reshape(-1, 2)


def near_edge(points: np.ndarray, box: tuple[float, ...], within: float) -> np.ndarray:
    """Which points lie within `within` px of the box's outline."""
    x, y, w, h = box
    px, py = points[:, 0], points[:, 1]
    inside_x = (px >= x - within) & (px <= x + w + within)
    inside_y = (py >= y - within) & (py <= y + h + within)
    on_side = (np.abs(px - x) <= within) | (np.abs(px - (x + w)) <= within)
    on_top = (np.abs(py - y) <= within) | (np.abs(py - (y + h)) <= within)
    return (on_side & inside_y) | (on_top & inside_x)


def test_a_turned_clip_is_outlined_and_edited_as_it_plays(
    page, s3, detector, review_page, turned_clip
):
    """A phone clip stored sideways: the outlines sit on the faces as the player shows
    them, and a box drawn on the frame played hides exactly that area of the new copy."""
    path, truth = turned_clip
    page.goto(review_page)
    page.set_input_files("#photos", str(path))
    page.get_by_role("button", name="Make faces unrecognisable").click()
    job = run_waiting_job(s3, detector)
    card = page.locator(".video-card")
    expect(card).to_have_class(re.compile(r"\bdone\b"), timeout=RESULT_TIMEOUT_MS)
    video = card.locator("video.result-video")
    assert plays(video)
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [480, 270]

    # The function speaks of the pixels as stored, and says how they are played.
    answer = tracks_answer(job, s3.store(), s3.settings, None)
    number = Orientation(1).number
    assert (answer["width"], answer["height"], answer["orientation"]) == (270, 480, number)
    tracks = answer["tracks"]
    expect(card.locator(".track-hidden")).to_have_count(len(tracks))
    overlay = card.locator(".review-overlay")
    page.wait_for_function(
        "c => c.width > 0 && c.getContext('2d').getImageData(0, 0, c.width, c.height)"
        ".data.some(v => v)",
        arg=overlay.element_handle(),
        timeout=30_000,
    )
    assert video.evaluate("v => v.paused && v.currentTime === 0")

    # Each person's outline is drawn where they are played in frame 0, and nowhere else.
    scale = overlay.evaluate("c => c.width") / 480
    drawn = outline_pixels(overlay)
    assert len(drawn) > 100
    on_some_outline = np.zeros(len(drawn), dtype=bool)
    for track in tracks:
        frame, *stored = track["boxes"][0]
        assert frame == 0
        shown = box_as_shown(stored, 270, 480, number)
        outline = tuple(v * scale for v in shown)
        near = near_edge(drawn, outline, 3)
        on_some_outline |= near
        assert near.sum() > 0.3 * 2 * (outline[2] + outline[3])  # the dashes go round it
        # It is a face's outline: one person's centre, as played, lies inside it.
        centres = [(x + w / 2, y + h / 2) for x, y, w, h in truth[0]]
        assert any(
            shown[0] < cx < shown[0] + shown[2] and shown[1] < cy < shown[1] + shown[3]
            for cx, cy in centres
        ), (shown, truth[0])
    assert on_some_outline.mean() > 0.97

    # Leave the second person visible, then hide their face by a box drawn on the paused
    # frame as played (a face the detector missed, as far as the copy is concerned).
    second = next(t["track"] for t in tracks if t["boxes"][0][2] > 100)  # lower, as stored
    person = card.get_by_label(f"Person {second} hidden", exact=False)
    person.uncheck()
    card.get_by_label("Why people are left visible").fill("subject access request 12")
    fx, fy, fw, fh = truth[0][1]
    x, y = int(fx - 0.1 * fw), int(fy - 0.2 * fh)
    w, h = min(int(1.2 * fw), 479 - x), int(1.35 * fh)
    card.get_by_role("button", name="Draw a box on the paused video").click()
    overlay.scroll_into_view_if_needed()
    where = overlay.bounding_box()
    page.mouse.move(where["x"] + x * scale, where["y"] + y * scale)
    page.mouse.down()
    page.mouse.move(where["x"] + (x + w) * scale, where["y"] + (y + h) * scale, steps=5)
    page.mouse.up()
    fields = [int(card.locator(f".area-{name}").input_value()) for name in "xywh"]
    assert all(abs(a - b) <= 2 for a, b in zip(fields, (x, y, w, h), strict=True)), fields
    card.locator(".area-first").fill("0")
    card.locator(".area-last").fill("10")
    card.get_by_role("button", name="Add this area").click()
    expect(card.locator(".area-list li")).to_have_count(1)
    card.get_by_role("button", name="Apply").click()
    expect(card.locator(".card-status")).to_have_text(
        "Making a new copy with your changes…", timeout=30_000
    )
    assert run_waiting_job(s3, detector) == job
    expect(card).to_have_class(re.compile(r"\bdone\b"), timeout=RESULT_TIMEOUT_MS)
    expect(card.locator(".review")).to_be_visible(timeout=30_000)

    # The function holds the box in stored pixels; the page gives it back as played.
    stored = list(box_as_stored(fields, 480, 270, number))
    assert stored != fields  # the premise: the turn moves it
    answer = tracks_answer(job, s3.store(), s3.settings, None)
    assert answer["edits"] == {"show": [second], "hide": [{"frames": [0, 10], "region": stored}]}
    review = page.request.get(f"{review_page}/videos/{job}/tracks").json()
    assert review["edits"]["hide"] == [{"frames": [0, 10], "region": fields}]

    # The new copy, as played. Frame 0: the face under the box lost its detail, and the
    # picture just around the box (the person's hair and shirt, the background) is as it
    # was. Frames 0 to 10: the box follows the face; later the face is seen.
    status = json.loads(s3.store().read("originals", f"jobs/{job}.json"))
    result = path.with_name("result.mp4")
    result.write_bytes(s3.store().read("results", status["result_key"]))
    before, after = displayed_frames(path), displayed_frames(result)
    assert after[0].shape == (270, 480, 3)
    bx, by, bw, bh = fields
    around = np.zeros((270, 480), dtype=bool)
    around[max(by - 12, 0) : by + bh + 12, max(bx - 12, 0) : bx + bw + 12] = True
    around[max(by - 3, 0) : by + bh + 3, max(bx - 3, 0) : bx + bw + 3] = False
    change = np.abs(before[0].astype(int) - after[0].astype(int)).mean(axis=2)
    assert change[around].mean() < 4, change[around].mean()
    inside = change[by + bh // 4 : by + 3 * bh // 4, bx + bw // 4 : bx + 3 * bw // 4]
    assert inside.mean() > 15, inside.mean()
    kept = [
        central_detail_kept(a, b, boxes[1])
        for a, b, boxes in zip(before, after, truth, strict=True)
    ]
    assert all(k is not None and k <= EXPOSED for k in kept[:11]), kept
    later = [k for k in kept[12:] if k is not None]
    assert later and sum(k > 0.5 for k in later) >= 0.8 * len(later), kept


def test_chromium_plays_every_orientation_as_the_page_turns_boxes(page, tmp_path: Path):
    """For each of the eight display matrices a clip may carry, Chromium plays the frame at
    the size and with the mark where `faceblur.orientation` (the page's mapping) puts it:
    the outlines the page draws sit right whatever way a clip was filmed."""
    stored_w, stored_h, mark = 96, 64, (16, 8, 32, 16)
    page.set_content("<!doctype html><title>orientations</title>")
    for orientation in [Orientation(t, m) for m in (False, True) for t in range(4)]:
        path = tmp_path / f"{orientation.number}.mp4"
        with av.open(str(path), mode="w") as output:
            stream = output.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = stored_w, stored_h, "yuv420p"
            stream.set_display_rotation(90 * orientation.turns, hflip=orientation.mirrored)
            for index in range(5):
                stored = np.zeros((stored_h, stored_w, 3), np.uint8)
                x, y, w, h = mark
                stored[y : y + h, x : x + w] = 255
                frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, 25)
                output.mux(stream.encode(frame))
            output.mux(stream.encode(None))
        assert Orientation.from_matrix(probe(path).display_matrix) == orientation
        played = page.evaluate(
            """async data => {
              const v = document.createElement('video');
              v.muted = true;
              v.src = 'data:video/mp4;base64,' + data;
              document.body.replaceChildren(v);
              await new Promise(r => v.addEventListener('loadeddata', r, { once: true }));
              v.currentTime = 0.05;
              await new Promise(r => v.addEventListener('seeked', r, { once: true }));
              const c = document.createElement('canvas');
              c.width = v.videoWidth;
              c.height = v.videoHeight;
              const g = c.getContext('2d');
              let x0 = c.width, y0 = c.height, x1 = -1, y1 = -1;
              // 'seeked' may come before the frame is painted (a loaded machine): every
              // frame holds the mark, so draw again, a bounded number of times, until
              // a painted one shows it.
              for (let attempt = 0; attempt < 50 && x1 < 0; attempt++) {
                if (attempt) await new Promise(r => setTimeout(r, 100));
                g.drawImage(v, 0, 0);
                const d = g.getImageData(0, 0, c.width, c.height).data;
                for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
                  if (d[(y * c.width + x) * 4] > 128) {
                    x0 = Math.min(x0, x); y0 = Math.min(y0, y);
                    x1 = Math.max(x1, x); y1 = Math.max(y1, y);
                  }
                }
              }
              return [v.videoWidth, v.videoHeight, x0, y0, x1 - x0 + 1, y1 - y0 + 1];
            }""",
            base64.b64encode(path.read_bytes()).decode(),
        )
        number = orientation.number
        assert played[:2] == list(size_as_shown(stored_w, stored_h, number)), orientation
        assert played[2:] == list(box_as_shown(mark, stored_w, stored_h, number)), orientation
