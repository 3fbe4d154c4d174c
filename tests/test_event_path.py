"""The bucket-event path end to end, on loopback, as it runs in the cluster.

In the cluster: a photo lands in MinIO's inbox bucket -> MinIO POSTs its event
notification to the gateway's `/async-function/faceblur` -> the queue worker calls
the function -> the function reads the object, stores the pair in originals and
results. Here the same steps run against the local S3 server and the local runner
(which serves the async route like the gateway and its queue worker); only MinIO's
own POST is played by the test, with the exact body MinIO sends.
"""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from urllib.parse import quote_plus

import numpy as np
import requests
from minio import Minio
from PIL import Image

from data import FACES_DEV
from faceblur.config import load_settings
from stack_fixtures import webhook_headers

SHARED_DATA = FACES_DEV
# A portrait with one face 186x208 px, annotated in annotations.json.
PHOTO = "images/13_Interview_Interview_Sequences_13_11.jpg"
# A key with a folder, spaces, brackets and non-ASCII: MinIO URL-encodes it in the event.
INBOX_KEY = "uploads/Interview (take 2) é.jpg"
PROCESSING_TIMEOUT_SECONDS = 180
FUNCTION = load_settings(environ={}, secrets_dir="/nonexistent").function_name


def minio_event(bucket: str, key: str, size: int, etag: str = "0") -> dict:
    """A bucket notification exactly as MinIO's webhook target POSTs it.

    MinIO encodes the key with Go's url.QueryEscape: every byte but letters, digits
    and `-_.~` is %-escaped, a space becomes `+`, and `/` becomes %2F.
    """
    encoded = quote_plus(key, safe="")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": now,
                "eventName": "s3:ObjectCreated:Put",
                "userIdentity": {"principalId": "faceblur-app"},
                "requestParameters": {
                    "principalId": "faceblur-app",
                    "region": "",
                    "sourceIPAddress": "10.244.0.1",
                },
                "responseElements": {
                    "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf3",
                    "x-amz-request-id": "187B3C2A1F0C5D9E",
                    "x-minio-deployment-id": "4b5b4f0e-2f5c-4d8f-9a55-1c0b7f1f9e61",
                    "x-minio-origin-endpoint": "http://10.244.0.12:9000",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "faceblur-app"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": encoded,
                        "size": size,
                        "eTag": etag,
                        "contentType": "image/jpeg",
                        "userMetadata": {"content-type": "image/jpeg"},
                        "sequencer": "187B3C2A1F2E8C41",
                    },
                },
                "source": {
                    "host": "10.244.0.1",
                    "port": "",
                    "userAgent": "MinIO (linux; amd64) minio-go/v7.0.95",
                },
            }
        ],
    }


def post_like_minio(function_server: str, event: dict) -> requests.Response:
    """POST to the gateway's async route with the headers MinIO's webhook sends."""
    return requests.post(
        f"{function_server}/async-function/{FUNCTION}",
        data=json.dumps(event),
        headers={**webhook_headers(), "User-Agent": "MinIO"},
        timeout=10,
    )


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def face_box(annotations: list[dict]) -> tuple[int, int, int, int]:
    entry = next(e for e in annotations if e["image"] == PHOTO)
    assert len(entry["faces"]) == 1
    return tuple(entry["faces"][0])


def test_encoding_matches_minio() -> None:
    # Go's url.QueryEscape("uploads/Interview (take 2) é.jpg"), byte for byte.
    event = minio_event("inbox", INBOX_KEY, 1)
    assert event["Records"][0]["s3"]["object"]["key"] == (
        "uploads%2FInterview+%28take+2%29+%C3%A9.jpg"
    )


def test_inbox_event_through_the_async_route_stores_the_pair(
    s3_server, function_server: str, dev_annotations: list[dict]
) -> None:
    settings = s3_server.settings
    store = s3_server.store()
    photo = (SHARED_DATA / PHOTO).read_bytes()
    before = s3_server.snapshot()

    # An event for an output bucket first: it must be ignored, or results would
    # trigger the function again. The queue runs calls in order, so once the pair
    # of the inbox event below exists, this one has been handled too.
    some_result = minio_event(settings.bucket_results, "abc/def.jpg", len(photo))
    assert post_like_minio(function_server, some_result).status_code == 202

    # The upload a user (or `mc cp`) makes; in the cluster MinIO then sends the event.
    client = Minio(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=settings.s3_secure,
        region=settings.s3_region,
    )
    client.put_object(
        bucket_name=settings.bucket_inbox,
        object_name=INBOX_KEY,
        data=io.BytesIO(photo),
        length=len(photo),
        content_type="image/jpeg",
    )
    assert INBOX_KEY in store.keys(settings.bucket_inbox)

    response = post_like_minio(
        function_server, minio_event(settings.bucket_inbox, INBOX_KEY, len(photo))
    )
    assert response.status_code == 202
    assert response.headers.get("X-Call-Id")

    def new_keys(bucket: str) -> list[str]:
        return sorted(set(store.keys(bucket)) - set(before[bucket]))

    assert wait_for(
        lambda: new_keys(settings.bucket_originals) and new_keys(settings.bucket_results),
        PROCESSING_TIMEOUT_SECONDS,
    ), f"no pair after {PROCESSING_TIMEOUT_SECONDS}s: {s3_server.snapshot()}"

    # Exactly one pair: the output-bucket event added nothing.
    (original_key,) = new_keys(settings.bucket_originals)
    (result_key,) = new_keys(settings.bucket_results)
    assert store.read(settings.bucket_originals, original_key) == photo
    # The inbox keeps no face once the original is safe in its own bucket.
    assert wait_for(lambda: INBOX_KEY not in store.keys(settings.bucket_inbox), 10)

    original = np.asarray(Image.open(io.BytesIO(photo)).convert("L"), dtype=np.float64)
    result_image = Image.open(io.BytesIO(store.read(settings.bucket_results, result_key)))
    assert result_image.size == (original.shape[1], original.shape[0])
    result = np.asarray(result_image.convert("L"), dtype=np.float64)
    x, y, w, h = face_box(dev_annotations)
    inside = np.abs(result - original)[y : y + h, x : x + w].mean()
    # Far from the face (beyond twice its size) only re-encoding noise may differ.
    far = np.ones(original.shape, dtype=bool)
    far[max(0, y - h) : y + 2 * h, max(0, x - w) : x + 2 * w] = False
    outside = np.abs(result - original)[far].mean()
    assert inside > 15, f"face region barely changed (mean difference {inside:.1f})"
    assert outside < 1, f"pixels away from the face changed (mean difference {outside:.2f})"
