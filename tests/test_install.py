"""`pip install .` gives a working `faceblur`, and Dockerfile.cli builds it from what it copies.

There is no Docker engine here, so the CLI's image is checked as the function's is: its
build context is laid out from the Dockerfile's own COPY lines in a temporary folder, a
wheel is built from that alone, installed into a fresh virtualenv (dependencies from the
package registry, through pip's cache), and its `faceblur detect` run on a composed photo
from a folder outside the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from data import composed_photo, encoded

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.cli"
MODELS = ROOT / "functions" / "faceblur" / "faceblur" / "models"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(name: str) -> list[list[str]]:
    """Each `name` instruction of Dockerfile.cli as its words (continuation lines joined)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [line.split()[1:] for line in text.splitlines() if line.split()[:1] == [name]]


def test_every_shipped_model_is_the_file_its_readme_names_with_its_licence() -> None:
    listed = re.findall(
        r"^\| `([\w.]+\.onnx)` .*`([0-9a-f]{64})` \|$", (MODELS / "README.md").read_text(), re.M
    )
    assert {name for name, _ in listed} == {p.name for p in MODELS.glob("*.onnx")}
    for name, digest in listed:
        assert hashlib.sha256((MODELS / name).read_bytes()).hexdigest() == digest, name
    for licence in ("centerface.LICENSE", "yunet.LICENSE"):
        assert "MIT License" in (MODELS / licence).read_text()


def test_the_cli_image_runs_the_declared_console_script_as_a_user() -> None:
    (base,) = instructions("FROM")
    assert re.fullmatch(r"python:3\.11-[\w.-]+", base[0]), "the image's Python is the project's"
    assert PYPROJECT["project"]["requires-python"].startswith(">=3.11")
    (entrypoint,) = instructions("ENTRYPOINT")
    command = json.loads(" ".join(entrypoint))[0]
    assert command in PYPROJECT["project"]["scripts"]
    assert instructions("USER")[-1][0].split(":")[0] not in ("0", "root")
    assert any("pip install /src" in " ".join(words) for words in instructions("RUN"))


def build_context(folder: Path) -> Path:
    """The files Dockerfile.cli's COPY lines put in /src, laid out under `folder`."""
    for words in instructions("COPY"):
        *sources, target = words
        assert target.startswith("/src/"), f"COPY outside /src: {words}"
        for source in sources:
            destination = folder / target.removeprefix("/src/")
            if (ROOT / source).is_dir():
                shutil.copytree(
                    ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, destination)
    return folder


@pytest.mark.install
def test_the_wheel_from_the_image_context_installs_a_working_cli(tmp_path: Path) -> None:
    context = build_context(tmp_path / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(context)],
        check=True,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("faceblur-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("centerface.onnx", "face_detection_yunet_2023mar.onnx", "yunet.LICENSE"):
        assert f"faceblur/models/{shipped}" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), *pip[1:], "install", str(wheel)], check=True, timeout=1500
    )

    picture, boxes = composed_photo((150, 90, 50))
    photo = tmp_path / "photos" / "three.png"
    photo.parent.mkdir()
    photo.write_bytes(encoded(picture))
    # Outside the repository, with no PYTHONPATH: only the installed wheel can answer.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(venv / "bin" / "faceblur"), "detect", "--json", str(photo)],
        cwd=tmp_path / "photos",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = [face["box"] for face in json.loads(done.stdout.strip().splitlines()[-1])["faces"]]
    for x, y, w, h in boxes:
        assert any(abs(fx - x) < w / 4 and abs(fy - y) < h / 4 for fx, fy, _, _ in found), (
            f"face {x, y, w, h} not found among {found}"
        )
