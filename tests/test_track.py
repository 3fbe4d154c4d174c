"""The tracker on hand-made detections: gaps filled, tracks extended, cuts respected."""

from __future__ import annotations

import cv2
import numpy as np

from faceblur.detection.base import Face
from faceblur.media.track import (
    TrackedFrame,
    Tracker,
    TrackSettings,
    motion_between,
    motion_grey,
    scene_distance,
    scene_signature,
)

SETTINGS = TrackSettings(threshold=0.5, max_gap=6, extend=3, smooth=2)


def run(frames: list[list[Face] | None], cuts: set[int] = frozenset()) -> list[TrackedFrame]:
    tracker = Tracker(SETTINGS)
    done = []
    for index, faces in enumerate(frames):
        done += tracker.push(faces, cut=index in cuts)
    done += tracker.finish()
    assert [frame.index for frame in done] == list(range(len(frames)))
    return done


def face(x: float, score: float = 0.9, y: float = 50, size: float = 40) -> Face:
    return Face((int(x), int(y), int(size), int(size)), score)


def covers(frame: TrackedFrame, x: float, y: float = 50, size: float = 40) -> bool:
    """Whether some region of the frame holds the whole box (x, y, size, size)."""
    return any(
        bx <= x and by <= y and bx + bw >= x + size and by + bh >= y + size
        for bx, by, bw, bh in (tracked.box for tracked in frame.faces)
    )


def test_a_gap_is_filled_along_the_motion_with_one_track_id() -> None:
    position = [10 + 5 * i for i in range(14)]  # moving right 5 px a frame
    frames = [[face(x)] if not 5 <= i <= 8 else [] for i, x in enumerate(position)]
    result = run(frames)
    assert all(covers(frame, x) for frame, x in zip(result, position, strict=True))
    assert {tracked.track for frame in result for tracked in frame.faces} == {0}
    assert [any(t.detected for t in frame.faces) for frame in result[4:10]] == [
        True,
        False,
        False,
        False,
        False,
        True,
    ]


def test_a_one_frame_detection_is_kept_and_extended_both_ways() -> None:
    frames: list[list[Face] | None] = [[] for _ in range(20)]
    frames[10] = [face(100)]
    result = run(frames)
    covered = [index for index, frame in enumerate(result) if covers(frame, 100)]
    # Before: `extend` frames; after: carried until it counts as lost (`max_gap` frames).
    assert covered == list(range(10 - SETTINGS.extend, 10 + SETTINGS.max_gap + 1))


def test_frames_not_looked_at_are_carried_without_ending_the_track() -> None:
    position = [10 + 4 * i for i in range(16)]
    frames = [[face(x)] if i % 5 == 0 else None for i, x in enumerate(position)]
    result = run(frames)
    assert all(covers(frame, x) for frame, x in zip(result, position[:-1], strict=False))
    assert {tracked.track for frame in result for tracked in frame.faces} == {0}


def test_weak_detections_continue_a_track_but_never_start_one() -> None:
    frames = [[face(50, 0.9)], [face(52, 0.2)], [face(54, 0.2)]] + [[] for _ in range(12)]
    frames += [[face(300, 0.2)] for _ in range(5)]
    result = run(frames)
    assert all(covers(result[i], 50 + 2 * i) for i in range(3))
    assert [t.detected for t in result[2].faces] == [True]  # the weak one counts
    assert not any(covers(result[i], 300) for i in range(15, 20))  # alone, it is ignored


def test_tracked_faces_keep_their_turn_and_landmarks_only_where_detected() -> None:
    eyes = {"left_eye": (60, 60), "right_eye": (80, 60)}
    turned = Face((50, 50, 40, 40), 0.9, eyes, turn=270)
    result = run([[turned], [], [], [turned]])
    for frame in result:
        (tracked,) = frame.faces
        assert (tracked.turn, tracked.track, tracked.score) == (270, 0, 0.9)
        assert tracked.landmarks == (eyes if tracked.detected else {})
    assert [frame.faces[0].detected for frame in result] == [True, False, False, True]


def test_nothing_carries_across_a_scene_cut() -> None:
    frames: list[list[Face] | None] = [[face(100)] for _ in range(5)] + [[] for _ in range(5)]
    frames[7] = [face(400)]
    result = run(frames, cuts={5})
    assert all(covers(result[i], 100) for i in range(5))
    assert not any(covers(result[i], 100) for i in range(5, 10))  # no carrying forward ...
    assert [covers(result[i], 400) for i in range(3, 10)] == [
        False,
        False,
        True,  # ... and the new face is extended back only to the cut
        True,
        True,
        True,
        True,
    ]


def test_a_face_shaken_off_the_line_stays_covered() -> None:
    rng = np.random.default_rng(3)
    position = [100 + 3 * i + rng.normal(0, 6) for i in range(20)]
    result = run([[face(x)] for x in position])
    assert all(covers(frame, int(x)) for frame, x in zip(result, position, strict=True))


def test_scene_signature_tells_a_cut_from_motion() -> None:
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    moved = np.roll(scene, 4, axis=1)
    other = np.zeros_like(scene)
    other[..., 2] = 200
    assert scene_distance(scene_signature(scene), scene_signature(moved)) < 0.1
    assert scene_distance(scene_signature(scene), scene_signature(other)) > 0.9


def test_motion_follows_a_pan_and_carries_a_face_between_detections() -> None:
    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8), (0, 0), 2)
    frames = [np.ascontiguousarray(texture[50:230, 40 + 6 * i : 360 + 6 * i]) for i in range(9)]
    motion = motion_between(motion_grey(frames[0]), motion_grey(frames[1]), 320)
    assert np.allclose(motion.matrix[:, 2], [-6, 0], atol=0.5)
    assert np.allclose(motion.move(np.array([100.0, 50, 40, 40])), [94, 50, 40, 40], atol=0.5)
    assert np.allclose(motion.move_back(np.array([94.0, 50, 40, 40])), [100, 50, 40, 40], atol=0.5)
    # A face seen only in the first frame and the last is covered in between, on the move.
    tracker = Tracker(SETTINGS)
    done = tracker.push([face(200)])
    for previous, frame in zip(frames, frames[1:], strict=False):
        seen = [face(200 - 6 * 8)] if frame is frames[-1] else None
        step = motion_between(motion_grey(previous), motion_grey(frame), 320)
        done += tracker.push(seen, motion=step)
    done += tracker.finish()
    assert all(covers(frame, 200 - 6 * i) for i, frame in enumerate(done))
