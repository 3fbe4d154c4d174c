"""Where the accounts live: their settings, the database (SQLite or PostgreSQL) and its
Alembic migrations (`migrations/`), run at start-up by `open_accounts`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

# config's own readers, so a variable is parsed and reported the same way everywhere.
from faceblur.config import SECRETS_DIR, _bool, _positive_int, read_secret

from .users import Accounts

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_SQLITE = Path(".local") / "faceblur.db"


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
