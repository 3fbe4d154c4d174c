"""Accounts on the page (FACEBLUR_AUTH=on): sign up, sign in and out, keys, deletion, admin.

The rules live in `faceblur.accounts`; this blueprint only shows them. Where accounts
are on, every page but sign-in/sign-up needs a signed-in person, each person sees only
the results under their own prefix, and the page calls the function for them with the
internal token (the function checks the person is still active).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from faceblur.accounts import (
    AccountError,
    Accounts,
    AccountSettings,
    Identity,
    RateLimiter,
    open_accounts,
)
from faceblur.config import ConfigError, is_loopback_endpoint
from faceblur.errors import UnavailableError

# Sign-in attempts a minute, per address and per name: slows password guessing to a
# crawl while a person who mistypes a few times is not held up.
SIGNIN_ATTEMPTS_PER_MINUTE = 5
# Pages anyone may open while signed out.
PUBLIC_ENDPOINTS = {"accounts.signin", "accounts.signup", "pages.healthz", "static"}

bp = Blueprint("accounts", __name__)


@dataclass
class AccountServices:
    settings: AccountSettings
    accounts: Accounts
    signin_limiter: RateLimiter


def init_accounts(app: Flask, settings: AccountSettings) -> None:
    """Turn accounts on for `app`: the blueprint, the sign-in gate, Secure cookies."""
    if not settings.internal_token:
        raise ConfigError(
            "FACEBLUR_AUTH=on: the page needs the secret faceblur-internal-token "
            "(or FACEBLUR_INTERNAL_TOKEN) to call the function for its signed-in people"
        )
    app.extensions["faceblur-accounts"] = AccountServices(
        settings, open_accounts(settings.database_url), RateLimiter(SIGNIN_ATTEMPTS_PER_MINUTE)
    )
    app.session_interface = _LoopbackAwareSessions()
    app.register_blueprint(bp)
    app.before_request(_require_signed_in)
    app.context_processor(lambda: {"account_user": current_identity()})


def enabled() -> bool:
    return "faceblur-accounts" in current_app.extensions


def _services() -> AccountServices:
    return current_app.extensions["faceblur-accounts"]


def current_identity() -> Identity | None:
    """The signed-in, still active person (a disabled one is signed out at once)."""
    if not enabled():
        return None
    if "identity" not in g:
        user_id = session.get("user_id")
        g.identity = _services().accounts.active_user(user_id) if user_id else None
        if user_id and g.identity is None:
            session.clear()
    return g.identity


def owner_prefix() -> str:
    """Where the signed-in person's results live; "" (everything) with accounts off."""
    identity = current_identity()
    return identity.prefix if identity else ""


def owns(key: str) -> bool:
    """Whether the person of this request may see result `key`."""
    return not enabled() or (current_identity() is not None and key.startswith(owner_prefix()))


def function_credentials() -> dict[str, str] | None:
    """Headers for the function call made for the signed-in person, if accounts are on."""
    identity = current_identity()
    token = _services().settings.internal_token if enabled() else None
    if identity is None or not token:
        return None
    return {"Authorization": f"Bearer {token}", "X-Faceblur-Owner": identity.name}


class _LoopbackAwareSessions(SecureCookieSessionInterface):
    """Session cookies are Secure everywhere except on a loopback address (`make run`)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or not is_loopback_endpoint(request.host)


def _require_signed_in() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS or current_identity() is not None:
        return None
    if request.path.startswith(("/api/", "/videos")):
        return jsonify(error="Please sign in first."), 401
    return redirect(url_for("accounts.signin"))


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, **context), status


def _signin_page(status: int = 200, **context: Any) -> tuple[str, int]:
    """The sign-in page, with the sign-up link only where sign-up is open."""
    return _page("signin.html", status, signup=_services().settings.signup, **context)


def _refuse(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


def _delete_stored(prefix: str) -> int:
    """Delete a person's uploads, results and cached thumbnails; how many objects went."""
    # The page's own results bucket: its S3 client is built once per app, not per request.
    services = current_app.extensions["faceblur"]
    removed = services.results.delete_owned(prefix)
    services.thumbnails.forget_under(prefix)
    return removed


# --- signing in and out ---------------------------------------------------------------


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    if request.method == "GET":
        return _signin_page()
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    limiter = _services().signin_limiter
    wait = max(
        limiter.retry_after(f"addr:{request.remote_addr}"), limiter.retry_after(f"name:{name}")
    )
    if wait:
        page, status = _signin_page(
            429,
            error=f"Too many sign-in attempts. Please wait {wait} seconds and try again.",
        )
        return page, status, {"Retry-After": str(wait)}
    identity = _services().accounts.authenticate(name, password)
    if identity is None:
        return _signin_page(
            401,
            error="That name and password do not match an active account.",
            name=name,
        )
    _start_session(identity)
    return redirect(url_for("pages.index"))


def _start_session(identity: Identity) -> None:
    session.clear()  # a new session for the new person: no fixation
    session["user_id"] = identity.user_id


@bp.post("/signout")
def signout() -> Any:
    session.clear()
    return redirect(url_for("accounts.signin"))


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> Any:
    if not _services().settings.signup:
        return _refuse(404, "Sign-up is closed here.")
    if request.method == "GET":
        return _page("signup.html")
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        return _page("signup.html", 400, error="The two passwords differ.", name=name)
    try:
        identity = _services().accounts.add_user(name, password)
    except AccountError as error:
        return _page("signup.html", 400, error=str(error), name=name)
    _start_session(identity)
    return redirect(url_for("pages.index"))


# --- a person's own account -------------------------------------------------------------


def _account_page(status: int = 200, **context: Any) -> tuple[str, int]:
    identity = current_identity()
    return _page(
        "account.html",
        status,
        identity=identity,
        keys=_services().accounts.keys(identity.user_id),
        **context,
    )


@bp.get("/account")
def account() -> Any:
    return _account_page()


@bp.post("/account/keys")
def create_key() -> Any:
    label = request.form.get("label", "").strip()[:64]
    key = _services().accounts.create_key(current_identity().name, label)
    # Shown on this answer only: it is stored as a hash and cannot be shown again.
    return _account_page(201, new_key=key)


@bp.post("/account/keys/<int:key_id>/revoke")
def revoke_key(key_id: int) -> Any:
    _services().accounts.revoke_key_id(current_identity().user_id, key_id)
    return redirect(url_for("accounts.account"))


@bp.post("/account/results/delete")
def delete_results() -> Any:
    try:
        removed = _delete_stored(current_identity().prefix)
    except UnavailableError:
        return _account_page(503, error="The photo store is not available; nothing was deleted.")
    return _account_page(message=f"Deleted {removed} stored file{'s' * (removed != 1)}.")


@bp.post("/account/delete")
def delete_account() -> Any:
    identity = current_identity()
    if _services().accounts.authenticate(identity.name, request.form.get("password", "")) is None:
        return _account_page(400, error="Please type your password to delete your account.")
    try:
        _delete_stored(identity.prefix)
    except UnavailableError:
        return _account_page(503, error="The photo store is not available; nothing was deleted.")
    _services().accounts.delete_user(identity.user_id)
    session.clear()
    return _signin_page(message="Account deleted.")


# --- the administrator ------------------------------------------------------------------


def _admin_only() -> Identity | None:
    identity = current_identity()
    return identity if identity is not None and identity.is_admin else None


@bp.get("/admin")
def admin() -> Any:
    if _admin_only() is None:
        return _refuse(403, "Only an administrator sees this page.")
    return _page("admin.html", users=_services().accounts.users())


@bp.post("/admin/users/<name>/disable")
def disable_user(name: str) -> Any:
    if _admin_only() is None:
        return _refuse(403, "Only an administrator may do this.")
    try:
        _services().accounts.set_disabled(name)
    except AccountError as error:
        return _refuse(404, str(error))
    return redirect(url_for("accounts.admin"))
