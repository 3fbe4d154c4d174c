"""A video through the page in a real browser (Debian chromium driven by Playwright).

- The upload alone: the page asks POST /videos, sends the file straight to the inbox of
  the real S3 server with the presigned PUT (a cross-origin request s3rver answers with
  CORS) and shows the upload's progress; the object lands in the inbox, byte for byte.
- End to end on the whole `make run` stack (s3rver's inbox events reach the function's
  async route): the job's progress shows, then the result plays in the page. This one
  needs the function's video jobs (vjobs' side of issue 13).

The clip is made here with PyAV: 640x360, 15 frames, the free astronaut photo pasted in.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import requests
from PIL import Image
from playwright.sync_api import expect

from data import astronaut
from faceblur.config import load_settings
from faceblur.store.s3 import Store
from stack_fixtures import (
    free_port,
    run_stack_env,
    running_frontend,
    start_run_stack,
    stop_process,
    wait_until_empty,
)

pytestmark = pytest.mark.video  # `make test-fast` leaves video encoding out

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FRAMES, FPS = 640, 360, 15, 15
# End to end, a clip long enough that its processing outlasts a few of the page's polls.
LONG_FRAMES = 45
JOB_KEY = re.compile(r"videos/([0-9a-f]{32})/face_clip\.mp4")
STACK_READY_SECONDS = 300  # TensorFlow import and model build on a busy 2-core box
RESULT_TIMEOUT_MS = 300_000

# Every text the card's status line shows, in order (the page's own script is untouched).
RECORD_STATUSES = """() => {
  window.seenStatuses = [];
  new MutationObserver(() => {
    for (const status of document.querySelectorAll('.video-card .card-status')) {
      const text = status.textContent;
      if (window.seenStatuses[window.seenStatuses.length - 1] !== text) {
        window.seenStatuses.push(text);
      }
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def face_crop() -> Image.Image:
    """The astronaut (free: tests/data.py) down to her chest: a face about 80 px high, and
    detail enough that the clip is as large as it was with a faces-dev face (17 kB), so
    the slowed upload below still reports progress on its way."""
    crop = Image.fromarray(astronaut()).crop((0, 0, 512, 340))
    scale = 220 / crop.height
    return crop.resize((round(crop.width * scale), 220))


def make_clip(path: Path, frames: int = FRAMES) -> None:
    """An H.264 MP4 of a face moving slowly across a grey background."""
    face = np.asarray(face_crop())
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frames):
            frame = np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
            left = 100 + (8 * index) % 300
            top = (HEIGHT - face.shape[0]) // 2
            frame[top : top + face.shape[0], left : left + face.shape[1]] = face[:, : WIDTH - left]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "face clip.mp4"
    make_clip(path)
    return path


def send_video(page, url: str, clip: Path) -> None:
    page.goto(url)
    page.evaluate(RECORD_STATUSES)
    page.set_input_files("#photos", str(clip))
    expect(page.locator("#queue-heading")).to_have_text("1 file ready to send:")
    page.get_by_role("button", name="Make faces unrecognisable").click()


def statuses(page) -> list[str]:
    return page.evaluate("() => window.seenStatuses")


@pytest.fixture(scope="module")
def page_only(s3_server, tmp_path_factory) -> Iterator[str]:
    """The page under waitress on the real S3 server, with no function behind it: enough
    for the upload and for playing stored results (a job's polls get 503s)."""
    env = {
        **os.environ,
        **s3_server.env,
        "FACEBLUR_GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
        "FACEBLUR_FRONTEND_SECRET_KEY": "browser-test-secret",
    }
    env.pop("FLASK_DEBUG", None)
    log_path = tmp_path_factory.mktemp("frontend") / "waitress.log"
    with running_frontend(env, log_path, ready_seconds=30) as url:
        yield url


def plays(video) -> tuple[int, float]:
    """(readyState, duration) once the element has a frame to show, or after 60 s."""
    deadline = time.monotonic() + 60
    while True:
        ready, duration = video.evaluate("v => [v.readyState, v.duration]")
        if (ready >= 2 and duration > 0) or time.monotonic() > deadline:
            return ready, duration
        time.sleep(0.5)


def test_a_video_uploads_straight_to_the_inbox_with_progress(page, s3, page_only, clip):
    # A slow line, so the upload takes a while and reports its progress on the way.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": clip.stat().st_size / 2,  # about 2 s
        },
    )
    send_video(page, page_only, clip)
    card = page.locator(".video-card")
    expect(card.locator(".card-status")).to_have_text(
        "Uploaded. Waiting for its turn…", timeout=60_000
    )
    assert card.locator(".card-progress").get_attribute("aria-label") == (
        "Progress of face clip.mp4"
    )
    assert card.locator(".card-status").get_attribute("aria-live") == "polite"
    seen = statuses(page)
    percents = [int(m.group(1)) for s in seen if (m := re.fullmatch(r"Uploading… (\d+)%", s))]
    assert percents[0] == 0 and percents[-1] == 100, seen
    assert any(0 < p < 100 for p in percents), seen
    assert percents == sorted(percents)
    (key,) = s3.snapshot()["inbox"]
    assert JOB_KEY.fullmatch(key), key
    assert card.get_attribute("data-job") == JOB_KEY.fullmatch(key).group(1)
    assert s3.store().read("inbox", key) == clip.read_bytes()


def wait_until_up(stack, log_path: Path) -> None:
    deadline = time.monotonic() + STACK_READY_SECONDS
    while time.monotonic() < deadline:
        if stack.poll() is not None:
            pytest.fail(f"make run stopped:\n{log_path.read_text()[-3000:]}")
        if "Ctrl-C stops everything" in log_path.read_text(errors="replace"):
            return
        time.sleep(1)
    pytest.fail(f"make run not ready in time:\n{log_path.read_text()[-3000:]}")


def test_a_video_is_processed_and_plays_in_the_page(page, tmp_path):
    """End to end on `make run`'s stack; needs the function's video jobs (vjobs)."""
    clip = tmp_path / "face clip.mp4"
    make_clip(clip, LONG_FRAMES)
    ports = {name: free_port() for name in ("s3", "function", "frontend")}
    env = run_stack_env(ports, tmp_path / "data")
    log_path = tmp_path / "run.log"
    stack = start_run_stack(env, log_path)
    try:
        wait_until_up(stack, log_path)
        send_video(page, f"http://127.0.0.1:{ports['frontend']}/", clip)
        card = page.locator(".video-card")
        finished = page.locator(".video-card.done, .video-card.failed")
        expect(finished).to_have_count(1, timeout=RESULT_TIMEOUT_MS)
        assert "done" in (card.get_attribute("class") or ""), card.inner_text()
        seen = statuses(page)
        processing = [s for s in seen if s.startswith("Processing: ")]
        assert processing, seen
        done = [int(m.group(1)) for s in processing if (m := re.match(r"Processing: (\d+)", s))]
        assert done == sorted(done), seen
        for status in processing:
            if match := re.fullmatch(r"Processing: (\d+) of (\d+) frames", status):
                assert int(match.group(1)) <= int(match.group(2)) == LONG_FRAMES, seen
        video = card.locator("video.result-video")
        ready, duration = plays(video)
        assert ready >= 2 and duration > 0, (ready, duration)
        download = card.locator("a.download")
        assert download.get_attribute("download") == "face_clip-anonymised.mp4"
        answer = requests.get(
            f"http://127.0.0.1:{ports['frontend']}{download.get_attribute('href')}", timeout=30
        )
        assert answer.status_code == 200 and answer.content[4:8] == b"ftyp"
        store = Store(load_settings(env, secrets_dir=tmp_path / "no-secrets"))
        assert wait_until_empty(store, "inbox", 30) == []  # emptied as for photos
        assert store.keys("results") == [card.get_attribute("data-key")]
        assert card.get_attribute("data-key").endswith(".mp4")
    finally:
        stop_process(stack)


def test_the_gallery_plays_a_stored_video_result(page, s3, page_only, clip):
    image_id = uuid.uuid4().hex
    result = f"{image_id}/0123456789abcdef.mp4"
    s3.store().put("results", result, clip.read_bytes(), "video/mp4")
    page.goto(f"{page_only}/gallery")
    video = page.locator(f'.gallery-item[data-key="{result}"] video')
    expect(video).to_have_attribute("preload", "metadata")
    assert "video from" in video.get_attribute("aria-label")
    video.evaluate("v => { v.preload = 'auto'; v.load(); }")
    ready, duration = plays(video)
    assert ready >= 2 and abs(duration - FRAMES / FPS) < 0.2, (ready, duration)
    assert video.evaluate("v => v.videoWidth") == WIDTH


@pytest.fixture
def contract_page(s3, tmp_path) -> Iterator[tuple[str, object]]:
    """The page whose function is the template runner answering the contract's job
    statuses from a file (tests/test_frontend_video.py's ContractFunction): the page's
    side of a job, from upload to playing, before the function's side exists here."""
    from test_frontend_video import ContractFunction

    function = ContractFunction(tmp_path)
    env = {
        **os.environ,
        **s3.env,
        "FACEBLUR_GATEWAY_URL": function.url,
        "FACEBLUR_FRONTEND_SECRET_KEY": "browser-test-secret",
    }
    env.pop("FLASK_DEBUG", None)
    try:
        with running_frontend(env, tmp_path / "waitress.log", ready_seconds=30) as url:
            yield url, function
    finally:
        function.stop()


def uploaded_job(s3) -> str:
    """The job id of the one video in the inbox, once it is there (bounded wait)."""
    deadline = time.monotonic() + 60
    while not s3.snapshot()["inbox"] and time.monotonic() < deadline:
        time.sleep(0.2)
    (key,) = s3.snapshot()["inbox"]
    return JOB_KEY.fullmatch(key).group(1)


def job_status(job: str, state: str, **fields) -> dict:
    """A status document of the contract, for the clip this module sends."""
    from test_frontend_video import status

    return status(job, state, **{"name": "face_clip.mp4", **fields})


def test_the_page_follows_a_job_to_the_end_and_plays_it(page, s3, clip, contract_page):
    url, function = contract_page
    function.answer({"*": job_status("*", "queued")})
    send_video(page, url, clip)
    job = uploaded_job(s3)
    card = page.locator(".video-card")
    function.answer({job: job_status(job, "running", frames_done=6, frames_total=FRAMES)})
    # (until now the job was queued: its status came from the "*" entry)
    status = card.locator(".card-status")
    expect(status).to_have_text(f"Processing: 6 of {FRAMES} frames", timeout=30_000)
    expect(card.locator(".card-progress")).to_have_attribute("value", "40")
    # A split job: which segment is next to finish, and the bar from frames done of total,
    # else (frames unknown) from segments done of total.
    split = {"frames_done": 9, "frames_total": FRAMES, "segments_done": 1, "segments_total": 3}
    function.answer({job: job_status(job, "running", **split)})
    expect(status).to_have_text(f"Processing: segment 2 of 3, 9 of {FRAMES} frames", timeout=30_000)
    expect(card.locator(".card-progress")).to_have_attribute("value", "60")
    split |= {"frames_done": 10, "frames_total": 0, "segments_done": 2}
    function.answer({job: job_status(job, "running", **split)})
    expect(status).to_have_text("Processing: segment 3 of 3, 10 frames", timeout=30_000)
    expect(card.locator(".card-progress")).to_have_attribute("value", "67")
    split |= {"frames_done": FRAMES, "frames_total": FRAMES, "segments_done": 3}
    function.answer({job: job_status(job, "running", **split)})
    expect(status).to_have_text(
        f"Processing: joining 3 segments, {FRAMES} of {FRAMES} frames", timeout=30_000
    )
    expect(card.locator(".card-progress")).to_have_attribute("value", "100")
    result = f"{uuid.uuid4().hex}/0123456789abcdef.mp4"
    s3.store().put("results", result, clip.read_bytes(), "video/mp4")
    function.answer({job: job_status(job, "done", frames_done=FRAMES, result_key=result)})
    expect(card).to_have_class(re.compile(r"\bdone\b"), timeout=30_000)
    video = card.locator("video.result-video")
    assert video.get_attribute("aria-label") == "Anonymised copy of face clip.mp4"
    ready, duration = plays(video)
    assert ready >= 2 and abs(duration - FRAMES / FPS) < 0.2, (ready, duration)
    download = card.locator("a.download")
    assert download.get_attribute("download") == "face_clip-anonymised.mp4"
    answer = requests.get(f"{url}{download.get_attribute('href')}", timeout=30)
    assert answer.status_code == 200 and answer.content == clip.read_bytes()
    assert card.locator("a.delete-link").get_attribute("href") == f"/delete/{result}"
    # Polling stopped: the function is asked nothing more once the job is done.
    asked = len(function.seen())
    page.wait_for_timeout(7000)  # longer than the page's longest wait between polls
    assert len(function.seen()) == asked
    assert [call["job"] for call in function.seen()] == [job] * asked
    assert "Uploaded. Waiting for its turn…" in statuses(page)


def test_a_failed_job_says_why_in_plain_words(page, s3, clip, contract_page):
    url, function = contract_page
    function.answer({"*": job_status("*", "queued")})
    send_video(page, url, clip)
    job = uploaded_job(s3)
    function.answer({job: job_status(job, "failed", reason="the video is longer than 600 s")})
    card = page.locator(".video-card")
    expect(card).to_have_class(re.compile(r"\bfailed\b"), timeout=30_000)
    expect(card.locator(".card-error")).to_have_text(
        "This video could not be anonymised: the video is longer than 600 s."
    )
    assert card.locator("video.result-video").get_attribute("src") is None
