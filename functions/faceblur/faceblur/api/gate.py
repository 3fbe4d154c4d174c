"""Who may ask the function for an anonymisation where accounts are on (FACEBLUR_AUTH=on).

A caller shows `Authorization: Bearer <API key>`; the page shows the internal token and
names its signed-in person in `X-Faceblur-Owner`. Either way the person must be active:
the KeyChecker's short cache bounds how long a revoked key keeps working. Bucket events
come from the S3 server, not from people: they never pass this gate, but carry the
webhook token instead (`from_notifier`), with or without accounts.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from sqlalchemy.exc import SQLAlchemyError

from faceblur.accounts import (
    AccountSettings,
    Identity,
    KeyChecker,
    RateLimiter,
    open_accounts,
)
from faceblur.errors import RateLimitedError, UnauthorizedError, UnavailableError

log = logging.getLogger(__name__)


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of `Authorization: Bearer <token>`; "" without one."""
    scheme, _, token = (headers.get("Authorization", "") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def from_notifier(headers: Mapping[str, str], webhook_token: str | None) -> bool:
    """Whether the request carries the S3 server's webhook token (MinIO sends it as
    `Authorization: Bearer <MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>>`). No token set: never."""
    token = bearer_token(headers)
    if not webhook_token or not token:
        return False
    return hmac.compare_digest(token.encode(), webhook_token.encode())


class Gate:
    """The accounts database behind a key cache and a rate limit per person."""

    def __init__(self, settings: AccountSettings) -> None:
        self.settings = settings
        self.accounts = open_accounts(settings.database_url)
        self.checker = KeyChecker(self.accounts)
        self.limiter = RateLimiter(settings.rate_per_minute)

    def caller(self, headers: Mapping[str, str], limited: bool = True) -> Identity:
        """The person this request acts for; 401 without a valid key, 429 over the limit.

        `limited=False` for polling a job's status: a page polls every second or two, and
        that must not use up what the person may ask of the detector.
        """
        token = bearer_token(headers)
        if not token:
            raise UnauthorizedError("an API key is required: Authorization: Bearer <key>")
        internal = self.settings.internal_token
        try:
            if internal and hmac.compare_digest(token.encode(), internal.encode()):
                identity = self.checker.owner(headers.get("X-Faceblur-Owner", "") or "")
            else:
                identity = self.checker.identity(token)
        except SQLAlchemyError as error:
            raise UnavailableError("accounts database unavailable") from error
        if identity is None:
            raise UnauthorizedError("this API key is not valid (unknown, revoked or disabled)")
        # Counted per person, whatever door or key they come through: more keys are no
        # more requests.
        wait = self.limiter.retry_after(f"user:{identity.user_id}") if limited else 0
        if wait:
            raise RateLimitedError(f"rate limit reached; retry after {wait} s", wait)
        return identity

    def count(self, identity: Identity) -> None:
        """One more request done for `identity` (its usage figures)."""
        try:
            self.accounts.count_processed(identity.user_id)
        except SQLAlchemyError:  # usage figures must not fail a finished request
            log.exception("usage of user %s not counted", identity.user_id)


def open_gate(settings: AccountSettings) -> Gate | None:
    """The gate where accounts are on, None where they are off; 503 without the database."""
    if not settings.enabled:
        return None
    try:
        return Gate(settings)
    except SQLAlchemyError as error:
        raise UnavailableError("accounts database unavailable") from error
