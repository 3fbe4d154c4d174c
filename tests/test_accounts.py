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
    MAX_KEYS_PER_USER,
    AccountError,
    AccountSettings,
    Backoff,
    KeyChecker,
    RateLimiter,
    load_account_settings,
    make_engine,
    open_accounts,
    upgrade,
)
from faceblur.api.gate import Gate
from faceblur.errors import RateLimitedError

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
    assert {"images_processed", "session_version"} <= columns
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0003"
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
            text("SELECT name, storage_id, images_processed, disabled, session_version FROM users")
        ).one()
    assert tuple(row) == ("old", "abc123", 0, False, 0)
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


def test_the_rate_limiter_counts_over_any_period():
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, period_seconds=3600)
    assert [limiter.retry_after("a") for _ in range(3)] == [0, 0, 1800]
    clock.now += 1800
    assert limiter.retry_after("a") == 0


def test_keys_are_capped_per_user(accounts):
    """More keys are no more requests (the limit counts per person), and a cap keeps the
    list of live keys short; a revoked key frees its place."""
    accounts.add_user("ann", PASSWORD)
    keys = [accounts.create_key("ann") for _ in range(MAX_KEYS_PER_USER)]
    with pytest.raises(AccountError) as refused:
        accounts.create_key("ann")
    assert refused.value.code == "too_many_keys"
    accounts.add_user("bob", PASSWORD)
    assert accounts.create_key("bob")  # another person's cap is their own
    assert accounts.revoke_key(keys[0])
    assert accounts.create_key("ann")


def test_the_gate_counts_requests_per_person_whatever_the_key(database_url):
    """A person with two keys, and the page acting for them, share one limit."""
    settings = AccountSettings(True, False, 3, database_url, "internal-token")
    gate = Gate(settings)
    gate.accounts.add_user("ann", PASSWORD)
    gate.accounts.add_user("bob", PASSWORD)
    first, second = gate.accounts.create_key("ann"), gate.accounts.create_key("ann")
    page = {"Authorization": "Bearer internal-token", "X-Faceblur-Owner": "ann"}
    for headers in ({"Authorization": f"Bearer {first}"}, {"Authorization": f"Bearer {second}"}):
        assert gate.caller(headers).name == "ann"
    assert gate.caller(page).name == "ann"
    for headers in ({"Authorization": f"Bearer {second}"}, page):
        with pytest.raises(RateLimitedError):
            gate.caller(headers)
    # Polling a job is not counted; another person is not held back.
    assert gate.caller(page, limited=False).name == "ann"
    bob = gate.accounts.create_key("bob")
    assert gate.caller({"Authorization": f"Bearer {bob}"}).name == "bob"
    gate.accounts.engine.dispose()


def test_signing_out_and_a_new_password_move_the_session_version(accounts):
    """The page's sessions carry the version they began under (PostgreSQL in the cluster)."""
    ann = accounts.add_user("ann", PASSWORD)
    assert ann.session_version == 0
    accounts.end_sessions(ann.user_id)
    assert accounts.active_user(ann.user_id).session_version == 1
    with pytest.raises(AccountError) as wrong:
        accounts.change_password(ann.user_id, "not the password", "a new password here")
    assert wrong.value.code == "wrong_password"
    with pytest.raises(AccountError) as short:
        accounts.change_password(ann.user_id, PASSWORD, "short")
    assert short.value.code == "short_password"
    assert accounts.active_user(ann.user_id).session_version == 1
    changed = accounts.change_password(ann.user_id, PASSWORD, "a new password here")
    assert changed.session_version == 2
    assert accounts.authenticate("ann", PASSWORD) is None
    assert accounts.authenticate("ann", "a new password here").session_version == 2


def test_the_backoff_doubles_after_the_free_failures_and_always_ends():
    clock = FakeClock()
    backoff = Backoff(free=2, first_wait=1, max_wait=8, clock=clock)
    waits = []
    for _ in range(8):
        waits.append(backoff.retry_after("x"))
        backoff.failed("x")
    assert waits == [0, 0, 0, 1, 2, 4, 8, 8]  # read without waiting: each failure counts
    assert backoff.retry_after("y") == 0
    clock.now += 8
    assert backoff.retry_after("x") == 0  # never a lock-out
    backoff.succeeded("x")
    backoff.failed("x")
    assert backoff.retry_after("x") == 0  # a success forgets the failures


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
