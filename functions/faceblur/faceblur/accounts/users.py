"""Users with Argon2 passwords and their hashed API keys: every operation on them, each in
its own short transaction, and who a request acts for (`Identity`)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from faceblur.errors import BadRequestError
from faceblur.store.keys import owner_prefix

from .models import ApiKey, User

KEY_PREFIX = "fbk_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
# Unrevoked keys one person may hold: the rate limit counts per person, and a list of
# keys nobody can keep track of is a list of leaks waiting to happen.
MAX_KEYS_PER_USER = 10

_hasher = PasswordHasher()
# Verified when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(BadRequestError, code="account"):
    """A request about accounts that cannot be done; the message is for people, the code
    for programs: `bad_name`, `short_password`, `name_taken`, `no_user`, `no_key`."""


def hash_key(key: str) -> str:
    # A key has 256 random bits: a fast hash is enough (no dictionary to guard against).
    return hashlib.sha256(key.encode()).hexdigest()


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
