"""Accounts databases for tests: SQLite in a temporary folder and a real PostgreSQL.

Loaded by conftest.py. `postgres_server` (session) is functions/local/pg_server.py's
server on a free loopback port; `database_url` is a fresh empty database, once on
SQLite and once on PostgreSQL (tests using it run on both); `accounts` is
`faceblur.accounts.Accounts` on it, migrated. `auth_stack` (session) is the function
with FACEBLUR_AUTH=on against the session's S3 server and a SQLite accounts database.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pg_server import PostgresServer, start_postgres

from faceblur.accounts import Accounts, open_accounts
from stack_fixtures import start_function

_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'accounts.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{next(_numbers)}")


@pytest.fixture
def accounts(database_url: str) -> Iterator[Accounts]:
    opened = open_accounts(database_url)
    yield opened
    opened.engine.dispose()


# Requests a minute per key in the stack below: small, so the limit is reached in a test.
AUTH_RATE_PER_MINUTE = 4


@dataclass
class AuthStack:
    """The function with accounts on, its database and the page's internal token."""

    url: str
    database_url: str
    internal_token: str
    accounts: Accounts

    @property
    def env(self) -> dict[str, str]:
        return {
            "FACEBLUR_AUTH": "on",
            "FACEBLUR_DATABASE_URL": self.database_url,
            "FACEBLUR_INTERNAL_TOKEN": self.internal_token,
            "FACEBLUR_RATE_LIMIT_PER_MINUTE": str(AUTH_RATE_PER_MINUTE),
        }


@pytest.fixture(scope="session")
def auth_stack(s3_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    folder = tmp_path_factory.mktemp("auth")
    url = f"sqlite:///{folder / 'accounts.db'}"
    stack = AuthStack("", url, secrets.token_urlsafe(32), open_accounts(url))
    function = start_function(s3_server, folder / "runner.log", stack.env)
    stack.url = function.url
    try:
        yield stack
    finally:
        function.stop()
        stack.accounts.engine.dispose()
