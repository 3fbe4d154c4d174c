"""The home page and sending photos: the picker, one photo at a time from the page's script
(JSON, with the editor's regions), and the form for browsers without JavaScript."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, jsonify, render_template, request, url_for

from faceblur.errors import BadRequestError, UnavailableError
from faceblur.options import (
    DEFAULT_METHOD,
    DEFAULT_SHAPE,
    METHOD_INFO,
    METHOD_NAMES,
    SHAPES,
    parse_options,
)
from faceblur.store.keys import download_name, image_id_of, split_owner

from . import accounts
from .base import (
    UNAVAILABLE,
    current_services,
    error_page,
    human_bytes,
    json_error,
    pages,
    readable,
    result_key,
    shown_name,
    whole,
)
from .gallery import zip_url
from .gateway import PHOTO_FORMATS, PLAIN_ERRORS, VIDEO_FORMATS, FunctionError

SHAPE_LABELS = {"ellipse": "Oval (follows the face)", "box": "Rectangle (covers more)"}

NO_SCRIPT_VIDEO = (
    "Videos are sent by the page's script: please turn on JavaScript for this page, "
    "or send photos only."
)


@pages.get("/")
def index() -> str:
    return render_template("index.html", **_picker_context())


@pages.post("/api/anonymise")
def api_anonymise() -> Any:
    """One photo from the page's script: forward it to the function, answer JSON."""
    method, shape = _chosen_options()
    upload = request.files.get("photo")
    if upload is None:
        return json_error(400, "Please choose a photo to send.")
    try:
        outcome = _anonymise_upload(upload, method, shape, _edited_regions())
    except FunctionError as error:
        return json_error(error.status, error.message)
    replaced = request.form.get("replaces")
    if replaced:
        _replace(replaced, outcome["key"])
    return jsonify(outcome)


def _replace(old_key: str, new_key: str) -> None:
    """A correction replaces the copy it corrects: the flawed one (a missed face, maybe) is
    deleted, never left in the gallery beside the new one. Only another result of the same
    photo, of this person, is ever deleted this way."""
    if old_key == new_key or not readable(old_key):
        return
    old_owner, old_rest = split_owner(old_key)
    new_owner, new_rest = split_owner(new_key)
    if old_owner != new_owner or image_id_of(old_rest) != image_id_of(new_rest):
        return
    try:
        current_services().results.delete_result(old_key)
    except UnavailableError:
        # The new copy is there; the old one goes with the photo's retention. Said in the log.
        current_app.logger.warning("a corrected result's old copy could not be deleted")
        return
    current_services().thumbnails.forget_under(old_key)


@pages.post("/upload")
def upload_form() -> tuple[str, int] | str:
    """The same as the script, for browsers without JavaScript: one page of results."""
    method, shape = _chosen_options()
    uploads = [u for u in request.files.getlist("photo") if u.filename]
    if not uploads:
        return error_page(400, "Please choose at least one photo to send.")
    outcomes = []
    for upload in uploads:
        try:
            outcomes.append(_anonymise_upload(upload, method, shape))
        except FunctionError as error:
            outcomes.append({"error": error.message, "name": shown_name(upload.filename)})
    return render_template(
        "results.html",
        outcomes=outcomes,
        zip_url=zip_url([o for o in outcomes if "error" not in o]),
        shape=shape,
    )


def _picker_context() -> dict[str, Any]:
    methods = [DEFAULT_METHOD] + [m for m in METHOD_NAMES if m != DEFAULT_METHOD]
    shapes = [DEFAULT_SHAPE] + [s for s in SHAPES if s != DEFAULT_SHAPE]
    return {
        "methods": [(m, m.capitalize(), METHOD_INFO[m]) for m in methods],
        "shapes": [(s, SHAPE_LABELS.get(s, s.capitalize())) for s in shapes],
        "default_method": DEFAULT_METHOD,
        "default_shape": DEFAULT_SHAPE,
        "max_bytes": current_app.config["FACEBLUR_MAX_BYTES"],
        "max_video_bytes": current_services().settings.max_video_bytes,
        "photo_formats": PHOTO_FORMATS,
        "video_formats": VIDEO_FORMATS,
        "not_readable": PLAIN_ERRORS[415],
    }


def _chosen_options() -> tuple[str, str]:
    """The picked method and shape; only the offered names get through."""
    try:
        options = parse_options(
            {
                "method": request.form.get("method") or DEFAULT_METHOD,
                "shape": request.form.get("shape") or DEFAULT_SHAPE,
            }
        )
    except BadRequestError:
        raise FunctionError(400, "Please pick one of the offered methods and shapes.") from None
    return options.method, options.shape


def _edited_regions() -> dict[str, str]:
    """`detect` and `regions` as the page's editor sends them, checked, for the function.

    The editor sends the original again with the regions the person kept and drew; the
    function checks they fit the photo.
    """
    raw = {name: request.form[name] for name in ("detect", "regions") if name in request.form}
    if not raw:
        return {}
    try:
        options = parse_options(raw)
    except BadRequestError as error:
        raise FunctionError(400, f"These hidden areas cannot be used: {error}.") from None
    return {
        "detect": "true" if options.detect else "false",
        "regions": json.dumps(options.regions, separators=(",", ":")),
    }


def _anonymise_upload(
    upload: Any, method: str, shape: str, edit: dict[str, str] | None = None
) -> dict[str, Any]:
    """Send one uploaded photo to the function; what the page shows about the result."""
    if upload.mimetype.startswith("video/"):  # only the script uploads videos (POST /videos)
        raise FunctionError(415, NO_SCRIPT_VIDEO)
    max_bytes = current_app.config["FACEBLUR_MAX_BYTES"]
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FunctionError(413, f"This photo is too large. The limit is {human_bytes(max_bytes)}.")
    if not data:
        raise FunctionError(400, "This file is empty.")
    # The function sniffs the format from the bytes; the browser's guess is only a hint.
    content_type = upload.mimetype if upload.mimetype.startswith("image/") else ""
    answer = current_services().function.anonymise(
        data,
        content_type or "application/octet-stream",
        {"method": method, "shape": shape, **(edit or {})},
        accounts.function_credentials(),
    )
    return _outcome(answer, upload.filename, method, shape)


def _outcome(answer: dict[str, Any], user_name: str | None, method: str, shape: str) -> dict:
    """The function's answer reduced to what the page needs, with our own URLs."""
    key = result_key(answer)
    if key is None:
        raise FunctionError(503, UNAVAILABLE)
    try:
        result_url = current_services().results.presigned_url(key)
    except UnavailableError:
        raise FunctionError(503, UNAVAILABLE) from None
    faces = [
        {"box": face.get("box"), "region": face.get("region"), "score": face.get("score")}
        for face in answer.get("faces") or []
        if isinstance(face, dict)
    ]
    name = download_name(user_name, key)
    return {
        "id": str(answer.get("id", "")),
        "key": key,
        "name": shown_name(user_name),
        "face_count": len(faces),
        "faces": faces,
        "regions": _regions(answer.get("regions")),
        "width": whole(answer.get("width")),
        "height": whole(answer.get("height")),
        "method": method,
        "shape": shape,
        "result_url": result_url,
        "download_url": url_for("pages.download", key=key, name=user_name or ""),
        "delete_url": url_for("pages.confirm_delete", key=key),
        "download_name": name,
    }


def _regions(value: object) -> list[list[int]]:
    """Every area the function hid, [x, y, w, h] on the upright photo, for the editor."""
    if not isinstance(value, list):
        return []
    return [
        list(region)
        for region in value
        if isinstance(region, list)
        and len(region) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in region)
    ]
