"""Accounts on the page (FACEBLUR_AUTH=on): sign up, sign in and out, keys, deletion, admin.

The rules live in `faceblur.accounts`; this blueprint only shows them. Where accounts
are on, every page but sign-in/sign-up needs a signed-in person, each person sees only
the results under their own prefix, and the page calls the function for them with the
internal token (the function checks the person is still active).
"""

from __future__ import annotations

import secrets
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
from itsdangerous import BadSignature, URLSafeTimedSerializer

from faceblur.accounts import (
    AccountError,
    Accounts,
    AccountSettings,
    Backoff,
    Identity,
    open_accounts,
)
from faceblur.config import ConfigError, is_loopback_endpoint
from faceblur.errors import UnavailableError

# Failed sign-ins back off per address and per name: the first few are free, then each
# doubles the wait (1 s, 2 s, 4 s, ... at most 15 minutes), which slows guessing to a crawl
# while a person who mistypes a few times is not held up. A browser that signed in to a
# name before carries a signed device cookie and does not wait for that name's failures
# from elsewhere: someone guessing a name cannot lock its owner out.
DEVICE_COOKIE = "faceblur_device"
DEVICE_COOKIE_DAYS = 90
# Pages anyone may open while signed out.
PUBLIC_ENDPOINTS = {"accounts.signin", "accounts.signup", "pages.healthz", "static"}

bp = Blueprint("accounts", __name__)


@dataclass
class AccountServices:
    settings: AccountSettings
    accounts: Accounts
    signin_backoff: Backoff


def init_accounts(app: Flask, settings: AccountSettings) -> None:
    """Turn accounts on for `app`: the blueprint, the sign-in gate, Secure cookies."""
    if not settings.internal_token:
        raise ConfigError(
            "FACEBLUR_AUTH=on: the page needs the secret faceblur-internal-token "
            "(or FACEBLUR_INTERNAL_TOKEN) to call the function for its signed-in people"
        )
    app.extensions["faceblur-accounts"] = AccountServices(
        settings, open_accounts(settings.database_url), Backoff()
    )
    app.session_interface = _LoopbackAwareSessions()
    app.register_blueprint(bp)
    app.before_request(_require_signed_in)
    app.context_processor(lambda: {"account_user": current_identity(), "accounts_on": True})


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
        identity = _services().accounts.active_user(user_id) if user_id else None
        # A cookie from before a sign-out or a password change carries an older version.
        if identity is not None and session.get("version") != identity.session_version:
            identity = None
        g.identity = identity
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
    backoff = _services().signin_backoff
    device = _device_id(name)
    # A known browser backs off on its own failures only, not on the name's.
    callers = [f"addr:{request.remote_addr}", f"device:{device}" if device else f"name:{name}"]
    wait = max(backoff.retry_after(caller) for caller in callers)
    if wait:
        page, status = _signin_page(
            429,
            error=f"Too many failed sign-ins. Please wait {wait} seconds and try again.",
            name=name,
        )
        return page, status, {"Retry-After": str(wait)}
    identity = _services().accounts.authenticate(name, password)
    if identity is None:
        for caller in callers:
            backoff.failed(caller)
        return _signin_page(
            401,
            error="That name and password do not match an active account.",
            name=name,
        )
    for caller in callers:
        backoff.succeeded(caller)
    _start_session(identity)
    response = redirect(url_for("pages.index"))
    _remember_device(response, identity.name, device)
    return response


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="faceblur-device")


def _device_id(name: str) -> str | None:
    """This browser's id, if it signed in to `name` before (a cookie we signed)."""
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return None
    try:
        known = _devices().loads(cookie, max_age=DEVICE_COOKIE_DAYS * 86400)
    except BadSignature:
        return None
    if not isinstance(known, dict) or known.get("name") != name:
        return None
    device = known.get("id")
    return device if isinstance(device, str) else None


def _remember_device(response: Any, name: str, device: str | None) -> None:
    value = _devices().dumps({"name": name, "id": device or secrets.token_urlsafe(16)})
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_COOKIE_DAYS * 86400,
        httponly=True,
        samesite="Lax",
        secure=current_app.session_interface.get_cookie_secure(current_app),
    )


def _start_session(identity: Identity) -> None:
    session.clear()  # a new session for the new person: no fixation
    session["user_id"] = identity.user_id
    session["version"] = identity.session_version


@bp.post("/signout")
def signout() -> Any:
    identity = current_identity()
    if identity is not None:
        # Every cookie of this person stops working, a copied one included.
        _services().accounts.end_sessions(identity.user_id)
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
    try:
        key = _services().accounts.create_key(current_identity().name, label)
    except AccountError as error:
        return _account_page(400, error=str(error))
    # Shown on this answer only: it is stored as a hash and cannot be shown again.
    return _account_page(201, new_key=key)


@bp.post("/account/keys/<int:key_id>/revoke")
def revoke_key(key_id: int) -> Any:
    _services().accounts.revoke_key_id(current_identity().user_id, key_id)
    return redirect(url_for("accounts.account"))


@bp.post("/account/password")
def change_password() -> Any:
    new = request.form.get("new_password", "")
    if new != request.form.get("new_password_again", ""):
        return _account_page(400, error="The two new passwords differ.")
    # A borrowed session must not become a way to guess the password: the same back-off.
    backoff, caller = _services().signin_backoff, f"password:{current_identity().user_id}"
    wait = backoff.retry_after(caller)
    if wait:
        return _account_page(429, error=f"Too many wrong passwords. Please wait {wait} seconds.")
    try:
        identity = _services().accounts.change_password(
            current_identity().user_id, request.form.get("password", ""), new
        )
    except AccountError as error:
        if error.code == "wrong_password":
            backoff.failed(caller)
        return _account_page(400, error=str(error))
    backoff.succeeded(caller)
    # Every other session has ended; this one goes on under the new version.
    _start_session(identity)
    g.identity = identity
    return _account_page(message="Password changed. You are signed out everywhere else.")


@bp.get("/account/results/delete")
def confirm_delete_results() -> Any:
    """Ask before deleting everything, as a single delete asks: a click never does it alone."""
    return _page("delete_all.html", deleted=False)


@bp.post("/account/results/delete")
def delete_results() -> Any:
    if request.form.get("confirm") != "yes":  # an old form or a stray post: ask first
        return _page("delete_all.html", deleted=False)
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
