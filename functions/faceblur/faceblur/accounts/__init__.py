"""Accounts: users with Argon2 passwords, hashed API keys, the key check and rate limits.

Used without Flask by the function (key check, owner, rate limit), by the page's
`frontend/accounts.py` blueprint and by `faceblur-admin`. One database for all three:
`FACEBLUR_DATABASE_URL` (a secret in the cluster: PostgreSQL), by default SQLite in
`.local/faceblur.db` under the directory the stack runs from. Alembic migrations in
`migrations/` bring any database to the current schema at start-up (`open_accounts`).

A person's results live in S3 under `u/<storage_id>/`, a random id that is never
reused: ownership is the key prefix, so listing, presigning and deleting a person's
results never touches anyone else's.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.orm import Session

# config's own readers, so a variable is parsed and reported the same way everywhere.
from faceblur.config import SECRETS_DIR, _bool, _positive_int, read_secret
from faceblur.errors import BadRequestError
from faceblur.store.keys import owner_prefix
from faceblur.store.s3 import Store

from .models import ApiKey, User

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_SQLITE = Path(".local") / "faceblur.db"
# A revoked key or a disabled user stops working within this many seconds.
KEY_CACHE_SECONDS = 4.0
KEY_CACHE_MAX_ENTRIES = 10_000
KEY_PREFIX = "fbk_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# Unrevoked keys one person may hold: the rate limit counts per person, and a list of
# keys nobody can keep track of is a list of leaks waiting to happen.
MAX_KEYS_PER_USER = 10
BACKOFF_MAX_CALLERS = 100_000

_hasher = PasswordHasher()
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(BadRequestError, code="account"):
    """A request about accounts that cannot be done; the message is for people, the code
    for programs: `bad_name`, `short_password`, `name_taken`, `no_user`, `no_key`."""


@dataclass(frozen=True)
class AccountSettings:
    enabled: bool
    signup: bool
    rate_per_minute: int
    database_url: str
    internal_token: str | None


def load_account_settings(
    environ: Mapping[str, str] | None = None, secrets_dir: str | Path = SECRETS_DIR
) -> AccountSettings:
    environ = os.environ if environ is None else environ
    url = read_secret("faceblur-database-url", environ, secrets_dir)
    return AccountSettings(
        enabled=_bool(environ, "FACEBLUR_AUTH"),
        signup=_bool(environ, "FACEBLUR_SIGNUP"),
        rate_per_minute=_positive_int(environ, "FACEBLUR_RATE_LIMIT_PER_MINUTE"),
        database_url=url or f"sqlite:///{DEFAULT_SQLITE.resolve()}",
        internal_token=read_secret("faceblur-internal-token", environ, secrets_dir),
    )


# -- the database ---------------------------------------------------------------------


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _foreign_keys(connection, _record) -> None:  # SQLite leaves them off by default
            connection.execute("PRAGMA foreign_keys=ON")

        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` with Alembic (an empty one gets every table)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_accounts(url: str) -> Accounts:
    """The accounts in the database at `url`, migrated to the current schema."""
    engine = make_engine(url)
    upgrade(engine)
    return Accounts(engine)


def hash_key(key: str) -> str:
    # A key has 256 random bits: a fast hash is enough (no dictionary to guard against).
    return hashlib.sha256(key.encode()).hexdigest()


def remove_owned(store: Store, prefix: str) -> int:
    """Remove everything stored for an owner's `prefix`: results, originals, what waits in
    the inbox, and their video jobs (status, tracks, edits); how many objects went.

    Their video jobs first (each status names its owner inside): a render still running
    then finds its inbox copy gone and keeps nothing, and what it wrote before is listed
    below. Then results: a result without its original is never left for a reader to find.
    """
    if not prefix.endswith("/"):
        raise ValueError("an owner's prefix ends with '/': nothing else may be emptied")
    settings = store.settings
    removed = store.remove_jobs(lambda status: status.get("prefix") == prefix)
    for bucket in (settings.bucket_results, settings.bucket_originals, settings.bucket_inbox):
        for key in store.keys(bucket, prefix=prefix):
            store.remove(bucket, key)
            removed += 1
    return removed


@dataclass(frozen=True)
class Identity:
    """Who a request acts for."""

    user_id: int
    name: str
    storage_id: str
    is_admin: bool = False
    # The user's session version when this was read (page sessions carry it).
    session_version: int = 0

    @property
    def prefix(self) -> str:
        return owner_prefix(self.storage_id)


@dataclass(frozen=True)
class KeyInfo:
    id: int
    prefix: str
    label: str
    created_at: datetime
    revoked: bool


@dataclass(frozen=True)
class UserInfo:
    identity: Identity
    disabled: bool
    created_at: datetime
    images_processed: int
    active_keys: int


def _identity(user: User) -> Identity:
    return Identity(user.id, user.name, user.storage_id, user.is_admin, user.session_version)


def _check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise AccountError(
            "A name is 1 to 64 letters, digits, dots, dashes or underscores, "
            "starting with a letter or digit.",
            "bad_name",
        )
    return name


def _check_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password or "") <= MAX_PASSWORD_LENGTH:
        raise AccountError(
            f"A password has at least {MIN_PASSWORD_LENGTH} characters.", "short_password"
        )
    return password


class Accounts:
    """Every accounts operation, each in its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # users

    def add_user(self, name: str, password: str | None, is_admin: bool = False) -> Identity:
        _check_name(name)
        password_hash = _hasher.hash(_check_password(password)) if password is not None else None
        with self._session() as session, session.begin():
            if session.scalar(select(User).where(User.name == name)) is not None:
                raise AccountError(f"The name {name!r} is taken.", "name_taken")
            user = User(
                name=name,
                password_hash=password_hash,
                storage_id=secrets.token_hex(16),
                is_admin=is_admin,
                disabled=False,
                created_at=datetime.now(UTC),
                images_processed=0,
                session_version=0,
            )
            session.add(user)
            session.flush()
            return _identity(user)

    def authenticate(self, name: str, password: str) -> Identity | None:
        """The active user with this name and password, else None (same cost either way)."""
        with self._session() as session:
            user = session.scalar(select(User).where(User.name == name))
        stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or not user.password_hash or user.disabled:
            return None
        return _identity(user)

    def user(self, name: str) -> Identity | None:
        """The active user called `name`."""
        with self._session() as session:
            user = session.scalar(select(User).where(User.name == name, User.disabled.is_(False)))
            return _identity(user) if user is not None else None

    def active_user(self, user_id: int) -> Identity | None:
        with self._session() as session:
            user = session.get(User, user_id)
            return _identity(user) if user is not None and not user.disabled else None

    def end_sessions(self, user_id: int) -> None:
        """Every page session of the user stops working (signing out ends them all)."""
        with self._session() as session, session.begin():
            session.execute(
                update(User)
                .where(User.id == user_id)
                .values(session_version=User.session_version + 1)
            )

    def change_password(self, user_id: int, current: str, new: str) -> Identity:
        """A new password for an active user who knows the current one; every earlier
        session ends. The Identity returned carries the new session version."""
        _check_password(new)
        with self._session() as session:
            user = session.get(User, user_id)
        if user is None or user.disabled or self.authenticate(user.name, current) is None:
            raise AccountError("The current password is not right.", "wrong_password")
        with self._session() as session, session.begin():
            session.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    password_hash=_hasher.hash(new),
                    session_version=User.session_version + 1,
                )
            )
        changed = self.active_user(user_id)
        if changed is None:  # disabled or deleted meanwhile
            raise AccountError("There is no such active user.", "no_user")
        return changed

    def set_disabled(self, name: str) -> None:
        with self._session() as session, session.begin():
            changed = session.execute(
                update(User).where(User.name == name).values(disabled=True)
            ).rowcount
        if not changed:
            raise AccountError(f"There is no user {name!r}.", "no_user")

    def delete_user(self, user_id: int) -> None:
        """The user and their keys (their results are the caller's to remove from S3)."""
        with self._session() as session, session.begin():
            user = session.get(User, user_id)
            if user is not None:
                session.query(ApiKey).filter(ApiKey.user_id == user_id).delete()
                session.delete(user)

    def count_processed(self, user_id: int) -> None:
        with self._session() as session, session.begin():
            session.execute(
                update(User)
                .where(User.id == user_id)
                .values(images_processed=User.images_processed + 1)
            )

    def users(self) -> list[UserInfo]:
        with self._session() as session:
            active = (
                select(ApiKey.user_id, func.count().label("n"))
                .where(ApiKey.revoked_at.is_(None))
                .group_by(ApiKey.user_id)
                .subquery()
            )
            rows = session.execute(
                select(User, active.c.n)
                .outerjoin(active, active.c.user_id == User.id)
                .order_by(User.name)
            ).all()
            return [
                UserInfo(_identity(u), u.disabled, u.created_at, u.images_processed, n or 0)
                for u, n in rows
            ]

    # keys

    def create_key(self, name: str, label: str = "") -> str:
        """A new API key for the active user `name`: returned once, stored as its hash."""
        user = self.user(name)
        if user is None:
            raise AccountError(f"There is no active user {name!r}.", "no_user")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._session() as session, session.begin():
            held = session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(ApiKey.user_id == user.user_id, ApiKey.revoked_at.is_(None))
            )
            if held >= MAX_KEYS_PER_USER:
                raise AccountError(
                    f"You have {MAX_KEYS_PER_USER} keys, the most one person may hold. "
                    "Revoke one you no longer use first.",
                    "too_many_keys",
                )
            session.add(
                ApiKey(
                    user_id=user.user_id,
                    key_hash=hash_key(key),
                    prefix=key[: len(KEY_PREFIX) + 6],
                    label=label[:64],
                    created_at=datetime.now(UTC),
                )
            )
        return key

    def revoke_key(self, key: str) -> bool:
        """Revoke the key itself; False when no unrevoked key matches."""
        with self._session() as session, session.begin():
            return bool(
                session.execute(
                    update(ApiKey)
                    .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
                    .values(revoked_at=datetime.now(UTC))
                ).rowcount
            )

    def revoke_key_id(self, user_id: int, key_id: int) -> bool:
        """Revoke one of `user_id`'s keys by its id (as the page lists them)."""
        with self._session() as session, session.begin():
            return bool(
                session.execute(
                    update(ApiKey)
                    .where(
                        ApiKey.id == key_id,
                        ApiKey.user_id == user_id,
                        ApiKey.revoked_at.is_(None),
                    )
                    .values(revoked_at=datetime.now(UTC))
                ).rowcount
            )

    def keys(self, user_id: int) -> list[KeyInfo]:
        with self._session() as session:
            rows = session.scalars(
                select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id)
            )
            return [
                KeyInfo(k.id, k.prefix, k.label, k.created_at, k.revoked_at is not None)
                for k in rows
            ]

    def identity_for_key(self, key: str) -> Identity | None:
        """The active user whose unrevoked key this is, else None."""
        with self._session() as session:
            user = session.scalars(
                select(User)
                .join(ApiKey, ApiKey.user_id == User.id)
                .where(
                    ApiKey.key_hash == hash_key(key),
                    ApiKey.revoked_at.is_(None),
                    User.disabled.is_(False),
                )
            ).first()
        return _identity(user) if user is not None else None


class KeyChecker:
    """`Accounts.identity_for_key` behind a short cache: one query per key per few seconds.

    The cache is why a revoked key or a disabled user stops working within
    KEY_CACHE_SECONDS rather than at once; unknown keys are cached too, so guessing
    costs the database nothing more.
    """

    def __init__(
        self, accounts: Accounts, ttl: float = KEY_CACHE_SECONDS, clock=time.monotonic
    ) -> None:
        self.accounts = accounts
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self._lock = threading.Lock()

    def _cached(self, cache_key: str, lookup) -> Identity | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        identity = lookup()
        with self._lock:
            if len(self._cache) >= KEY_CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[cache_key] = (now + self.ttl, identity)
        return identity

    def identity(self, key: str) -> Identity | None:
        return self._cached("k:" + hash_key(key), lambda: self.accounts.identity_for_key(key))

    def owner(self, name: str) -> Identity | None:
        """The active user `name` (the page acting for its signed-in person)."""
        return self._cached("u:" + name, lambda: self.accounts.user(name))


class RateLimiter:
    """A token bucket per caller: `count` requests a period (a minute unless told),
    bursts up to that many.

    In memory, per process: each replica counts on its own.
    """

    def __init__(self, per_minute: int, clock=time.monotonic, period_seconds: float = 60.0) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / period_seconds
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, caller: str) -> int:
        """0 and one request counted when `caller` may go on; else whole seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.refill_per_second)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0
            self._buckets[caller] = (tokens, now)
            return max(1, int((1 - tokens) / self.refill_per_second + 0.999))


class Backoff:
    """Failed attempts per caller: the first `free` cost nothing, each further one doubles
    the wait before the next (from `first_wait` up to `max_wait` seconds); a success
    forgets them. A wait always ends: a caller is slowed, never locked out.

    In memory, per process, at most BACKOFF_MAX_CALLERS callers (those whose wait is over
    are dropped first).
    """

    def __init__(
        self,
        free: int = 5,
        first_wait: float = 1.0,
        max_wait: float = 900.0,
        clock=time.monotonic,
    ) -> None:
        self.free = free
        self.first_wait = first_wait
        self.max_wait = max_wait
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # caller -> (failures, wait until)
        self._lock = threading.Lock()

    def retry_after(self, caller: str) -> int:
        """Whole seconds `caller` must still wait; 0 when they may try now."""
        with self._lock:
            _, until = self._failures.get(caller, (0, 0.0))
        left = until - self._clock()
        return int(left + 0.999) if left > 0 else 0

    def failed(self, caller: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) >= BACKOFF_MAX_CALLERS:
                self._drop_waited(now)
            failures = self._failures.get(caller, (0, 0.0))[0] + 1
            over = failures - self.free
            wait = min(self.max_wait, self.first_wait * 2 ** (over - 1)) if over > 0 else 0.0
            self._failures[caller] = (failures, now + wait)

    def succeeded(self, caller: str) -> None:
        with self._lock:
            self._failures.pop(caller, None)

    def _drop_waited(self, now: float) -> None:
        for caller in [c for c, (_, until) in self._failures.items() if until <= now]:
            del self._failures[caller]
        if len(self._failures) >= BACKOFF_MAX_CALLERS:
            self._failures.clear()
