"""The web page in a real browser (Debian chromium driven by Playwright) on the real stack.

The S3 server and the function are the session fixtures of tests/stack_fixtures.py;
the frontend runs under waitress in a subprocess, as in its container. Each test
saves a screenshot under its temporary folder.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest
import requests
from PIL import Image, ImageOps
from playwright.sync_api import expect

# The s3_server and function_server fixtures come from stack_fixtures via conftest.py.
from data import FACES_DEV, require_data
from stack_fixtures import running_frontend

ROOT = Path(__file__).resolve().parents[1]
# Smaller than the function's limit so the too-large case needs only a small file.
FRONTEND_MAX_BYTES = 2 * 1024 * 1024
RESULT_TIMEOUT_MS = 150_000  # detection on a busy 2-core machine, plus a cold model
PHONE = {"width": 390, "height": 844}


def portraits_with_large_faces(count: int) -> list[dict]:
    """Annotated photos whose every face is at least 150 px high, in a fixed order."""
    require_data()
    annotations = json.loads((FACES_DEV / "annotations.json").read_text())
    chosen = [
        entry
        for entry in sorted(annotations, key=lambda e: e["image"])
        if 1 <= len(entry["faces"]) <= 2
        and min(h for _, _, _, h in entry["faces"]) >= 150
        and not entry.get("ignore")
    ]
    assert len(chosen) >= count, "faces-dev holds photos with large faces"
    return chosen[:count]


@pytest.fixture(scope="module")
def frontend_url(s3_server, function_server, tmp_path_factory) -> Iterator[str]:
    """The frontend under waitress, configured like the cluster's: gateway URL, S3, secret."""
    log_path = tmp_path_factory.mktemp("frontend") / "waitress.log"
    env = {
        **os.environ,
        **s3_server.env,
        "FACEBLUR_GATEWAY_URL": function_server,
        "FACEBLUR_FRONTEND_SECRET_KEY": "browser-test-secret",
        "FACEBLUR_MAX_BYTES": str(FRONTEND_MAX_BYTES),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("FLASK_DEBUG", None)
    with running_frontend(env, log_path, ready_seconds=30) as url:
        yield url


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def inside(box: list[float], shrink: float = 0.25) -> tuple[slice, slice]:
    """The central part of an annotated face box, as array slices."""
    x, y, w, h = box
    return (
        slice(int(y + h * shrink), int(y + h * (1 - shrink))),
        slice(int(x + w * shrink), int(x + w * (1 - shrink))),
    )


def wait_for_cards(page, count: int) -> None:
    """Until `count` photos are finished, well or not (expect polls without eval: CSP)."""
    expect(page.locator(".card.done, .card.failed")).to_have_count(count, timeout=RESULT_TIMEOUT_MS)


def send(page, frontend_url: str, files: list[Path], method: str | None = None) -> None:
    page.goto(frontend_url)
    page.set_input_files("#photos", [str(f) for f in files])
    if method:
        page.get_by_label(method.capitalize(), exact=False).first.check()
    page.get_by_role("button", name="Make faces unrecognisable").click()


def test_one_photo_is_anonymised_and_shown_before_and_after(page, frontend_url, tmp_path):
    photo = portraits_with_large_faces(1)[0]
    path = FACES_DEV / photo["image"]
    send(page, frontend_url, [path], method="pixelate")
    wait_for_cards(page, 1)
    card = page.locator(".card").first
    assert "done" in card.get_attribute("class"), card.inner_text()

    count = int(card.locator(".card-faces").get_attribute("data-count"))
    assert count >= len(photo["faces"])
    assert "face" in card.locator(".card-faces").inner_text()

    # The result loads in the page at the photo's own size...
    result = card.locator("img.result")
    result.evaluate("img => img.decode()")
    size = result.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [photo["width"], photo["height"]]
    # ...and differs from the original inside every known face, far more than elsewhere.
    before = pixels(path.read_bytes())
    after = pixels(requests.get(result.get_attribute("src"), timeout=10).content)
    assert after.shape == before.shape
    difference = np.abs(after - before).mean(axis=2)
    for box in photo["faces"]:
        face_change = difference[inside(box)].mean()
        assert face_change > 4 * max(np.median(difference), 1.0), (box, face_change)

    # The outline toggle draws one shape per anonymised region over the result; the
    # editor outlines the same regions over the original.
    outlines = card.locator("svg.outline")
    assert not outlines.is_visible()
    card.get_by_label("Outline the hidden areas").check()
    assert outlines.is_visible()
    assert outlines.locator("path, rect").count() == count
    assert card.locator(".regions .region").count() == count

    # The download is the same anonymised image, under the person's own (safe) name.
    with page.expect_download() as download_info:
        card.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == f"{path.stem}-anonymised.jpg"
    assert (
        Path(download.path()).read_bytes()
        == requests.get(result.get_attribute("src"), timeout=10).content
    )


def drop_files(page, target: str, files: list[Path]) -> None:
    """Drop files on `target` as a person dragging them from their desktop would."""
    payload = [{"name": f.name, "data": base64.b64encode(f.read_bytes()).decode()} for f in files]
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, {type: "image/jpeg"}));
            }
            return transfer;
        }""",
        payload,
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(target, event, {"dataTransfer": transfer})


def test_two_photos_at_once_one_picked_one_dropped_and_download_all(page, frontend_url):
    photos = portraits_with_large_faces(2)
    paths = [FACES_DEV / p["image"] for p in photos]
    page.goto(frontend_url)
    page.set_input_files("#photos", str(paths[0]))
    drop_files(page, "#dropzone", [paths[1]])
    expect(page.locator("#queue-heading")).to_have_text("2 photos ready to send:")
    page.get_by_role("button", name="Make faces unrecognisable").click()
    # Both are listed at once, each with its own progress, before any result arrives.
    assert page.locator(".card").count() == 2
    expect(page.locator(".card-status").first).to_have_text(
        re.compile(r"Waiting to be sent|Sending|Finding and hiding faces")
    )
    assert page.locator(".card progress").count() == 2
    wait_for_cards(page, 2)
    cards = page.locator(".card")
    for index, photo in enumerate(photos):
        card = cards.nth(index)
        assert "done" in card.get_attribute("class"), card.inner_text()
        assert card.locator(".card-name").inner_text() == paths[index].name
        faces = int(card.locator(".card-faces").get_attribute("data-count"))
        assert faces >= len(photo["faces"])
        assert card.locator("img.original").evaluate("img => img.decode().then(() => true)")

    link = page.get_by_role("link", name="Download all 2 (zip)")
    assert link.is_visible()
    archive = requests.get(urljoin(frontend_url, link.get_attribute("href")), timeout=30)
    assert archive.status_code == 200
    names = sorted(zipfile.ZipFile(io.BytesIO(archive.content)).namelist())
    assert names == sorted(f"{p.stem}-anonymised.jpg" for p in paths)


def test_a_phone_photo_stored_sideways_is_shown_upright_on_both_sides(page, frontend_url, tmp_path):
    """Phones store portraits sideways with an EXIF orientation: before and after must agree."""
    photo = portraits_with_large_faces(1)[0]
    upright = Image.open(FACES_DEV / photo["image"])
    sideways = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    upright.transpose(Image.Transpose.ROTATE_90).save(sideways, quality=92, exif=exif.tobytes())
    send(page, frontend_url, [sideways])
    wait_for_cards(page, 1)
    card = page.locator(".card").first
    assert "done" in card.get_attribute("class"), card.inner_text()
    sizes = [
        card.locator(f"img.{side}").evaluate(
            "img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])"
        )
        for side in ("original", "result")
    ]
    assert sizes == [[photo["width"], photo["height"]]] * 2
    assert int(card.locator(".card-faces").get_attribute("data-count")) >= 1


def test_a_text_file_gets_a_plain_error_sent_with_the_keyboard(page, frontend_url, tmp_path):
    note = tmp_path / "notes.txt"
    note.write_text("this is not a photo\n" * 20)
    page.goto(frontend_url)
    page.set_input_files("#photos", str(note))
    # Keyboard only: Tab through the controls to the button and press Enter.
    reached = []
    for _ in range(30):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
        if reached[-1] == "send":
            break
    assert "photos" in reached and "send" in reached
    assert any(r.startswith("method-") for r in reached)
    page.keyboard.press("Enter")
    wait_for_cards(page, 1)
    error = page.locator(".card-error")
    assert error.is_visible()
    # Every format the service reads (faceblur.formats), videos included (issue 23).
    assert "not a photo or video we can read" in error.inner_text()
    assert all(name in error.inner_text() for name in ("BMP", "TIFF", "MP4", "WebM"))
    assert "Traceback" not in page.content()


def test_too_large_photo_is_refused_before_upload_with_the_limit(page, frontend_url, tmp_path):
    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(FRONTEND_MAX_BYTES))
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto(frontend_url)
    page.set_input_files("#photos", str(big))
    message = page.locator("#form-message")
    assert message.is_visible()
    assert "huge.jpg is too large" in message.inner_text()
    assert "The limit is 2 MB" in message.inner_text()
    page.get_by_role("button", name="Make faces unrecognisable").click()
    assert "choose at least one photo" in message.inner_text()
    assert posts == []  # nothing was sent


def test_gallery_shows_the_result_newest_first(page, frontend_url, function_server):
    photo = portraits_with_large_faces(3)[2]
    data = (FACES_DEV / photo["image"]).read_bytes()
    answer = requests.post(
        f"{function_server}/function/faceblur",
        data=data,
        headers={"Content-Type": "image/jpeg"},
        params={"method": "solid"},
        timeout=RESULT_TIMEOUT_MS / 1000,
    ).json()
    page.goto(frontend_url)
    page.get_by_role("link", name="Gallery").click()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Gallery")
    # Newest first: the dates never increase down the page, and the result just made
    # is on the first page with the newest date (S3 dates have whole seconds).
    dates = page.locator(".gallery-item time").evaluate_all(
        "times => times.map(t => t.getAttribute('datetime'))"
    )
    assert dates == sorted(dates, reverse=True)
    first = page.locator(f'.gallery-item[data-key="{answer["result_key"]}"]')
    assert first.locator("time").get_attribute("datetime") == dates[0]
    # A small thumbnail in the page; the full result opens by its presigned URL.
    thumb = first.locator("img.thumb")
    thumb.scroll_into_view_if_needed()
    size = thumb.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    assert max(size) == 480
    assert abs(size[0] / size[1] - photo["width"] / photo["height"]) < 0.02
    full = requests.get(first.locator("a.thumb-link").get_attribute("href"), timeout=10)
    assert full.status_code == 200
    assert Image.open(io.BytesIO(full.content)).size == (photo["width"], photo["height"])
    faces = len(answer["faces"])
    expected = "1 face found" if faces == 1 else f"{faces} faces found"
    assert expected in first.inner_text()
    assert first.locator("time").get_attribute("datetime")
    # Nothing on the page points at the originals bucket.
    assert "/originals/" not in page.content()


@pytest.mark.parametrize("page", [PHONE], indirect=True)
def test_phone_width_page_fits_and_compares_side_by_side(page, frontend_url):
    photo = portraits_with_large_faces(1)[0]
    send(page, frontend_url, [FACES_DEV / photo["image"]])
    wait_for_cards(page, 1)
    page.locator("img.result").evaluate("img => img.decode()")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "no sideways scrolling at phone width"
    before = page.locator(".compare figure").nth(0).bounding_box()
    after = page.locator(".compare figure").nth(1).bounding_box()
    assert abs(before["y"] - after["y"]) < 2 and after["x"] > before["x"]
    assert after["x"] + after["width"] <= PHONE["width"]
    for control in ("#photos", "#send", "input[name=method]"):
        assert page.locator(control).first.bounding_box()["width"] > 0


# -- correcting the hidden areas (issue 12) ----------------------------------------------


def tall_photo_of_two() -> dict:
    """A portrait-format photo of two large faces side by side, scaled to fit the screen."""
    require_data()
    annotations = json.loads((FACES_DEV / "annotations.json").read_text())
    return next(
        entry
        for entry in sorted(annotations, key=lambda e: e["image"])
        if len(entry["faces"]) == 2
        and min(h for *_, h in entry["faces"]) >= 150
        and entry["height"] > entry["width"]
        and not entry.get("ignore")
    )


def overlap(a: list[float], b: list[float]) -> float:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def result_pixels(card) -> np.ndarray:
    return pixels(requests.get(card.locator("img.result").get_attribute("src"), timeout=10).content)


def changed_in(before: np.ndarray, after: np.ndarray, box: list[float]) -> float:
    return float(np.abs(after - before).mean(axis=2)[inside(box)].mean())


def apply_and_wait(card) -> None:
    old = card.locator("img.result").get_attribute("src")
    card.get_by_role("button", name="Apply changes").click()
    expect(card.locator(".editor-status")).to_have_text(
        re.compile("^Applied"), timeout=RESULT_TIMEOUT_MS
    )
    assert card.locator("img.result").get_attribute("src") != old


@pytest.mark.parametrize("stored", ["upright", "sideways"])
def test_remove_a_region_then_draw_one_and_apply(page, frontend_url, tmp_path, stored):
    photo = tall_photo_of_two()
    source = FACES_DEV / photo["image"]
    if stored == "sideways":
        # A phone's portrait: pixels stored turned, EXIF orientation 6 to show them upright.
        path = tmp_path / "phone.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6
        with Image.open(source) as upright:
            turned = upright.transpose(Image.Transpose.ROTATE_90)
            turned.save(path, quality=95, exif=exif.tobytes())
    else:
        path = source
    with Image.open(path) as opened:
        before = pixels_upright(opened)
    assert before.shape[:2] == (photo["height"], photo["width"])
    send(page, frontend_url, [path], method="solid")
    wait_for_cards(page, 1)
    card = page.locator(".card").first
    assert "done" in card.get_attribute("class"), card.inner_text()
    kept_face, hidden_face = photo["faces"]
    first = result_pixels(card)
    assert changed_in(before, first, kept_face) > 20 and changed_in(before, first, hidden_face) > 20

    # Remove the region over the first face; undo and redo it from the keyboard.
    regions = card.locator(".regions .region")
    found = [
        [int(v) for v in r.split(",")]
        for r in regions.evaluate_all("boxes => boxes.map(b => b.dataset.region)")
    ]
    assert len(found) >= 2
    index = max(range(len(found)), key=lambda i: overlap(found[i], kept_face))
    assert overlap(found[index], kept_face) > 0
    card.get_by_role("button", name=f"Remove hidden area {index + 1}").click()
    expect(regions).to_have_count(len(found) - 1)
    card.get_by_role("button", name="Undo last change").focus()
    page.keyboard.press("Enter")
    expect(regions).to_have_count(len(found))
    card.get_by_role("button", name=f"Remove hidden area {index + 1}").focus()
    page.keyboard.press("Enter")
    expect(regions).to_have_count(len(found) - 1)
    apply_and_wait(card)
    second = result_pixels(card)
    assert second.shape == before.shape
    assert changed_in(before, second, kept_face) < 4, "the face left out is as it was"
    assert changed_in(before, second, hidden_face) > 20, "the other face is still hidden"

    # Draw a region over the face left out, with the mouse, on the photo as shown.
    original = card.locator("img.original")
    original.scroll_into_view_if_needed()
    shown = original.bounding_box()
    assert shown["height"] < photo["height"], "the tall photo is scaled to the screen"
    scale = shown["width"] / photo["width"]
    x, y, w, h = kept_face
    page.mouse.move(shown["x"] + (x - 10) * scale, shown["y"] + (y - 10) * scale)
    page.mouse.down()
    page.mouse.move(shown["x"] + (x + w / 2) * scale, shown["y"] + (y + h / 2) * scale, steps=4)
    page.mouse.move(shown["x"] + (x + w + 10) * scale, shown["y"] + (y + h + 10) * scale, steps=4)
    page.mouse.up()
    expect(regions).to_have_count(len(found))
    drawn = [int(v) for v in regions.last.get_attribute("data-region").split(",")]
    assert overlap(drawn, kept_face) == pytest.approx(w * h, rel=0.05)
    apply_and_wait(card)
    third = result_pixels(card)
    assert changed_in(before, third, kept_face) > 20, "the drawn region is hidden"
    assert changed_in(before, third, hidden_face) > 20
    download = card.locator("a.download").get_attribute("href")
    assert requests.get(urljoin(frontend_url, download), timeout=10).content == (
        requests.get(card.locator("img.result").get_attribute("src"), timeout=10).content
    )


def pixels_upright(image: Image.Image) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.int16)


def test_a_region_drawn_by_touch_on_a_phone_hides_that_face(browser, frontend_url, tmp_path):
    """A finger's drag draws a region too (touch becomes pointer events), at phone width."""
    photo = tall_photo_of_two()
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        send(page, frontend_url, [FACES_DEV / photo["image"]], method="solid")
        wait_for_cards(page, 1)
        card = page.locator(".card").first
        regions = card.locator(".regions .region")
        found = len(regions.evaluate_all("boxes => boxes.map(b => b.dataset.region)"))
        for index in reversed(range(found)):  # start from a photo with nothing hidden
            card.get_by_role("button", name=f"Remove hidden area {index + 1}").click()
        expect(regions).to_have_count(0)
        original = card.locator("img.original")
        original.scroll_into_view_if_needed()
        shown = original.bounding_box()
        scale = shown["width"] / photo["width"]
        x, y, w, h = photo["faces"][0]
        points = [(x - 5, y - 5), (x + w / 2, y + h / 2), (x + w + 5, y + h + 5)]
        kinds = ("touchStart", "touchMove", "touchMove")
        touch = context.new_cdp_session(page)
        for kind, (px, py) in zip(kinds, points, strict=True):
            point = {"x": shown["x"] + px * scale, "y": shown["y"] + py * scale}
            touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [point]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        expect(regions).to_have_count(1)
        drawn = [int(v) for v in regions.first.get_attribute("data-region").split(",")]
        # A phone shows the photo small: the drawn box is as precise as a screen pixel.
        assert overlap(drawn, photo["faces"][0]) >= 0.9 * w * h
        apply_and_wait(card)
        after = result_pixels(card)
        before = pixels((FACES_DEV / photo["image"]).read_bytes())
        assert changed_in(before, after, photo["faces"][0]) > 20
        assert changed_in(before, after, photo["faces"][1]) < 4, "only the drawn face"
    finally:
        page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
        context.close()
    assert errors == []
