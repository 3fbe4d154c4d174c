"""Video limits hold while decoding (issue 23, point 5): a file whose header says no
duration or frame count is still held to the length and frame limits, every frame's size
is checked, and a job has a wall-clock budget. Each refusal is a failed job with the
limit's code, the inbox emptied and nothing stored."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_video_jobs import Videos, put_inbox

from faceblur.errors import TooLargeError
from faceblur.media.container import DecodeLimits, probe
from faceblur.media.video import anonymise_video
from faceblur.service.video_jobs import read_status
from faceblur.service.videos import process_video_object
from faceblur.store.keys import inbox_key, new_job_id, status_key
from stack_fixtures import LocalS3

RATE = 12
FRAMES = 30  # 2.5 s


def live_clip(path: Path, frames: int = FRAMES, size: tuple[int, int] = (96, 64)) -> Path:
    """A Matroska file written as a live stream: its header gives no duration and no
    frame count (probe says 0 for both), as a stream cut from a camera may."""
    width, height = size
    with av.open(str(path), "w", format="matroska", options={"live": "1"}) as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            pixels = np.full((height, width, 3), (index * 7) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def run_job(s3: LocalS3, detector, tmp_path: Path, settings, clock=None) -> dict:
    store = s3.store()
    job = new_job_id()
    key = inbox_key("", job, "live.mkv")
    put_inbox(store, key, live_clip(tmp_path / "live.mkv").read_bytes())
    extra = {"clock": clock} if clock else {}
    answer = process_video_object(key, Videos(detector, store, job), store, settings, **extra)
    assert answer["state"] == "failed", answer
    status = read_status(store, settings, job)
    assert status.state == "failed" and status.code == answer["code"]
    assert s3.snapshot() == {"inbox": [], "originals": [status_key(job)], "results": []}
    return answer


def test_a_clip_of_unknown_duration_does_not_count_as_zero_seconds(
    s3: LocalS3, detector, tmp_path: Path
) -> None:
    info = probe(live_clip(tmp_path / "probe.mkv"))
    assert (info.duration, info.frames) == (0.0, 0)  # the header says nothing
    settings = replace(s3.settings, max_video_seconds=1)
    assert run_job(s3, detector, tmp_path, settings)["code"] == "max_video_seconds"


def test_frames_are_counted_while_decoding(s3: LocalS3, detector, tmp_path: Path) -> None:
    settings = replace(s3.settings, max_video_frames=FRAMES - 5)
    assert run_job(s3, detector, tmp_path, settings)["code"] == "max_video_frames"


def test_a_job_over_its_wall_clock_budget_fails(s3: LocalS3, detector, tmp_path: Path) -> None:
    now = [0.0]

    def clock() -> float:  # 1 s further at every look: the budget runs out mid-clip
        now[0] += 1.0
        return now[0]

    settings = replace(s3.settings, video_job_seconds=10)
    answer = run_job(s3, detector, tmp_path, settings, clock)
    assert answer["code"] == "video_job_seconds"


@pytest.mark.parametrize(
    "limits,code",
    [
        (DecodeLimits(FRAMES - 1, 600, 10**6), "max_video_frames"),
        (DecodeLimits(10**6, 1.0, 10**6), "max_video_seconds"),
        (DecodeLimits(10**6, 600, 96 * 64 - 1), "max_video_pixels"),
        (DecodeLimits(10**6, 600, 10**6, deadline=-1.0), "video_job_seconds"),
    ],
    ids=["frames", "seconds", "pixels", "deadline"],
)
def test_every_frame_is_held_to_the_limits(detector, tmp_path: Path, limits, code) -> None:
    source = live_clip(tmp_path / "live.mkv")
    target = tmp_path / "out.mp4"
    with pytest.raises(TooLargeError) as refused:
        anonymise_video(source, target, detector, limits=limits)
    assert refused.value.code == code and refused.value.status == 413
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.mkv"]  # nothing half-written


def test_within_the_limits_the_clip_is_anonymised(detector, tmp_path: Path) -> None:
    limits = DecodeLimits(FRAMES, 2.5, 96 * 64)
    result = anonymise_video(
        live_clip(tmp_path / "a.mkv"), tmp_path / "b.mp4", detector, limits=limits
    )
    assert result.frames == FRAMES and result.rate == Fraction(RATE)
