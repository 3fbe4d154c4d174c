"""Shared fixtures: the real test data and one detector per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["stack_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FACES_DEV = SHARED_DATA / "faces-dev"
ATT_FACES = SHARED_DATA / "att-faces"


@pytest.fixture(scope="session")
def dev_annotations() -> list[dict]:
    """Ground truth of ../shared/data/faces-dev (boxes are x, y, w, h)."""
    return json.loads((FACES_DEV / "annotations.json").read_text())


@pytest.fixture(scope="session")
def detector():
    """The production detector, built once: building it is the slow part."""
    from faceblur.detect import build_detector

    return build_detector()
