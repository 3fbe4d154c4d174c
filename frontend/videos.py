"""Videos from the page: start a job (a presigned upload into the inbox, within each
person's limits), follow its progress, and review it (the tracks, the reviewer's edits)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request, url_for

from faceblur.errors import BadRequestError, UnavailableError
from faceblur.store.keys import (
    JOB_ID,
    VIDEOS_FOLDER,
    download_name,
    inbox_key,
    inbox_name,
    new_job_id,
)

from . import accounts
from .base import (
    UNAVAILABLE,
    current_services,
    human_bytes,
    json_error,
    pages,
    result_key,
    whole,
)
from .gateway import EDITS_REFUSED, JOB_ERRORS, VIDEO_FORMATS, FunctionError
from .review import edits_as_stored, tracks_as_shown

# How much may wait in the inbox for one person at once, in multiples of the video size
# limit (FACEBLUR_MAX_VIDEO_BYTES). A presigned upload form is signed for one size only, so
# this and base.VIDEO_STARTS_PER_HOUR bound what one person can make the inbox hold.
VIDEO_QUOTA_FACTOR = 2
VIDEO_QUOTA_RETRY_SECONDS = 60


@pages.post("/videos")
def start_video() -> Any:
    """A video job: where the browser uploads the video, and where it follows its progress.

    The browser sends the file straight to the inbox with a presigned POST form, so a large
    video never passes through the page or a function request; the inbox's put event
    starts the function's job. The form's policy holds the upload to the declared size and
    type for a few minutes (MinIO enforces it); the function checks the bytes themselves
    (and its limits) before processing. Each person may start VIDEO_STARTS_PER_HOUR and
    have at most VIDEO_QUOTA_FACTOR times the video limit waiting in the inbox.
    """
    details = request.get_json(silent=True)
    if not isinstance(details, dict):
        return json_error(400, "The request was not understood. Please reload the page.")
    size, kind = details.get("size"), details.get("type")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return json_error(400, "The request was not understood. Please reload the page.")
    if size == 0:
        return json_error(400, "This file is empty.")
    limit = current_services().settings.max_video_bytes
    if size > limit:
        return json_error(413, f"This video is too large. The limit is {human_bytes(limit)}.")
    if not isinstance(kind, str) or not kind.lower().startswith("video/"):
        return json_error(
            415,
            f"This file is not a video we can read. Please choose a video ({VIDEO_FORMATS}).",
        )
    identity = accounts.current_identity()
    caller = f"user:{identity.user_id}" if identity else f"addr:{request.remote_addr}"
    wait = current_services().video_starts.retry_after(caller)
    if wait:
        return _too_many(
            f"You have sent many videos in a short time. Please wait {wait} seconds.", wait
        )
    owner = accounts.owner_prefix()
    try:
        _, waiting_bytes = current_services().results.videos_waiting(owner + VIDEOS_FOLDER)
    except UnavailableError:
        return json_error(503, UNAVAILABLE)
    quota = VIDEO_QUOTA_FACTOR * limit
    if waiting_bytes + size > quota:
        return _too_many(
            f"Your videos waiting to be processed already take {human_bytes(waiting_bytes)} "
            f"(at most {human_bytes(quota)} may wait). Please send this one when they are done.",
            VIDEO_QUOTA_RETRY_SECONDS,
        )
    job = new_job_id()
    key = inbox_key(owner, job, inbox_name(details.get("name"), kind.lower()))
    try:
        form = current_services().results.inbox_upload_form(key, size, kind.lower())
    except UnavailableError:
        return json_error(503, UNAVAILABLE)
    return jsonify(
        job=job,
        upload={"url": form.url, "fields": form.fields},
        status_url=url_for("pages.video_status", job=job),
    )


def _too_many(message: str, wait: int) -> tuple[Any, int, dict[str, str]]:
    return jsonify(error=message), 429, {"Retry-After": str(wait)}


@pages.get("/videos/<job>")
def video_status(job: str) -> Any:
    """A video job's progress, from the function; 404 for a job of someone else's."""
    if not JOB_ID.fullmatch(job):
        return json_error(400, "This is not the number of a video sent from this page.")
    status = current_services().function.job_status(job, accounts.function_credentials())
    if accounts.enabled() and status.get("prefix") != accounts.owner_prefix():
        return json_error(404, JOB_ERRORS[404])
    return jsonify(_job_view(job, status))


@pages.get("/videos/<job>/tracks")
def video_tracks(job: str) -> Any:
    """The people the function followed through a finished video: each track's frames and
    boxes (no pixels: the browser cuts thumbnails from the person's own file), in the
    pixels the player shows."""
    if not JOB_ID.fullmatch(job):
        return json_error(400, "This is not the number of a video sent from this page.")
    answer = current_services().function.job_tracks(job, accounts.function_credentials())
    return jsonify(tracks_as_shown(answer))


@pages.post("/videos/<job>/edits")
def edit_video(job: str) -> Any:
    """Apply a reviewer's changes (people shown, areas hidden over frames): the function
    renders the video again, replacing its copy; the page follows the job as before."""
    if not JOB_ID.fullmatch(job):
        return json_error(400, "This is not the number of a video sent from this page.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("edits"), dict):
        return json_error(400, "The request was not understood. Please reload the page.")
    reason = body.get("reason")
    reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
    function, credentials = current_services().function, accounts.function_credentials()
    # Drawn on the video as played; the function takes them as stored (its tracks say how
    # the video is turned).
    try:
        edits = edits_as_stored(body["edits"], function.job_tracks(job, credentials))
    except BadRequestError:
        return json_error(400, EDITS_REFUSED)
    function.edit_job(job, edits, reason, credentials)
    return jsonify(job=job, status_url=url_for("pages.video_status", job=job)), 202


def _job_view(job: str, status: dict[str, Any]) -> dict[str, Any]:
    """The function's job status reduced to what the page shows, with our own URLs."""
    view: dict[str, Any] = {
        "job": job,
        "state": status["state"],
        "frames_done": whole(status.get("frames_done")) or 0,
        "frames_total": whole(status.get("frames_total")) or 0,
        # A split job's segments (0 of 0: not split): the page's progress without a frame count.
        "segments_done": whole(status.get("segments_done")) or 0,
        "segments_total": whole(status.get("segments_total")) or 0,
    }
    if status["state"] == "failed":
        reason = status.get("reason")
        view["reason"] = reason if isinstance(reason, str) and reason else "unknown"
    if status["state"] == "done":
        key = result_key(status)
        if key is None:
            raise FunctionError(503, UNAVAILABLE)
        # The function keeps the person's (reduced) file name from the inbox key.
        user_name = str(status.get("name") or "") or None
        try:
            view["result_url"] = current_services().results.presigned_url(key)
        except UnavailableError:
            raise FunctionError(503, UNAVAILABLE) from None
        view |= {
            "key": key,
            "download_url": url_for("pages.download", key=key, name=user_name or ""),
            "delete_url": url_for("pages.confirm_delete", key=key),
            "download_name": download_name(user_name, key, fallback="video"),
            "tracks_url": url_for("pages.video_tracks", job=job),
            "edits_url": url_for("pages.edit_video", job=job),
        }
    return view
