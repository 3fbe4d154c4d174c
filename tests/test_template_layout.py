"""The handler folder runs when laid out as the python3-http-debian template lays it out.

The template's image holds `index.py` beside `function/` (our handler folder, copied
whole, plus an empty `function/__init__.py`), runs `python index.py` from that folder and
imports `function.handler`. Only the function's requirements are installed: the repo
and its editable install are not there. This test builds that layout in a temporary
folder with a stand-in `index.py` that follows the template's contract, runs it with
the virtualenv's packages but without our editable install (`python -S`), and calls
the handler through it over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import requests

from stack_fixtures import LocalS3, free_port, scaled_photo, stop_process

ROOT = Path(__file__).resolve().parents[1]
HANDLER_FOLDER = ROOT / "functions" / "faceblur"
LOCAL_RUNNER = ROOT / "functions" / "local"
READY_TIMEOUT_SECONDS = 180

# What the template's index.py does, reduced to its contract: build the event from the
# Flask request, call handle(), shape the answer with the one reading of its
# format_response, functions/local/template_runner.py's (on PYTHONPATH, see isolated_env).
STAND_IN_INDEX = """
import os
import sys

from flask import Flask, request
from waitress import serve

from function import handler
from template_runner import format_response

app = Flask(__name__)


class Event:
    def __init__(self):
        self.body = request.get_data()
        self.headers = request.headers
        self.method = request.method
        self.query = request.args
        self.path = request.path


class Context:
    def __init__(self):
        self.hostname = os.getenv("HOSTNAME", "localhost")


@app.route("/", defaults={"path": ""}, methods=["GET", "PUT", "POST", "PATCH", "DELETE"])
@app.route("/<path:path>", methods=["GET", "PUT", "POST", "PATCH", "DELETE"])
def call_handler(path):
    return format_response(handler.handle(Event(), Context()))


if __name__ == "__main__":
    serve(app, host="127.0.0.1", port=int(sys.argv[1]))
"""


def lay_out(home: Path) -> None:
    """`home/index.py` and `home/function/` as the template's Dockerfile builds them."""
    shutil.copytree(
        HANDLER_FOLDER,
        home / "function",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    (home / "function" / "__init__.py").touch()
    (home / "index.py").write_text(STAND_IN_INDEX)


def isolated_env(s3: LocalS3) -> dict[str, str]:
    """The venv's packages on PYTHONPATH, used with `python -S` so no .pth file (and so no
    editable install of faceblur) is read: only what a pip install of requirements gives,
    plus functions/local for the runner's reading of format_response (no faceblur there)."""
    site_packages = sysconfig.get_paths()["purelib"]
    keep = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    path = os.pathsep.join([site_packages, str(LOCAL_RUNNER)])
    return {**keep, **s3.env, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home-app")
    lay_out(home)
    return home


def test_faceblur_is_not_importable_without_the_layout(s3_server, tmp_path: Path) -> None:
    # Proves the isolation below is real: the package only comes from function/.
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import faceblur"],
        env=isolated_env(s3_server),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0
    assert "ModuleNotFoundError" in probe.stderr and "'faceblur'" in probe.stderr


def test_handler_runs_behind_a_template_index(
    s3_server: LocalS3, template_home: Path, dev_annotations: list[dict]
) -> None:
    s3_server.empty_buckets()
    port = free_port()
    log_path = template_home / "index.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-S", "index.py", str(port)],
            cwd=template_home,
            env=isolated_env(s3_server),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        info: dict = {}
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not info.get("model_loaded"):
            assert process.poll() is None, log_path.read_text()[-3000:]
            with contextlib.suppress(requests.RequestException, ValueError):
                info = requests.get(url, timeout=5).json()
            time.sleep(0.5)
        assert info.get("model_loaded"), log_path.read_text()[-3000:]
        assert info["storage"] == {"reachable": True}

        entry = next(e for e in dev_annotations if e["n_faces"] == 1 and e["faces"][0][3] > 150)
        jpeg, _ = scaled_photo(entry, 480, "JPEG")
        answer = requests.post(url, data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=300)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["faces"] and body["stored"]
        assert s3_server.store().read("originals", body["original_key"]) == jpeg

        # The image itself comes back as bytes, not as the str() of bytes.
        image = requests.post(
            url,
            data=jpeg,
            params={"store": "false"},
            headers={"Content-Type": "image/jpeg", "Accept": "image/jpeg"},
            timeout=300,
        )
        assert image.status_code == 200
        assert image.headers["Content-Type"] == "image/jpeg"
        assert image.content[:3] == b"\xff\xd8\xff"
        assert int(image.headers["X-Faces"]) == len(body["faces"])

        bad = requests.post(url, data=b"nope", headers={"Content-Type": "image/png"}, timeout=60)
        assert bad.status_code == 415 and bad.json()["code"] == "not_an_image"
    finally:
        stop_process(process)
