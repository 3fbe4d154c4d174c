"""`make run` outlives its S3 server: the function and page answer 503, the runner starts
the store again and says so, and everything works once it is back."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import requests
from test_function_local_stack import STACK_READY_SECONDS, wait_for_text

from stack_fixtures import (
    free_port,
    interrupt_run_stack,
    run_stack_env,
    scaled_photo,
    start_run_stack,
    stop_process,
    webhook_headers,
)

RESTART_SECONDS = 60


def s3rver_child(parent: int) -> int:
    """The pid of the node s3rver that `parent` started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent_pid = int(stat.rsplit(")", 1)[1].split()[1])
        if parent_pid == parent and b"s3rver.js" in command:
            return int(entry.name)
    raise AssertionError(f"no s3rver child of {parent}")


def test_the_stack_survives_the_store_dying_and_recovers(tmp_path, dev_annotations) -> None:
    ports = {name: free_port() for name in ("s3", "function", "frontend")}
    log_path = tmp_path / "run.log"
    stack = start_run_stack(run_stack_env(ports, tmp_path / "data"), log_path)
    function_url = f"http://127.0.0.1:{ports['function']}/function/faceblur"
    gallery_url = f"http://127.0.0.1:{ports['frontend']}/gallery"
    # A bucket event reaches storage before any detection: a quick way to ask the
    # function for something that needs the store.
    event = json.dumps(
        {"Records": [{"s3": {"bucket": {"name": "inbox"}, "object": {"key": "a.png"}}}]}
    )
    try:
        wait_for_text(log_path, "Ctrl-C stops everything", stack, STACK_READY_SECONDS)
        assert requests.get(gallery_url, timeout=30).status_code == 200

        os.kill(s3rver_child(stack.pid), signal.SIGKILL)
        wait_for_text(log_path, "Restarting it in", stack, 30)
        assert "answer 503" in log_path.read_text()
        gallery = requests.get(gallery_url, timeout=30)
        assert gallery.status_code == 503
        assert "photo store is not available" in gallery.text
        info = requests.get(function_url, timeout=30).json()
        assert info["storage"]["reachable"] is False
        stored = requests.post(function_url, data=event, headers=webhook_headers(), timeout=30)
        assert stored.status_code == 503, stored.text
        assert stack.poll() is None  # the runner itself stays up

        wait_for_text(log_path, "the S3 server is back", stack, RESTART_SECONDS)
        assert requests.get(gallery_url, timeout=30).status_code == 200
        assert requests.get(function_url, timeout=30).json()["storage"]["reachable"] is True
        entry = next(e for e in dev_annotations if e["n_faces"] == 1 and e["faces"][0][3] > 150)
        jpeg, _ = scaled_photo(entry, 320, "JPEG")
        answer = requests.post(
            function_url, data=jpeg, headers={"Content-Type": "image/jpeg"}, timeout=300
        )
        assert answer.status_code == 200, answer.text

        assert interrupt_run_stack(stack, log_path) == 0
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGTERM)
        stop_process(stack)
