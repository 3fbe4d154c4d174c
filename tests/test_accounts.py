"""The accounts core on SQLite and on a real PostgreSQL: schema, passwords, keys, limits."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from faceblur.accounts import (
    KEY_CACHE_SECONDS,
    AccountError,
    KeyChecker,
    RateLimiter,
    load_account_settings,
    make_engine,
    open_accounts,
    upgrade,
)

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_migrations_build_an_empty_database(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"users", "api_keys", "alembic_version"} <= tables
    columns = {c["name"] for c in inspect(engine).get_columns("users")}
    assert "images_processed" in columns
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0002"
    engine.dispose()


def test_migrations_upgrade_the_previous_schema_keeping_its_rows(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0001")
    assert "images_processed" not in {c["name"] for c in inspect(engine).get_columns("users")}
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (name, password_hash, storage_id, created_at) "
                "VALUES ('old', NULL, 'abc123', :now)"
            ),
            {"now": datetime.now(UTC)},
        )
    upgrade(engine)
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT name, storage_id, images_processed, disabled FROM users")
        ).one()
    assert tuple(row) == ("old", "abc123", 0, False)
    engine.dispose()


def test_passwords_are_argon2_hashes_and_only_the_right_one_signs_in(accounts):
    accounts.add_user("ann", PASSWORD)
    with accounts.engine.connect() as connection:
        stored = connection.scalar(text("SELECT password_hash FROM users"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.authenticate("ann", PASSWORD).name == "ann"
    assert accounts.authenticate("ann", PASSWORD + "x") is None
    assert accounts.authenticate("nobody", PASSWORD) is None
    accounts.set_disabled("ann")
    assert accounts.authenticate("ann", PASSWORD) is None


def test_names_are_unique_and_plain(accounts):
    accounts.add_user("ann", PASSWORD)
    with pytest.raises(AccountError) as taken:
        accounts.add_user("ann", PASSWORD)
    assert taken.value.code == "name_taken"
    for bad in ("", "../x", "a b", "x" * 65):
        with pytest.raises(AccountError):
            accounts.add_user(bad, PASSWORD)
    with pytest.raises(AccountError) as short:
        accounts.add_user("bob", "short")
    assert short.value.code == "short_password"


def test_keys_are_stored_hashed_and_stop_on_revocation(accounts):
    ann = accounts.add_user("ann", PASSWORD)
    key = accounts.create_key("ann", "laptop")
    with accounts.engine.connect() as connection:
        stored = [tuple(row) for row in connection.execute(text("SELECT * FROM api_keys"))]
    assert key not in repr(stored) and key[4:] not in repr(stored)
    assert accounts.identity_for_key(key) == ann
    assert accounts.identity_for_key(key + "x") is None
    (info,) = accounts.keys(ann.user_id)
    assert info.label == "laptop" and key.startswith(info.prefix) and not info.revoked
    assert accounts.revoke_key(key)
    assert accounts.identity_for_key(key) is None
    assert not accounts.revoke_key(key)


def test_a_disabled_users_keys_stop(accounts):
    accounts.add_user("ann", PASSWORD)
    key = accounts.create_key("ann")
    accounts.set_disabled("ann")
    assert accounts.identity_for_key(key) is None
    with pytest.raises(AccountError):
        accounts.create_key("ann")


def test_the_key_cache_forgets_a_revoked_key_within_its_bound(accounts):
    assert KEY_CACHE_SECONDS <= 5
    accounts.add_user("ann", PASSWORD)
    key = accounts.create_key("ann")
    clock = FakeClock()
    checker = KeyChecker(accounts, clock=clock)
    assert checker.identity(key).name == "ann"
    accounts.revoke_key(key)
    clock.now += KEY_CACHE_SECONDS / 2
    assert checker.identity(key) is not None  # still cached: the bound, not zero
    clock.now += KEY_CACHE_SECONDS / 2 + 0.01
    assert checker.identity(key) is None


def test_one_users_key_revoked_by_another_user_does_nothing(accounts):
    ann = accounts.add_user("ann", PASSWORD)
    bob = accounts.add_user("bob", PASSWORD)
    accounts.create_key("ann")
    (info,) = accounts.keys(ann.user_id)
    assert not accounts.revoke_key_id(bob.user_id, info.id)
    assert accounts.revoke_key_id(ann.user_id, info.id)


def test_deleting_a_user_removes_their_keys(accounts):
    ann = accounts.add_user("ann", PASSWORD)
    key = accounts.create_key("ann")
    accounts.delete_user(ann.user_id)
    assert accounts.identity_for_key(key) is None
    assert accounts.users() == []
    with accounts.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM api_keys")) == 0


def test_usage_is_counted_per_user(accounts):
    ann = accounts.add_user("ann", PASSWORD)
    accounts.add_user("bob", PASSWORD)
    accounts.count_processed(ann.user_id)
    accounts.count_processed(ann.user_id)
    usage = {info.identity.name: info.images_processed for info in accounts.users()}
    assert usage == {"ann": 2, "bob": 0}


def test_the_rate_limiter_refills_per_caller():
    clock = FakeClock()
    limiter = RateLimiter(per_minute=3, clock=clock)
    assert [limiter.retry_after("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("a") == 20  # one request per 20 s comes back
    assert limiter.retry_after("b") == 0
    clock.now += 20
    assert limiter.retry_after("a") == 0


def test_settings_default_to_off_and_sqlite_under_local():
    settings = load_account_settings({}, secrets_dir="/nonexistent")
    assert not settings.enabled and not settings.signup
    assert settings.database_url.endswith("/.local/faceblur.db")
    settings = load_account_settings(
        {"FACEBLUR_AUTH": "on", "FACEBLUR_DATABASE_URL": "postgresql+psycopg://h/db"},
        secrets_dir="/nonexistent",
    )
    assert settings.enabled and settings.database_url == "postgresql+psycopg://h/db"


def _admin(args: list[str], url: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "faceblur.cli.admin", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "FACEBLUR_DATABASE_URL": url},
        timeout=120,
        check=False,
    )


def test_the_admin_command_round_trip(database_url):
    assert (
        _admin(["user", "add", "ann", "--password-stdin"], database_url, PASSWORD + "\n").returncode
        == 0
    )
    created = _admin(["key", "create", "ann"], database_url)
    assert created.returncode == 0
    key = created.stdout.strip()
    assert created.stdout == key + "\n" and key.startswith("fbk_")  # the key alone
    accounts = open_accounts(database_url)
    assert accounts.identity_for_key(key).name == "ann"
    assert accounts.authenticate("ann", PASSWORD) is not None
    assert _admin(["key", "revoke", key], database_url).returncode == 0
    assert accounts.identity_for_key(key) is None
    assert _admin(["key", "revoke", key], database_url).returncode == 1
    second = _admin(["key", "create", "ann"], database_url).stdout.strip()
    assert _admin(["user", "disable", "ann"], database_url).returncode == 0
    assert accounts.identity_for_key(second) is None
    failed = _admin(["user", "disable", "nobody"], database_url)
    assert failed.returncode == 1 and "nobody" in failed.stderr and "[no_user]" in failed.stderr
    accounts.engine.dispose()


def test_the_admin_command_is_a_console_script():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["faceblur-admin"] == "faceblur.cli.admin:main"


def test_removing_an_owners_objects_needs_a_whole_prefix(s3_server):
    from faceblur.accounts import remove_owned
    from faceblur.store.keys import owner_prefix

    s3_server.empty_buckets()
    store = s3_server.store()
    mine, other = owner_prefix("a1"), owner_prefix("a10")
    for prefix in (mine, other):
        store.put("originals", f"{prefix}x.jpg", b"o", "image/jpeg")
        store.put("results", f"{prefix}x/y.jpg", b"r", "image/jpeg")
    with pytest.raises(ValueError):
        remove_owned(store, "u/a1")  # would also empty u/a10/
    assert remove_owned(store, mine) == 2
    assert s3_server.snapshot()["results"] == [f"{other}x/y.jpg"]
    assert s3_server.snapshot()["originals"] == [f"{other}x.jpg"]
