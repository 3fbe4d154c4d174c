"""The faceblur web page: drop photos, get anonymised copies, browse earlier results.

A Flask app factory. The page is a client of the faceblur function over HTTP,
exactly as in the cluster; it reads the results bucket for the gallery and for
downloads, and never reads the originals bucket (it only deletes a person's upload
with its result when they ask). The views join one blueprint (`pages`, in base) from
photos (sending photos), videos (video jobs and their review) and gallery (what is kept:
browse, download, delete); accounts adds sign-in when it is on.

Run it with `waitress-serve --call frontend.app:create_app` (see frontend/Dockerfile).
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, current_app, jsonify, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from faceblur.accounts import load_account_settings
from faceblur.config import ConfigError, Settings, load_settings

# gallery, photos and videos are imported for their routes: each adds its own to `pages`.
from . import accounts, gallery, photos, videos  # noqa: F401
from .base import (
    Services,
    current_services,
    error_page,
    human_bytes,
    human_date,
    json_error,
    pages,
)
from .gateway import FunctionClient, FunctionError

# Room for the multipart envelope and the form fields around one photo.
FORM_OVERHEAD_BYTES = 64 * 1024
GALLERY_PAGE_SIZE = 12

EXPIRED = "This page has expired. Please reload the page and try again."
csrf = CSRFProtect()


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


@pages.get("/healthz")
def healthz() -> Any:
    """Liveness/readiness for Kubernetes: the app is up and configured."""
    return jsonify(status="ok")


@pages.app_context_processor
def _storage_facts() -> dict[str, Any]:
    """What every page says about what is kept, from the settings that make it so."""
    return {"retention_days": current_services().settings.retention_days}


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/videos"))


def _respond_error(status: int, message: str) -> tuple[Any, int]:
    return json_error(status, message) if _wants_json() else error_page(status, message)


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
    s3_origin = current_services().settings.s3_public_url
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
