"""The faceblur web page: drop photos, get anonymised copies, browse earlier results.

A Flask app factory. The page is a client of the faceblur function over HTTP,
exactly as in the cluster; it reads the results bucket for the gallery and for
downloads, and never reads the originals bucket (it only deletes a person's upload
with its result when they ask).

Run it with `waitress-serve --call frontend.app:create_app` (see frontend/Dockerfile).
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from faceblur.accounts import RateLimiter, load_account_settings
from faceblur.config import ConfigError, Settings, load_settings
from faceblur.errors import BadRequestError, UnavailableError
from faceblur.options import (
    DEFAULT_METHOD,
    DEFAULT_SHAPE,
    METHOD_INFO,
    METHOD_NAMES,
    SHAPES,
    parse_options,
)
from faceblur.store.keys import (
    JOB_ID,
    VIDEOS_FOLDER,
    download_name,
    image_id_of,
    inbox_key,
    inbox_name,
    is_safe_key,
    is_video_key,
    new_job_id,
    split_owner,
)

from . import accounts
from .archive import Entry, stream_zip
from .gateway import (
    EDITS_REFUSED,
    JOB_ERRORS,
    PHOTO_FORMATS,
    PLAIN_ERRORS,
    VIDEO_FORMATS,
    FunctionClient,
    FunctionError,
)
from .results import ResultsBucket
from .review import edits_as_stored, tracks_as_shown
from .thumbnails import NotAThumbnailable, ThumbnailCache, make_thumbnail

# Room for the multipart envelope and the form fields around one photo.
FORM_OVERHEAD_BYTES = 64 * 1024
GALLERY_PAGE_SIZE = 12
# Videos a person may start an hour (in bursts up to as many), counted per signed-in person,
# or per address with accounts off; and how much may wait in the inbox for them at once, in
# multiples of the video size limit (FACEBLUR_MAX_VIDEO_BYTES). A presigned upload form is
# signed for one size only, so these bound what one person can make the inbox hold.
VIDEO_STARTS_PER_HOUR = 30
VIDEO_QUOTA_FACTOR = 2
VIDEO_QUOTA_RETRY_SECONDS = 60
MAX_ZIP_FILES = 200

SHAPE_LABELS = {"ellipse": "Oval (follows the face)", "box": "Rectangle (covers more)"}

UNAVAILABLE = PLAIN_ERRORS[503]
STORAGE_UNAVAILABLE = (
    "The photo store is not available right now, so earlier results cannot be shown. "
    "Please try again in a minute."
)
EXPIRED = "This page has expired. Please reload the page and try again."
NO_SCRIPT_VIDEO = (
    "Videos are sent by the page's script: please turn on JavaScript for this page, "
    "or send photos only."
)
csrf = CSRFProtect()
pages = Blueprint("pages", __name__)


@dataclass
class Services:
    """What the views need, built once per app from the settings."""

    settings: Settings
    function: FunctionClient
    thumbnails: ThumbnailCache = field(default_factory=ThumbnailCache)
    video_starts: RateLimiter = field(
        default_factory=lambda: RateLimiter(VIDEO_STARTS_PER_HOUR, period_seconds=3600)
    )
    _results: ResultsBucket | None = None

    @property
    def results(self) -> ResultsBucket:
        # Built on first use so the page starts even while the S3 server is down.
        if self._results is None:
            self._results = ResultsBucket.from_settings(self.settings)
        return self._results


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app; settings come from the environment unless `FACEBLUR_SETTINGS` is given.

    Outside debug and testing the app refuses to start without a secret key
    (secret `faceblur-frontend-secret-key` or FACEBLUR_FRONTEND_SECRET_KEY).
    """
    config = dict(test_config or {})
    settings: Settings = config.pop("FACEBLUR_SETTINGS", None) or load_settings()
    account_settings = config.pop("FACEBLUR_ACCOUNTS", None) or load_account_settings()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_bytes + FORM_OVERHEAD_BYTES,
        FACEBLUR_MAX_BYTES=settings.max_bytes,
        GALLERY_PAGE_SIZE=GALLERY_PAGE_SIZE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # A person may leave the page open for a while before sending photos.
        WTF_CSRF_TIME_LIMIT=12 * 3600,
    )
    app.config.update(config)
    secret_key = app.config.get("SECRET_KEY") or settings.frontend_secret_key
    if not secret_key:
        if not (app.debug or app.testing):
            raise ConfigError(
                "The frontend needs a secret key: provide the secret "
                "faceblur-frontend-secret-key or set FACEBLUR_FRONTEND_SECRET_KEY"
            )
        # Debug/test only: a random key per process, never a fixed well-known one.
        secret_key = secrets.token_hex(32)
    app.config["SECRET_KEY"] = secret_key

    app.extensions["faceblur"] = Services(
        settings=settings,
        function=FunctionClient(settings.gateway_url, settings.function_name),
    )
    csrf.init_app(app)
    app.register_blueprint(pages)
    if account_settings.enabled:
        accounts.init_accounts(app, account_settings)
    else:
        app.context_processor(lambda: {"account_user": None, "accounts_on": False})
    _register_error_handlers(app)
    app.add_template_filter(human_bytes, "human_bytes")
    app.add_template_filter(human_date, "human_date")
    app.after_request(_security_headers)
    return app


def _services() -> Services:
    return current_app.extensions["faceblur"]


# --- views ------------------------------------------------------------------------


@pages.get("/")
def index() -> str:
    return render_template("index.html", **_picker_context())


@pages.post("/api/anonymise")
def api_anonymise() -> Any:
    """One photo from the page's script: forward it to the function, answer JSON."""
    method, shape = _chosen_options()
    upload = request.files.get("photo")
    if upload is None:
        return _json_error(400, "Please choose a photo to send.")
    try:
        outcome = _anonymise_upload(upload, method, shape, _edited_regions())
    except FunctionError as error:
        return _json_error(error.status, error.message)
    replaced = request.form.get("replaces")
    if replaced:
        _replace(replaced, outcome["key"])
    return jsonify(outcome)


def _replace(old_key: str, new_key: str) -> None:
    """A correction replaces the copy it corrects: the flawed one (a missed face, maybe) is
    deleted, never left in the gallery beside the new one. Only another result of the same
    photo, of this person, is ever deleted this way."""
    if old_key == new_key or not _readable(old_key):
        return
    old_owner, old_rest = split_owner(old_key)
    new_owner, new_rest = split_owner(new_key)
    if old_owner != new_owner or image_id_of(old_rest) != image_id_of(new_rest):
        return
    try:
        _services().results.delete_result(old_key)
    except UnavailableError:
        # The new copy is there; the old one goes with the photo's retention. Said in the log.
        current_app.logger.warning("a corrected result's old copy could not be deleted")
        return
    _services().thumbnails.forget_under(old_key)


@pages.post("/upload")
def upload_form() -> tuple[str, int] | str:
    """The same as the script, for browsers without JavaScript: one page of results."""
    method, shape = _chosen_options()
    uploads = [u for u in request.files.getlist("photo") if u.filename]
    if not uploads:
        return _error_page(400, "Please choose at least one photo to send.")
    outcomes = []
    for upload in uploads:
        try:
            outcomes.append(_anonymise_upload(upload, method, shape))
        except FunctionError as error:
            outcomes.append({"error": error.message, "name": _shown_name(upload.filename)})
    return render_template(
        "results.html",
        outcomes=outcomes,
        zip_url=_zip_url([o for o in outcomes if "error" not in o]),
        shape=shape,
    )


@pages.get("/gallery")
def gallery() -> tuple[str, int] | str:
    page_number = request.args.get("page", default=1, type=int) or 1
    try:
        page = _services().results.page(
            page_number, current_app.config["GALLERY_PAGE_SIZE"], accounts.owner_prefix()
        )
    except UnavailableError:
        return _error_page(503, STORAGE_UNAVAILABLE)
    return render_template("gallery.html", page=page)


@pages.get("/results/<path:key>")
def download(key: str) -> Any:
    """One result as a download, named after the person's photo (sanitised)."""
    if not _readable(key):
        return _error_page(404, "There is no such result.")
    if is_video_key(key):
        return _video_download(key)
    try:
        stored = _services().results.read(key)
    except UnavailableError:
        return _error_page(503, STORAGE_UNAVAILABLE)
    if stored is None:
        return _error_page(404, "There is no such result. It may have been deleted.")
    return send_file(
        io.BytesIO(stored.data),
        mimetype=stored.content_type,
        as_attachment=True,
        download_name=download_name(request.args.get("name"), key),
    )


@pages.get("/thumbnails/<path:key>")
def thumbnail(key: str) -> Any:
    """A small copy of a result for the gallery (the full one opens by presigned URL)."""
    if not _readable(key):
        return _error_page(404, "There is no such result.")
    if is_video_key(key):  # the gallery shows a video in a <video> element instead
        return _error_page(404, "This result has no preview.")
    services = _services()
    data = services.thumbnails.get(key)
    if data is None:
        try:
            stored = services.results.read(key)
        except UnavailableError:
            return _error_page(503, STORAGE_UNAVAILABLE)
        if stored is None:
            return _error_page(404, "There is no such result. It may have been deleted.")
        try:
            data = make_thumbnail(stored.data, services.settings.max_pixels)
        except NotAThumbnailable:
            return _error_page(404, "This result has no preview.")
        services.thumbnails.put(key, data)
    response = current_app.response_class(data, mimetype="image/jpeg")
    # Keys derive from the content: a key's picture never changes.
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    return response


@pages.get("/results.zip")
def download_all() -> Any:
    """Several results in one zip, streamed; `key` and `name` are repeated, in the same order.

    A key asked for twice is zipped once. The sizes are added up before anything is sent,
    so an archive over the limit is a 413, not a cut download.
    """
    keys = request.args.getlist("key")
    names = request.args.getlist("name")
    if not keys or len(keys) > MAX_ZIP_FILES or not all(_readable(k) for k in keys):
        return _error_page(400, "Nothing to download: the list of results is empty or wrong.")
    results = _services().results
    limit = _services().settings.max_zip_bytes
    entries: list[Entry] = []
    used_names: set[str] = set()
    total = 0
    try:
        for key in dict.fromkeys(keys):
            size = results.size(key)
            if size is None:
                continue
            total += size
            if total > limit:
                return _error_page(
                    413,
                    f"These photos are too many to download together (more than "
                    f"{human_bytes(limit)}). Please download them one by one or in smaller groups.",
                )
            first = keys.index(key)
            user_name = names[first] if first < len(names) else None
            name = _unique(download_name(user_name, key), used_names)
            entries.append(Entry(name, size, lambda key=key: results.pieces(key)))
    except UnavailableError:
        return _error_page(503, STORAGE_UNAVAILABLE)
    if not entries:
        return _error_page(404, "These results are no longer available.")
    response = current_app.response_class(
        _logged_stream(stream_zip(entries), current_app.logger), mimetype="application/zip"
    )
    response.headers["Content-Disposition"] = "attachment; filename=anonymised-photos.zip"
    return response


def _video_download(key: str) -> Any:
    """A video result streamed a piece at a time: a video is too large to hold whole."""
    results = _services().results
    try:
        size = results.size(key)
    except UnavailableError:
        return _error_page(503, STORAGE_UNAVAILABLE)
    if size is None:
        return _error_page(404, "There is no such result. It may have been deleted.")
    name = download_name(request.args.get("name"), key, fallback="video")
    response = current_app.response_class(
        _logged_stream(results.pieces(key), current_app.logger), mimetype="video/mp4"
    )
    response.content_length = size
    # The name is safe (download_name) but may hold any script: RFC 5987 beside ASCII.
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    response.headers.set(
        "Content-Disposition",
        "attachment",
        filename=ascii_name or "video-anonymised.mp4",
        **{"filename*": f"UTF-8''{quote(name, safe='')}"},
    )
    return response


def _logged_stream(pieces: Iterator[bytes], logger: logging.Logger) -> Iterator[bytes]:
    """Pass the pieces on; if storage fails half-way the download is cut (the status is
    sent already), and the log says why. Runs after the request's context is gone."""
    try:
        yield from pieces
    except UnavailableError:
        logger.warning("a zip download was cut: storage stopped answering")
        raise


@pages.get("/delete/<path:key>")
def confirm_delete(key: str) -> Any:
    """Ask before deleting: a link never deletes anything by itself."""
    if not _readable(key):
        return _error_page(404, "There is no such result.")
    return render_template("delete.html", key=key, deleted=False, back=_back())


@pages.post("/delete/<path:key>")
def delete(key: str) -> Any:
    """Delete the person's upload and every anonymised copy made from it (CSRF-checked)."""
    if not _readable(key):
        return _error_page(404, "There is no such result.")
    try:
        found = _services().results.delete_photo(key)
    except UnavailableError:
        return _error_page(
            503,
            "The photo store is not available right now, so nothing could be deleted. "
            "Please try again in a minute.",
        )
    if not found:
        return _error_page(404, "This photo is not stored here (any more). Nothing to delete.")
    _services().thumbnails.forget_photo(key)
    return render_template("delete.html", key=key, deleted=True, back=_back())


def _back() -> str:
    """Where "go back" leads after a delete: the gallery when asked from there, else home."""
    return "pages.gallery" if request.args.get("back") == "gallery" else "pages.index"


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
        return _json_error(400, "The request was not understood. Please reload the page.")
    size, kind = details.get("size"), details.get("type")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return _json_error(400, "The request was not understood. Please reload the page.")
    if size == 0:
        return _json_error(400, "This file is empty.")
    limit = _services().settings.max_video_bytes
    if size > limit:
        return _json_error(413, f"This video is too large. The limit is {human_bytes(limit)}.")
    if not isinstance(kind, str) or not kind.lower().startswith("video/"):
        return _json_error(
            415,
            f"This file is not a video we can read. Please choose a video ({VIDEO_FORMATS}).",
        )
    identity = accounts.current_identity()
    caller = f"user:{identity.user_id}" if identity else f"addr:{request.remote_addr}"
    wait = _services().video_starts.retry_after(caller)
    if wait:
        return _too_many(
            f"You have sent many videos in a short time. Please wait {wait} seconds.", wait
        )
    owner = accounts.owner_prefix()
    try:
        _, waiting_bytes = _services().results.videos_waiting(owner + VIDEOS_FOLDER)
    except UnavailableError:
        return _json_error(503, UNAVAILABLE)
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
        form = _services().results.inbox_upload_form(key, size, kind.lower())
    except UnavailableError:
        return _json_error(503, UNAVAILABLE)
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
        return _json_error(400, "This is not the number of a video sent from this page.")
    status = _services().function.job_status(job, accounts.function_credentials())
    if accounts.enabled() and status.get("prefix") != accounts.owner_prefix():
        return _json_error(404, JOB_ERRORS[404])
    return jsonify(_job_view(job, status))


@pages.get("/videos/<job>/tracks")
def video_tracks(job: str) -> Any:
    """The people the function followed through a finished video: each track's frames and
    boxes (no pixels: the browser cuts thumbnails from the person's own file), in the
    pixels the player shows."""
    if not JOB_ID.fullmatch(job):
        return _json_error(400, "This is not the number of a video sent from this page.")
    answer = _services().function.job_tracks(job, accounts.function_credentials())
    return jsonify(tracks_as_shown(answer))


@pages.post("/videos/<job>/edits")
def edit_video(job: str) -> Any:
    """Apply a reviewer's changes (people shown, areas hidden over frames): the function
    renders the video again, replacing its copy; the page follows the job as before."""
    if not JOB_ID.fullmatch(job):
        return _json_error(400, "This is not the number of a video sent from this page.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("edits"), dict):
        return _json_error(400, "The request was not understood. Please reload the page.")
    reason = body.get("reason")
    reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
    function, credentials = _services().function, accounts.function_credentials()
    # Drawn on the video as played; the function takes them as stored (its tracks say how
    # the video is turned).
    try:
        edits = edits_as_stored(body["edits"], function.job_tracks(job, credentials))
    except BadRequestError:
        return _json_error(400, EDITS_REFUSED)
    function.edit_job(job, edits, reason, credentials)
    return jsonify(job=job, status_url=url_for("pages.video_status", job=job)), 202


@pages.get("/healthz")
def healthz() -> Any:
    """Liveness/readiness for Kubernetes: the app is up and configured."""
    return jsonify(status="ok")


# --- helpers ----------------------------------------------------------------------


def _readable(key: str) -> bool:
    """A key the function could have written, of a result this person may see."""
    return is_safe_key(key) and accounts.owns(key)


def _picker_context() -> dict[str, Any]:
    methods = [DEFAULT_METHOD] + [m for m in METHOD_NAMES if m != DEFAULT_METHOD]
    shapes = [DEFAULT_SHAPE] + [s for s in SHAPES if s != DEFAULT_SHAPE]
    return {
        "methods": [(m, m.capitalize(), METHOD_INFO[m]) for m in methods],
        "shapes": [(s, SHAPE_LABELS.get(s, s.capitalize())) for s in shapes],
        "default_method": DEFAULT_METHOD,
        "default_shape": DEFAULT_SHAPE,
        "max_bytes": current_app.config["FACEBLUR_MAX_BYTES"],
        "max_video_bytes": _services().settings.max_video_bytes,
        "photo_formats": PHOTO_FORMATS,
        "video_formats": VIDEO_FORMATS,
        "not_readable": PLAIN_ERRORS[415],
    }


@pages.app_context_processor
def _storage_facts() -> dict[str, Any]:
    """What every page says about what is kept, from the settings that make it so."""
    return {"retention_days": _services().settings.retention_days}


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
    answer = _services().function.anonymise(
        data,
        content_type or "application/octet-stream",
        {"method": method, "shape": shape, **(edit or {})},
        accounts.function_credentials(),
    )
    return _outcome(answer, upload.filename, method, shape)


def _outcome(answer: dict[str, Any], user_name: str | None, method: str, shape: str) -> dict:
    """The function's answer reduced to what the page needs, with our own URLs."""
    key = _result_key(answer)
    if key is None:
        raise FunctionError(503, UNAVAILABLE)
    try:
        result_url = _services().results.presigned_url(key)
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
        "name": _shown_name(user_name),
        "face_count": len(faces),
        "faces": faces,
        "regions": _regions(answer.get("regions")),
        "width": _whole(answer.get("width")),
        "height": _whole(answer.get("height")),
        "method": method,
        "shape": shape,
        "result_url": result_url,
        "download_url": url_for("pages.download", key=key, name=user_name or ""),
        "delete_url": url_for("pages.confirm_delete", key=key),
        "download_name": name,
    }


def _job_view(job: str, status: dict[str, Any]) -> dict[str, Any]:
    """The function's job status reduced to what the page shows, with our own URLs."""
    view: dict[str, Any] = {
        "job": job,
        "state": status["state"],
        "frames_done": _whole(status.get("frames_done")) or 0,
        "frames_total": _whole(status.get("frames_total")) or 0,
        # A split job's segments (0 of 0: not split): the page's progress without a frame count.
        "segments_done": _whole(status.get("segments_done")) or 0,
        "segments_total": _whole(status.get("segments_total")) or 0,
    }
    if status["state"] == "failed":
        reason = status.get("reason")
        view["reason"] = reason if isinstance(reason, str) and reason else "unknown"
    if status["state"] == "done":
        key = _result_key(status)
        if key is None:
            raise FunctionError(503, UNAVAILABLE)
        # The function keeps the person's (reduced) file name from the inbox key.
        user_name = str(status.get("name") or "") or None
        try:
            view["result_url"] = _services().results.presigned_url(key)
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


def _result_key(answer: dict[str, Any]) -> str | None:
    """The results-bucket key in the function's answer, if it is one we trust."""
    candidate = answer.get("result_key")
    return candidate if isinstance(candidate, str) and _readable(candidate) else None


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


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _shown_name(user_name: str | None) -> str:
    # Shown back to the person (autoescaped); never used for a key or a path.
    return (user_name or "photo").replace("\\", "/").rsplit("/", 1)[-1][:120]


def _zip_url(outcomes: list[dict]) -> str | None:
    if not outcomes:
        return None
    return url_for(
        "pages.download_all",
        key=[o["key"] for o in outcomes],
        name=[o["name"] for o in outcomes],
    )


def _unique(name: str, used: set[str]) -> str:
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    candidate, counter = name, 2
    while candidate in used:
        candidate = f"{stem}-{counter}{dot}{suffix}"
        counter += 1
    used.add(candidate)
    return candidate


def human_bytes(size: int) -> str:
    """25 MB, 800 KB: sizes as people read them."""
    if size >= 1024 * 1024:
        value = size / (1024 * 1024)
        return f"{value:.0f} MB" if value >= 10 or value.is_integer() else f"{value:.1f} MB"
    if size >= 1024:
        return f"{size // 1024} KB"
    return f"{size} bytes"


def human_date(moment: datetime | None) -> str:
    if moment is None:
        return "unknown date"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%-d %b %Y, %H:%M UTC")


# --- errors -----------------------------------------------------------------------


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/videos"))


def _json_error(status: int, message: str) -> tuple[Any, int]:
    return jsonify(error=message), status


def _error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


def _respond_error(status: int, message: str) -> tuple[Any, int]:
    return _json_error(status, message) if _wants_json() else _error_page(status, message)


def _register_error_handlers(app: Flask) -> None:
    plain = {
        400: "The request was not understood. Please reload the page and try again.",
        404: "There is no such page.",
        405: "This address does not accept that kind of request.",
        413: None,  # built from the limit below
        500: "Something went wrong on our side. Please try again.",
    }

    @app.errorhandler(CSRFError)
    def csrf_error(_: CSRFError) -> tuple[Any, int]:
        return _respond_error(400, EXPIRED)

    @app.errorhandler(FunctionError)
    def function_error(error: FunctionError) -> tuple[Any, int]:
        return _respond_error(error.status, error.message)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Any, int]:
        status = error.code or 500
        if status == 413:
            limit = human_bytes(current_app.config["FACEBLUR_MAX_BYTES"])
            return _respond_error(413, f"This photo is too large. The limit is {limit}.")
        return _respond_error(status, plain.get(status) or error.description or plain[500])

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Any, int]:
        current_app.logger.exception("unexpected error", exc_info=error)
        return _respond_error(500, plain[500])


def _security_headers(response: Any) -> Any:
    # Results load in the browser from presigned URLs on the public S3 address, which in
    # a cluster is not the endpoint the code uses (an in-cluster service name); videos are
    # uploaded to it (connect-src) and played from it (media-src).
    s3_origin = _services().settings.s3_public_url
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; "
        f"img-src 'self' blob: data: {s3_origin}; "
        f"media-src 'self' blob: {s3_origin}; "
        f"script-src 'self'; style-src 'self'; connect-src 'self' {s3_origin}; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Presigned URLs carry a signature in the query: do not leak them to other sites.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response
