"""Shared fixtures: the real test data and one detector per test session."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from faceblur.config import Settings, load_settings

pytest_plugins = ["stack_fixtures", "account_fixtures", "browser_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FACES_DEV = SHARED_DATA / "faces-dev"
ATT_FACES = SHARED_DATA / "att-faces"


def _secret_value(name: str) -> str:
    if name == "faceblur-seal-public-key":  # checked as a key by the code: give it a real one
        from faceblur.sealing import seal

        return seal.public_key_pem(seal.new_authority_key()).decode()
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
    """Ground truth of ../shared/data/faces-dev (boxes are x, y, w, h)."""
    return json.loads((FACES_DEV / "annotations.json").read_text())


@pytest.fixture(scope="session")
def detector():
    """The production detector, built once: building it is the slow part."""
    from faceblur.detection import build_detector

    return build_detector()
