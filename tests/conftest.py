"""Shared fixtures: the test data, one detector per test session, markers, the skip count."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from data import ATT_FACES as ATT_FACES  # re-exported: tests import the paths from here
from data import COMPOSED, HAVE_DATA, MISSING_DATA, composed_entries, require_data
from data import FACES_DEV as FACES_DEV
from faceblur.config import Settings, load_settings

pytest_plugins = ["stack_fixtures", "account_fixtures", "browser_fixtures"]

ROOT = Path(__file__).resolve().parents[1]


def _secret_value(name: str) -> str:
    if name == "faceblur-seal-public-key":  # checked as a key by the code: give it a real one
        from faceblur.sealing import seal

        return seal.public_key_pem(seal.new_authority_key()).decode()
    if name == "faceblur-audit-key":  # checked as a PEM private key: give it a real one
        from faceblur.sealing import audit, base

        return base.private_key_pem(audit.new_audit_key(), None).decode()
    return f"value-of-{name}"


def settings_with_secret_files(
    environment: dict[str, str], secret_names: Iterable[str], folder: Path
) -> Settings:
    """Settings as the code loads them where each named secret is a file `value-of-<name>`
    (as a Kubernetes or OpenFaaS secret mount would provide); ConfigError passes through."""
    for name in secret_names:
        (folder / name).write_text(f"{_secret_value(name)}\n")
    try:
        return load_settings(environ=environment, secrets_dir=folder)
    finally:
        for path in folder.iterdir():
            path.unlink()


@pytest.fixture(scope="session")
def dev_annotations() -> list[dict]:
    """Ground truth of faces-dev (boxes are x, y, w, h); tests using it skip without it."""
    require_data()
    return json.loads((FACES_DEV / "annotations.json").read_text())


@pytest.fixture(scope="session", params=["faces-dev", COMPOSED])
def portrait_annotations(request: pytest.FixtureRequest) -> list[dict]:
    """Entries of one-face photos, from faces-dev (skipped without it) and composed from the
    free astronaut: tests wanting "a photo of one clear face" run on both."""
    if request.param == COMPOSED:
        return composed_entries()
    return request.getfixturevalue("dev_annotations")


@pytest.fixture(scope="session")
def detector():
    """The production detector, built once: building it is the slow part."""
    from faceblur.detection import build_detector

    return build_detector()


# -- markers: what `make test-fast` leaves out (pyproject.toml registers them) --
BROWSER_FIXTURES = {"browser", "page"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by what a test uses, so a new test is sorted without remembering to: Chromium
    through the browser fixtures, PostgreSQL through its server (SQLite runs stay fast)."""
    for item in items:
        names = set(item.fixturenames)
        if names & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        params = getattr(item, "callspec", None)
        on_postgres = params is not None and params.params.get("database_url") == "postgresql"
        if on_postgres or "postgres_server" in names:
            item.add_marker(pytest.mark.postgres)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """One closing line: how many tests the missing benchmark photos skipped, and why."""
    skipped = terminalreporter.stats.get("skipped", [])
    missing = sum(1 for report in skipped if MISSING_DATA in str(report.longrepr))
    why = "benchmark photos found" if HAVE_DATA else MISSING_DATA
    terminalreporter.write_line(f"skipped for missing data: {missing} ({why})")
