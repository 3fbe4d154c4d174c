"""Where the detector runs and how it is configured: the execution provider chosen for
CenterFace (and its fallback to the CPU), and one configuration for every door."""

from __future__ import annotations

import ast
import logging
import sys
import types
from pathlib import Path

import pytest

from faceblur.detection.centerface import (
    CPU,
    CUDA,
    CenterFaceNet,
    choose_providers,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("device", "available", "chosen"),
    [
        ("auto", [CPU], [CPU]),
        ("auto", [CUDA, CPU], [CUDA, CPU]),
        ("cuda", [CPU], [CPU]),
        ("cuda", ["TensorrtExecutionProvider", CUDA, CPU], [CUDA, CPU]),
        ("cpu", [CUDA, CPU], [CPU]),
        ("auto", [], [CPU]),
    ],
)
def test_providers_prefer_cuda_when_offered_and_always_end_on_the_cpu(
    device, available, chosen
) -> None:
    assert choose_providers(device, available) == chosen


def test_an_unknown_device_names_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        choose_providers("tpu", [CPU])


def fake_onnxruntime(monkeypatch, available: list[str], running: list[str]) -> list[list]:
    """onnxruntime as a GPU build would look: it offers `available`, and a session runs on
    `running` (CUDA offered but no device answering gives a CPU session). Returns the
    providers each session was asked for."""
    import onnxruntime

    asked: list[list] = []

    class Session:
        def __init__(self, model: bytes, options, providers: list[str]) -> None:
            asked.append(list(providers))

        def get_providers(self) -> list[str]:
            return running

    fake = types.SimpleNamespace(
        SessionOptions=onnxruntime.SessionOptions,
        InferenceSession=Session,
        get_available_providers=lambda: available,
    )
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    return asked


def test_a_gpu_build_with_a_device_runs_there_without_a_word(monkeypatch, caplog) -> None:
    asked = fake_onnxruntime(monkeypatch, [CUDA, CPU], [CUDA, CPU])
    with caplog.at_level(logging.INFO, logger="faceblur.detection.centerface"):
        net = CenterFaceNet("auto")
    assert asked == [[CUDA, CPU]]
    assert net.providers[0] == CUDA
    assert not caplog.records


def test_a_gpu_build_without_a_device_falls_back_with_a_clear_line(monkeypatch, caplog) -> None:
    asked = fake_onnxruntime(monkeypatch, [CUDA, CPU], [CPU])
    with caplog.at_level(logging.INFO, logger="faceblur.detection.centerface"):
        net = CenterFaceNet("cuda")
    assert asked == [[CUDA, CPU]]
    assert net.providers == [CPU]
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "falls back to the CPU" in record.getMessage()
    assert "no CUDA device" in record.getMessage()


def test_this_machine_falls_back_to_the_cpu_and_says_why(caplog) -> None:
    # The real onnxruntime here is the CPU build: asking for CUDA still gives a detector.
    with caplog.at_level(logging.INFO, logger="faceblur.detection.centerface"):
        net = CenterFaceNet("cuda", threads=1)
    assert net.providers == [CPU]
    assert any("falls back to the CPU" in r.getMessage() for r in caplog.records)
    with caplog.at_level(logging.INFO, logger="faceblur.detection.centerface"):
        caplog.clear()
        CenterFaceNet("cpu", threads=1)
    assert not caplog.records  # the CPU asked for is no fallback


def build_detector_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "build_detector"
    ]


@pytest.mark.parametrize(
    "door",
    [
        "functions/faceblur/handler.py",
        "functions/faceblur/faceblur/cli/main.py",
        "bench/recall.py",
        "bench/angles.py",
        "bench/video.py",
    ],
)
def test_the_function_the_command_line_and_the_benches_build_one_configuration(door) -> None:
    # build_detector() is the one place the production detector is configured: a door that
    # passed its own settings would run a detector the benchmarks never measured.
    # (The function hands build_detector itself to a thread: a reference, not a call;
    # test_doors_detector runs both doors end to end.)
    assert "build_detector" in (ROOT / door).read_text(), f"{door} no longer builds it"
    # Only the thread budget may be given (`--jobs` workers): it changes how many threads
    # run, not what is found (tests/test_video_segments.py: --jobs 2 writes --jobs 1's bytes).
    for call in build_detector_calls(ROOT / door):
        settings = [k.arg for k in call.keywords if k.arg != "cores"]
        assert not call.args and not settings, f"{door}:{call.lineno} configures its own"


def test_a_detector_built_for_a_share_of_the_cores_runs_that_many_threads() -> None:
    """`build_detector(cores=1)`, as each of two `--jobs` workers on two cores: OpenCV's
    and TensorFlow's pools and the network calls side by side, one each (in a fresh
    process: both pools are the process's, sized before first use)."""
    import json
    import os
    import subprocess

    script = (
        "import json, cv2, tensorflow as tf\n"
        "from faceblur.detection import build_detector\n"
        "detector = build_detector(cores=1)\n"
        "detector.upright.wait_loaded()\n"
        "print(json.dumps([cv2.getNumThreads(), detector.upright.settings.threads,\n"
        "    tf.config.threading.get_intra_op_parallelism_threads(),\n"
        "    tf.config.threading.get_inter_op_parallelism_threads()]))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = str(ROOT / "functions" / "faceblur")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [1, 1, 1, 1]
