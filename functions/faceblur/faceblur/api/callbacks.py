"""Where the async route may post a call's answer (X-Callback-Url).

In the cluster OpenFaaS's queue worker posts the answer to X-Callback-Url; the handler
and the local runner refuse any host and port the operator did not list
(FACEBLUR_CALLBACK_HOSTS, read by faceblur.config), so a caller cannot make the function
post photos or results to services behind it, nor to another port of a listed host.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from faceblur.errors import BadRequestError

# The code of a refused X-Callback-Url (the runner's own answer carries it too).
CALLBACK_CODE = "callback_not_allowed"
# The ports a listed bare host may be called on: the web's own. Any other port must be
# listed with its host ("hooks.example.org:8443"), which then allows that port alone.
WEB_PORTS = {"http": 80, "https": 443}


def callback_refusal(url: str, allowed_hosts: Collection[str]) -> str | None:
    """Why `url` may not receive a callback, or None when it may.

    An entry `host` allows http on 80 and https on 443; `host:port` allows that port.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "X-Callback-Url is not a URL"
    if parts.scheme not in WEB_PORTS or not host:
        return "X-Callback-Url must be an http(s) URL"
    if host not in allowed_hosts and not any(
        entry.rpartition(":")[0] == host for entry in allowed_hosts
    ):
        return (
            f"X-Callback-Url host {host[:100]!r} is not allowed: the operator lists the "
            "hosts callbacks may go to in FACEBLUR_CALLBACK_HOSTS"
        )
    port = port if port is not None else WEB_PORTS[parts.scheme]
    on_web_port = port == WEB_PORTS[parts.scheme] and host in allowed_hosts
    if not on_web_port and f"{host}:{port}" not in allowed_hosts:
        return (
            f"X-Callback-Url port {port} is not allowed for {host[:100]!r}: a listed host "
            f"takes {parts.scheme} on port {WEB_PORTS[parts.scheme]} only, unless "
            "FACEBLUR_CALLBACK_HOSTS lists it as host:port"
        )
    return None


def check_callback(url: str | None, allowed_hosts: Collection[str]) -> None:
    """BadRequestError when a call names an X-Callback-Url whose host and port are not listed.

    The queue worker passes the header on to the function and posts the answer there:
    refusing the call keeps photos and results away from unlisted hosts (the worker still
    posts this error there; the queue worker's NetworkPolicy, k8s/network-policies.yaml,
    stops that post in the cluster).
    """
    refusal = callback_refusal(url, allowed_hosts) if url else None
    if refusal:
        raise BadRequestError(refusal, CALLBACK_CODE)
