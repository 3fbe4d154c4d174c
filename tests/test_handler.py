"""The function over HTTP, through the template runner, against the real S3 server."""

from __future__ import annotations

import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import ANY

import numpy as np
import pytest
import requests
from PIL import Image

from faceblur.store.keys import content_id
from stack_fixtures import LocalS3, scaled_photo, webhook_headers

WIDTH = 480  # small copies of real photos keep the suite quick on two cores
EVENT_WAIT_SECONDS = 120


def photo(entry: dict, fmt: str = "PNG") -> tuple[bytes, list[tuple[int, int, int, int]]]:
    return scaled_photo(entry, WIDTH, fmt)


@pytest.fixture(scope="module")
def portraits(portrait_annotations: list[dict]) -> list[dict]:
    """Photos of one clear face, large enough to stay large at WIDTH px."""
    chosen = [
        entry
        for entry in portrait_annotations
        if entry["n_faces"] == 1 and not entry["ignore"] and 150 <= entry["faces"][0][3] <= 450
    ]
    assert len(chosen) >= 8
    return chosen


@pytest.fixture
def url(function_server: str) -> str:
    return f"{function_server}/function/faceblur"


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def assert_anonymised(original: bytes, result: bytes, truth_box, regions) -> None:
    """Changed inside the known face; identical outside every anonymised region."""
    before, after = pixels(original), pixels(result)
    assert before.shape == after.shape
    x, y, w, h = truth_box
    inner = (slice(y + h // 4, y + 3 * h // 4), slice(x + w // 4, x + 3 * w // 4))
    assert np.abs(before[inner] - after[inner]).mean() > 10
    outside = np.ones(before.shape[:2], dtype=bool)
    for rx, ry, rw, rh in regions:
        outside[ry : ry + rh, rx : rx + rw] = False
    assert outside.any()
    assert np.array_equal(before[outside], after[outside])


def assert_stored(s3: LocalS3, body: dict, original: bytes) -> None:
    store = s3.store()
    assert body["stored"] is True
    assert body["id"] == content_id(original)
    assert store.read("originals", body["original_key"]) == original
    result = store.read("results", body["result_key"])
    assert requests.get(body["result_url"], timeout=10).content == result
    assert s3.snapshot()["originals"] == [body["original_key"]]
    assert s3.snapshot()["results"] == [body["result_key"]]


def multipart(data: bytes, **fields: str) -> dict:
    return {"files": {"image": ("photo.png", data, "image/png")}, "data": fields}


@pytest.mark.parametrize("form", ["json", "data-url", "raw", "multipart", "multipart-field"])
def test_each_input_form_stores_the_pair_and_anonymises(s3, url, portraits, form) -> None:
    original, truth = photo(portraits[0])
    encoded = base64.b64encode(original).decode()
    if form == "json":
        response = requests.post(url, json={"image": encoded, "method": "pixelate"}, timeout=120)
    elif form == "data-url":
        data_url = f"data:image/png;base64,{encoded}"
        response = requests.post(url, json={"image": data_url, "method": "pixelate"}, timeout=120)
    elif form == "raw":
        response = requests.post(
            url,
            data=original,
            params={"method": "pixelate"},
            headers={"Content-Type": "image/png"},
            timeout=120,
        )
    elif form == "multipart":
        response = requests.post(url, **multipart(original, method="pixelate"), timeout=120)
    else:  # the image as a plain "image" field, no filename: its bytes must stay bytes
        fields = {"image": (None, original), "method": (None, "pixelate")}
        response = requests.post(url, files=fields, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["format"] == "PNG"
    assert len(body["faces"]) >= 1
    face = body["faces"][0]
    assert set(face) == {"box", "region", "score", "turn", "landmarks"}
    assert set(body["timings"]) >= {"detect", "storage", "request"}
    assert_stored(s3, body, original)
    result = s3.store().read("results", body["result_key"])
    assert_anonymised(original, result, truth[0], [f["region"] for f in body["faces"]])


def test_accept_image_returns_the_image_itself(s3, url, portraits) -> None:
    original, truth = photo(portraits[1], "JPEG")
    response = requests.post(
        url,
        data=original,
        headers={"Content-Type": "image/jpeg", "Accept": "image/*"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/jpeg"
    faces = int(response.headers["X-Faces"])
    assert faces >= 1
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "JPEG"
        assert image.size == Image.open(io.BytesIO(original)).size
    key = response.headers["X-Result-Key"]
    assert s3.store().read("results", key) == response.content
    assert requests.get(response.headers["X-Result-Url"], timeout=10).content == response.content


def test_store_false_transforms_without_storing(s3, url, portraits) -> None:
    original, _ = photo(portraits[2])
    response = requests.post(
        url,
        data=original,
        params={"store": "false"},
        headers={"Content-Type": "application/octet-stream"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] is False
    assert body["original_key"] is body["result_key"] is body["result_url"] is None
    assert len(body["faces"]) >= 1
    assert s3.snapshot() == {"inbox": [], "originals": [], "results": []}


def test_get_answers_info_without_detection(url) -> None:
    started = time.monotonic()
    info = requests.get(url, timeout=30).json()
    assert time.monotonic() - started < 10
    assert info["model_loaded"] is True
    assert info["storage"] == {"reachable": True}
    assert info["version"]
    assert info["options"]["method"] in info["methods"]
    assert all(isinstance(line, str) and line for line in info["methods"].values())
    assert info["shapes"] and info["strengths"]


def huge_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8000, 7000)).save(buffer, format="PNG")  # 56 MP, a few kB
    return buffer.getvalue()


def bad_requests(portrait_jpeg: bytes) -> dict[str, tuple[dict, int]]:
    jpeg = {"Content-Type": "image/jpeg"}
    return {
        "empty": ({"data": b"", "headers": jpeg}, 400),
        "empty json image": ({"json": {"image": ""}}, 400),
        "not base64": ({"json": {"image": "not base64 at all!"}}, 400),
        "json without image": ({"json": {"method": "blur"}}, 400),
        "malformed json": ({"data": b"{", "headers": {"Content-Type": "application/json"}}, 400),
        "not an image": ({"data": b"hello, I am text" * 10, "headers": jpeg}, 415),
        "wrong content type": (
            {"data": portrait_jpeg, "headers": {"Content-Type": "text/plain"}},
            415,
        ),
        "truncated": ({"data": portrait_jpeg[: len(portrait_jpeg) // 2], "headers": jpeg}, 400),
        "too many pixels": ({"data": huge_png(), "headers": {"Content-Type": "image/png"}}, 413),
        "too many bytes": ({"data": b"\xff" * (26 * 1024 * 1024), "headers": jpeg}, 413),
        "unknown option": (
            {"json": {"image": base64.b64encode(portrait_jpeg).decode(), "x": 1}},
            400,
        ),
        "bad method": (
            {"data": portrait_jpeg, "headers": jpeg, "params": {"method": "swirl"}},
            400,
        ),
        "bad padding": (
            {"data": portrait_jpeg, "headers": jpeg, "params": {"padding": "lots"}},
            400,
        ),
        "bad store": ({"data": portrait_jpeg, "headers": jpeg, "params": {"store": "maybe"}}, 400),
        # Issue 17: a huge value is refused without being echoed whole.
        "huge method": (
            {"json": {"image": base64.b64encode(portrait_jpeg).decode(), "method": "m" * 100_000}},
            400,
        ),
        "huge store": (
            {"json": {"image": base64.b64encode(portrait_jpeg).decode(), "store": "s" * 100_000}},
            400,
        ),
        "multipart without file": ({"data": {"method": "blur"}, "files": {"x": ("", b"")}}, 400),
        "multipart cut short": (
            {
                "data": b"--b\r\nContent-Disposition: form-data; name=image; filename=a\r\n\r\nab",
                "headers": {"Content-Type": "multipart/form-data; boundary=b"},
            },
            400,
        ),
        "multipart without boundary": (
            {"data": b"x", "headers": {"Content-Type": "multipart/form-data"}},
            400,
        ),
        "multipart of too many parts": (
            {
                "files": {"image": ("a.jpg", portrait_jpeg)},
                "data": {f"field{i}": "x" for i in range(40)},
            },
            400,
        ),
        "two images": (
            {"files": {"a": ("a.jpg", portrait_jpeg), "b": ("b.jpg", portrait_jpeg)}},
            400,
        ),
    }


BAD_REQUEST_CODES = {
    "empty": "empty",
    "empty json image": "empty",
    "not base64": "bad_base64",
    "json without image": "missing_file",
    "malformed json": "bad_json",
    "not an image": "not_an_image",
    "wrong content type": "content_type",
    "truncated": "corrupt_image",
    "too many pixels": "max_pixels",
    "too many bytes": "max_bytes",
    "unknown option": "unknown_option",
    "bad method": "bad_option",
    "bad padding": "bad_option",
    "bad store": "bad_option",
    "huge method": "bad_option",
    "huge store": "bad_option",
    "multipart without file": "empty",
    "multipart cut short": "bad_multipart",
    "multipart without boundary": "bad_multipart",
    "multipart of too many parts": "bad_multipart",
    "two images": "bad_multipart",
}


def test_bad_inputs_get_their_status_and_leave_buckets_alone(s3, url, portraits) -> None:
    jpeg, _ = photo(portraits[3], "JPEG")
    s3.store().put_pair(
        original=b"earlier",
        original_type="image/jpeg",
        result=b"r",
        result_type="image/jpeg",
        options={},
    )
    before = s3.snapshot()
    for name, (request, status) in bad_requests(jpeg).items():
        response = requests.post(url, timeout=120, **request)
        assert response.status_code == status, (name, response.text)
        assert response.headers["Content-Type"].startswith("application/json"), name
        error = response.json()["error"]
        assert isinstance(error, str) and error and "Traceback" not in error, name
        assert len(error) < 400, name
        assert response.json()["code"] == BAD_REQUEST_CODES[name], (name, response.text)
        assert s3.snapshot() == before, name


def test_other_methods_are_refused(url) -> None:
    response = requests.put(url, data=b"x", timeout=30)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed" and response.json()["error"]


def inbox_event(bucket: str, key: str) -> dict:
    """A MinIO notification as its webhook sends it: the key URL-encoded."""
    from urllib.parse import quote_plus

    return {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}},
            }
        ],
    }


def test_bucket_event_is_processed_once_and_outputs_never_trigger(
    s3, url, function_server, portraits
) -> None:
    original, _ = photo(portraits[4])
    key = "drop zone/my photo.png"
    s3.store().client.put_object(
        bucket_name="inbox", object_name=key, data=io.BytesIO(original), length=len(original)
    )
    response = requests.post(
        f"{function_server}/async-function/faceblur",
        json=inbox_event("inbox", key),
        headers=webhook_headers(),
        timeout=30,
    )
    assert response.status_code == 202
    assert response.headers["X-Call-Id"]
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    # The inbox object goes after the pair is written: wait for both, not just the result.
    while time.monotonic() < deadline and (not s3.snapshot()["results"] or s3.snapshot()["inbox"]):
        time.sleep(0.5)
    snapshot = s3.snapshot()
    assert snapshot["inbox"] == []
    assert snapshot["originals"] == [f"{content_id(original)}.png"]
    assert len(snapshot["results"]) == 1
    assert s3.store().read("originals", snapshot["originals"][0]) == original

    # The same event again, then events for the outputs (were the buckets wired to notify).
    again = requests.post(
        url, json=inbox_event("inbox", key), headers=webhook_headers(), timeout=60
    ).json()
    assert again["processed"] == []
    assert again["ignored"][0]["code"] == "gone"
    for bucket in ("originals", "results"):
        for output_key in snapshot[bucket]:
            event = inbox_event(bucket, output_key)
            answer = requests.post(url, json=event, headers=webhook_headers(), timeout=60).json()
            assert answer == {
                "processed": [],
                "ignored": [
                    {"bucket": bucket, "key": output_key, "reason": ANY, "code": "output_bucket"}
                ],
            }
    assert s3.snapshot() == snapshot


def test_bucket_event_for_a_non_image_is_reported_not_stored(s3, url) -> None:
    s3.store().client.put_object(
        bucket_name="inbox", object_name="notes.txt", data=io.BytesIO(b"text"), length=4
    )
    event = inbox_event("inbox", "notes.txt")
    answer = requests.post(url, json=event, headers=webhook_headers(), timeout=60)
    assert answer.status_code == 200
    body = answer.json()
    assert body["processed"] == [] and body["ignored"][0]["key"] == "notes.txt"
    assert body["ignored"][0]["code"] == "not_an_image"
    assert s3.snapshot()["originals"] == [] and s3.snapshot()["results"] == []


def test_eight_concurrent_requests_all_succeed_and_all_objects_exist(s3, url, portraits) -> None:
    photos = [photo(entry)[0] for entry in portraits[:8]]

    def send(data: bytes) -> requests.Response:
        return requests.post(url, data=data, headers={"Content-Type": "image/png"}, timeout=300)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, photos))
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    snapshot = s3.snapshot()
    assert snapshot["originals"] == sorted(b["original_key"] for b in bodies)
    assert snapshot["results"] == sorted(b["result_key"] for b in bodies)
    for data, body in zip(photos, bodies, strict=True):
        assert s3.store().read("originals", body["original_key"]) == data


def test_json_error_bodies_are_json_even_for_odd_bodies(url) -> None:
    response = requests.post(
        url, data=json.dumps([1, 2]), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["code"] == "bad_json"
