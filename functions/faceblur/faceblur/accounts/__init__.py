"""Accounts: users with Argon2 passwords, hashed API keys, the key check and rate limits.

Used without Flask by the function (key check, owner, rate limit), by the page's
`frontend/accounts.py` blueprint and by `faceblur-admin`. One database for all three:
`FACEBLUR_DATABASE_URL` (a secret in the cluster: PostgreSQL), by default SQLite in
`.local/faceblur.db` under the directory the stack runs from. Alembic migrations in
`migrations/` bring any database to the current schema at start-up (`open_accounts`).

A person's results live in S3 under `u/<storage_id>/`, a random id that is never
reused: ownership is the key prefix, so listing, presigning and deleting a person's
results never touches anyone else's.

This module is the package's face: callers import from `faceblur.accounts`. The code is
in `users` (users, passwords, API keys: `Accounts`, `Identity`), `database` (settings,
engine, migrations, `open_accounts`), `guards` (`KeyChecker`, `RateLimiter`, `Backoff`),
`owned` (`remove_owned`) and `models` (the tables).
"""

from .database import (
    DEFAULT_SQLITE,
    MIGRATIONS,
    AccountSettings,
    load_account_settings,
    make_engine,
    open_accounts,
    upgrade,
)
from .guards import (
    BACKOFF_MAX_CALLERS,
    KEY_CACHE_MAX_ENTRIES,
    KEY_CACHE_SECONDS,
    Backoff,
    KeyChecker,
    RateLimiter,
)
from .owned import remove_owned
from .users import (
    KEY_PREFIX,
    MAX_KEYS_PER_USER,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    NAME_PATTERN,
    AccountError,
    Accounts,
    Identity,
    KeyInfo,
    UserInfo,
    hash_key,
)

__all__ = [
    "BACKOFF_MAX_CALLERS",
    "DEFAULT_SQLITE",
    "KEY_CACHE_MAX_ENTRIES",
    "KEY_CACHE_SECONDS",
    "KEY_PREFIX",
    "MAX_KEYS_PER_USER",
    "MAX_PASSWORD_LENGTH",
    "MIGRATIONS",
    "MIN_PASSWORD_LENGTH",
    "NAME_PATTERN",
    "AccountError",
    "AccountSettings",
    "Accounts",
    "Backoff",
    "Identity",
    "KeyChecker",
    "KeyInfo",
    "RateLimiter",
    "UserInfo",
    "hash_key",
    "load_account_settings",
    "make_engine",
    "open_accounts",
    "remove_owned",
    "upgrade",
]
