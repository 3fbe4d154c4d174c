"""A zip archive written as it is sent: entries are copied a piece at a time from their
source, so the page holds one piece in memory, never the archive or a whole photo.

`zipfile` writes to any non-seekable stream (it then puts each entry's CRC after its
data); the stream here only collects what was written until the generator hands it on.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    pieces: Callable[[], Iterator[bytes]]  # called when the entry's turn comes


class _Collector(io.RawIOBase):
    """A write-only stream that keeps what was written until `take()`."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._pieces.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces.clear()
        return data


def stream_zip(entries: Iterable[Entry]) -> Iterator[bytes]:
    """The bytes of a zip (stored, not compressed: photos are compressed already)."""
    sink = _Collector()
    now = time.gmtime()[:6]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=now)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = entry.size  # lets zipfile choose zip64 before the data
            with archive.open(info, "w") as member:
                for piece in entry.pieces():
                    member.write(piece)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
