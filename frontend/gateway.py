"""The frontend's only way to the detector: the faceblur function over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from faceblur.formats import FORMATS, VIDEO_EXTENSIONS
from faceblur.store.keys import JOB_STATES

# Reading a photo and finding its faces can take a while on a cold function; past this
# the person is better told to retry than kept waiting (the gateway's own timeouts are
# hours long in the cluster, for video jobs: k8s/openfaas-values.yaml).
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 90

# How people know the formats faceblur.formats lists (its names are Pillow's and suffixes).
_SPELLING = {"WEBP": "WebP", "WEBM": "WebM", "PPM": "PPM/PGM"}


def _spelled(names: list[str]) -> list[str]:
    return [_SPELLING.get(name, name) for name in dict.fromkeys(names)]


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


# Every photo and video format the service reads, from faceblur.formats, never retyped.
PHOTO_FORMATS = _either(_spelled(list(FORMATS)))
VIDEO_FORMATS = _either(_spelled([suffix[1:].upper() for suffix in VIDEO_EXTENSIONS.values()]))
NOT_READABLE = (
    f"This file is not a photo or video we can read. Please choose a photo "
    f"({PHOTO_FORMATS}) or a video ({VIDEO_FORMATS})."
)

# What a person reads when the function answers with this status.
PLAIN_ERRORS: dict[int, str] = {
    400: "This photo could not be read. It may be damaged or empty.",
    413: "This photo is too large.",
    415: NOT_READABLE,
    429: "You have sent many photos in a short time. Please wait a minute and try again.",
    503: "The face-blurring service is not available right now. Please try again in a minute.",
}

# A job's status is a small read from the bucket: no reason to wait long for it.
STATUS_TIMEOUT_SECONDS = 10
JOB_ERRORS: dict[int, str] = {
    404: "There is no such video here. It may have been deleted, or it was not sent.",
    503: "The video service is not available right now, so its progress cannot be shown. "
    "Please try again in a minute.",
}

# A reviewer's changes to a video that cannot be used (malformed, or outside the frame).
EDITS_REFUSED = "These changes could not be applied. Please check them."


class FunctionError(Exception):
    """The function refused the photo or could not be reached; `message` is for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class FunctionClient:
    """Posts one photo to `{gateway_url}/function/{function_name}` and returns its JSON."""

    gateway_url: str
    function_name: str

    @property
    def url(self) -> str:
        return f"{self.gateway_url.rstrip('/')}/function/{self.function_name}"

    def anonymise(
        self,
        data: bytes,
        content_type: str,
        options: dict[str, str],
        credentials: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The function's JSON answer for `data`; raise FunctionError in plain words.

        `credentials`: the headers that say whom the photo is for, where accounts are on.
        """
        try:
            response = requests.post(
                self.url,
                data=data,
                params=options,
                headers={
                    "Content-Type": content_type or "application/octet-stream",
                    "Accept": "application/json",
                    **(credentials or {}),
                },
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
            )
        except requests.RequestException:
            raise FunctionError(503, PLAIN_ERRORS[503]) from None
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                raise FunctionError(503, PLAIN_ERRORS[503]) from None
            if isinstance(body, dict):
                return body
            raise FunctionError(503, PLAIN_ERRORS[503])
        raise FunctionError(*_plain_error(response))

    def _job_answer(
        self, params: dict[str, str], credentials: dict[str, str] | None
    ) -> tuple[requests.Response, Any]:
        """The function's answer about a video job (`GET <url>?job=...`) and its JSON body
        (None unless a 200 with JSON); FunctionError when the function cannot be reached
        (503) or knows no such job (404)."""
        try:
            response = requests.get(
                self.url,
                params=params,
                headers={"Accept": "application/json", **(credentials or {})},
                timeout=(CONNECT_TIMEOUT_SECONDS, STATUS_TIMEOUT_SECONDS),
            )
        except requests.RequestException:
            raise FunctionError(503, JOB_ERRORS[503]) from None
        if response.status_code in (400, 404):
            raise FunctionError(404, JOB_ERRORS[404])
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        return response, body

    def job_status(self, job: str, credentials: dict[str, str] | None = None) -> dict[str, Any]:
        """The function's status of video job `job` (`GET <url>?job=`); FunctionError
        in plain words (404: no such job)."""
        response, body = self._job_answer({"job": job}, credentials)
        if response.status_code == 429:
            raise FunctionError(429, PLAIN_ERRORS[429])
        if not isinstance(body, dict) or body.get("state") not in JOB_STATES:
            raise FunctionError(503, JOB_ERRORS[503])
        return body

    def job_tracks(self, job: str, credentials: dict[str, str] | None = None) -> dict[str, Any]:
        """The tracks of finished video job `job` (`GET <url>?job=&tracks=1`): boxes only,
        in the video's stored pixels; FunctionError in plain words (404: no such job)."""
        response, body = self._job_answer({"job": job, "tracks": "1"}, credentials)
        if not isinstance(body, dict) or not isinstance(body.get("tracks"), list):
            raise FunctionError(*_plain_error(response))
        return body

    def edit_job(
        self,
        job: str,
        edits: object,
        reason: str | None = None,
        credentials: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Render finished job `job` again with a reviewer's edits (`POST {"job", "edits"}`);
        the function's 202 answer, else FunctionError in plain words."""
        try:
            response = requests.post(
                self.url,
                json={"job": job, "edits": edits, "reason": reason},
                headers={"Accept": "application/json", **(credentials or {})},
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
            )
        except requests.RequestException:
            raise FunctionError(503, PLAIN_ERRORS[503]) from None
        if response.status_code == 202:
            return response.json()
        if response.status_code == 400:
            if _code(response) == "reason_required":
                raise FunctionError(400, "Please say why people are left visible.")
            raise FunctionError(400, EDITS_REFUSED)
        if response.status_code == 404:
            raise FunctionError(404, JOB_ERRORS[404])
        raise FunctionError(*_plain_error(response))


def _code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def _plain_error(response: requests.Response) -> tuple[int, str]:
    """Map the function's status to a status and a sentence a person understands."""
    status = response.status_code
    if status in (413, 415, 429):
        return status, PLAIN_ERRORS[status]
    if status == 400:
        return 400, _region_error(response) or PLAIN_ERRORS[400]
    # 5xx, a gateway timeout, or anything unexpected: the service is the problem.
    return 503, PLAIN_ERRORS[503]


def _region_error(response: requests.Response) -> str | None:
    """The function's own words when it refused the regions the person drew, not the photo."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("code") != "regions":
        return None
    message = body.get("error")
    if isinstance(message, str):
        return f"These hidden areas cannot be used: {message}."
    return None
