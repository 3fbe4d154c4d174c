"""Which frames of a clip one run reads and which it writes: the whole clip, or a segment
of a split job (`faceblur.media.segments`) with the overlap its tracker reads beyond
each border."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av

from faceblur.media.container import DecodedFrame, DecodeLimits, Orientation, read_frames


@dataclass(frozen=True)
class Window:
    """The frames of a clip one run reads and the ones it writes, by presentation
    timestamp (in the video stream's time base); a segment of a split job
    (`faceblur.media.segments`). Frames read but not written are the overlap: the
    tracker sees them, so a face crossing the border is followed from both sides."""

    read_from: int | None = None  # seek to the keyframe at or before it; None: the start
    first: int | None = None  # the first frame written; None: the first read
    end: int | None = None  # the first frame not written; None: to the last one read
    read_to: int | None = None  # the first frame not read; None: to the end of the clip
    first_index: int = 0  # the first frame read, counted in the whole clip
    frames: int = 0  # frames it writes; 0: all there are (checked as a whole clip is)
    # The next segment's first frame read, counted in the whole clip; None: none follows.
    # A face tracked there goes on in the next segment under the key of its first
    # detection from there on; its tone moves to that key's before the border.
    hand_over: int | None = None

    def reads(self, pts: int | None) -> bool:
        return self.read_from is None or (pts is not None and pts >= self.read_from)

    def past(self, pts: int | None) -> bool:
        return self.read_to is not None and pts is not None and pts >= self.read_to

    def writes(self, pts: int | None) -> bool:
        if pts is None:
            return self.first is None and self.end is None
        return (self.first is None or pts >= self.first) and (self.end is None or pts < self.end)


WHOLE = Window()


def read_window(
    container: av.container.InputContainer,
    orientation: Orientation,
    window: Window,
    on_audio: Callable[[av.Packet], None],
    limits: DecodeLimits | None = None,
) -> Iterator[tuple[DecodedFrame, bool]]:
    """The window's frames as displayed, each with whether it is written."""
    if window.read_from is not None:
        # The keyframe at or before it: frames before `read_from` are decoded, then dropped.
        container.seek(window.read_from, stream=container.streams.video[0])
    # Frames before the window are decoded (H.264 needs them) but never converted.
    early = None if window.read_from is None else (lambda frame: not window.reads(frame.pts))
    for frame in read_frames(container, orientation, on_audio, limits, early):
        pts = frame.stored.pts
        if window.past(pts):
            return
        if window.reads(pts):
            yield frame, window.writes(pts)
