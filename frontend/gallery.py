"""What is kept: the gallery and its thumbnails, downloads (one result, a video streamed,
several in a zip) and deleting a photo with its results."""

from __future__ import annotations

import io
import logging
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from flask import current_app, render_template, request, send_file, url_for

from faceblur.errors import UnavailableError
from faceblur.store.keys import download_name, is_video_key

from . import accounts
from .archive import Entry, stream_zip
from .base import current_services, error_page, human_bytes, pages, readable
from .thumbnails import NotAThumbnailable, make_thumbnail

MAX_ZIP_FILES = 200

STORAGE_UNAVAILABLE = (
    "The photo store is not available right now, so earlier results cannot be shown. "
    "Please try again in a minute."
)


@pages.get("/gallery")
def gallery() -> tuple[str, int] | str:
    page_number = request.args.get("page", default=1, type=int) or 1
    try:
        page = current_services().results.page(
            page_number, current_app.config["GALLERY_PAGE_SIZE"], accounts.owner_prefix()
        )
    except UnavailableError:
        return error_page(503, STORAGE_UNAVAILABLE)
    return render_template("gallery.html", page=page)


@pages.get("/results/<path:key>")
def download(key: str) -> Any:
    """One result as a download, named after the person's photo (sanitised)."""
    if not readable(key):
        return error_page(404, "There is no such result.")
    if is_video_key(key):
        return _video_download(key)
    try:
        stored = current_services().results.read(key)
    except UnavailableError:
        return error_page(503, STORAGE_UNAVAILABLE)
    if stored is None:
        return error_page(404, "There is no such result. It may have been deleted.")
    return send_file(
        io.BytesIO(stored.data),
        mimetype=stored.content_type,
        as_attachment=True,
        download_name=download_name(request.args.get("name"), key),
    )


@pages.get("/thumbnails/<path:key>")
def thumbnail(key: str) -> Any:
    """A small copy of a result for the gallery (the full one opens by presigned URL)."""
    if not readable(key):
        return error_page(404, "There is no such result.")
    if is_video_key(key):  # the gallery shows a video in a <video> element instead
        return error_page(404, "This result has no preview.")
    services = current_services()
    data = services.thumbnails.get(key)
    if data is None:
        try:
            stored = services.results.read(key)
        except UnavailableError:
            return error_page(503, STORAGE_UNAVAILABLE)
        if stored is None:
            return error_page(404, "There is no such result. It may have been deleted.")
        try:
            data = make_thumbnail(stored.data, services.settings.max_pixels)
        except NotAThumbnailable:
            return error_page(404, "This result has no preview.")
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
    if not keys or len(keys) > MAX_ZIP_FILES or not all(readable(k) for k in keys):
        return error_page(400, "Nothing to download: the list of results is empty or wrong.")
    results = current_services().results
    limit = current_services().settings.max_zip_bytes
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
                return error_page(
                    413,
                    f"These photos are too many to download together (more than "
                    f"{human_bytes(limit)}). Please download them one by one or in smaller groups.",
                )
            first = keys.index(key)
            user_name = names[first] if first < len(names) else None
            name = _unique(download_name(user_name, key), used_names)
            entries.append(Entry(name, size, lambda key=key: results.pieces(key)))
    except UnavailableError:
        return error_page(503, STORAGE_UNAVAILABLE)
    if not entries:
        return error_page(404, "These results are no longer available.")
    response = current_app.response_class(
        _logged_stream(stream_zip(entries), current_app.logger), mimetype="application/zip"
    )
    response.headers["Content-Disposition"] = "attachment; filename=anonymised-photos.zip"
    return response


def _video_download(key: str) -> Any:
    """A video result streamed a piece at a time: a video is too large to hold whole."""
    results = current_services().results
    try:
        size = results.size(key)
    except UnavailableError:
        return error_page(503, STORAGE_UNAVAILABLE)
    if size is None:
        return error_page(404, "There is no such result. It may have been deleted.")
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
    if not readable(key):
        return error_page(404, "There is no such result.")
    return render_template("delete.html", key=key, deleted=False, back=_back())


@pages.post("/delete/<path:key>")
def delete(key: str) -> Any:
    """Delete the person's upload and every anonymised copy made from it (CSRF-checked)."""
    if not readable(key):
        return error_page(404, "There is no such result.")
    try:
        found = current_services().results.delete_photo(key)
    except UnavailableError:
        return error_page(
            503,
            "The photo store is not available right now, so nothing could be deleted. "
            "Please try again in a minute.",
        )
    if not found:
        return error_page(404, "This photo is not stored here (any more). Nothing to delete.")
    current_services().thumbnails.forget_photo(key)
    return render_template("delete.html", key=key, deleted=True, back=_back())


def _back() -> str:
    """Where "go back" leads after a delete: the gallery when asked from there, else home."""
    return "pages.gallery" if request.args.get("back") == "gallery" else "pages.index"


def zip_url(outcomes: list[dict]) -> str | None:
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
