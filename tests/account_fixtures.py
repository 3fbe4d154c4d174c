"""Accounts databases for tests: SQLite in a temporary folder and a real PostgreSQL.

Loaded by conftest.py. `postgres_server` (session) is functions/local/pg_server.py's
server on a free loopback port; `database_url` is a fresh empty database, once on
SQLite and once on PostgreSQL (tests using it run on both); `accounts` is
`faceblur.accounts.Accounts` on it, migrated.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from pg_server import PostgresServer, start_postgres

from faceblur.accounts import Accounts, open_accounts

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
