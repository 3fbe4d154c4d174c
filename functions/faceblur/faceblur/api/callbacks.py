"""Where the async route may post a call's answer (X-Callback-Url).

In the cluster OpenFaaS's queue worker posts the answer to X-Callback-Url; the handler
and the local runner refuse any host the operator did not list (FACEBLUR_CALLBACK_HOSTS,
read by faceblur.config), so a caller cannot make the function post photos or results to
services behind it.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from faceblur.errors import BadRequestError

# The code of a refused X-Callback-Url (the runner's own answer carries it too).
CALLBACK_CODE = "callback_not_allowed"


def callback_refusal(url: str, allowed_hosts: Collection[str]) -> str | None:
    """Why `url` may not receive a callback, or None when it may."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "X-Callback-Url is not a URL"
    if parts.scheme not in ("http", "https") or not host:
        return "X-Callback-Url must be an http(s) URL"
    if host not in allowed_hosts:
        return (
            f"X-Callback-Url host {host[:100]!r} is not allowed: the operator lists the "
            "hosts callbacks may go to in FACEBLUR_CALLBACK_HOSTS"
        )
    return None


def check_callback(url: str | None, allowed_hosts: Collection[str]) -> None:
    """BadRequestError when a call names an X-Callback-Url whose host is not listed.

    The queue worker passes the header on to the function and posts the answer there:
    refusing the call keeps photos and results away from unlisted hosts (the worker still
    posts this error there; only a network policy stops that post).
    """
    refusal = callback_refusal(url, allowed_hosts) if url else None
    if refusal:
        raise BadRequestError(refusal, CALLBACK_CODE)
