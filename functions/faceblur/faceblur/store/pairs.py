"""Pair writes: an original and its result are stored both or neither.

The original is written first, then the result; if anything fails, what was written is
undone so that only whole pairs remain (our original goes unless a result of it exists or
it was there before; our result goes if its original is gone). When the server is down,
that is retried in the background until it is back.

The one implementation for photos (bytes) and videos (files streamed from disk); the
object calls themselves come from the store that subclasses `PairWriter` (faceblur.store.s3).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from faceblur.config import Settings
from faceblur.errors import UnavailableError
from faceblur.formats import SEALED_MIME_TYPE
from faceblur.store.keys import (
    content_id,
    file_content_id,
    options_id,
    original_key,
    result_key,
    sealed_key,
)

ROLLBACK_FIRST_DELAY_SECONDS = 0.5
ROLLBACK_MAX_DELAY_SECONDS = 30.0

# A photo comes as bytes; a video as a file, streamed so that it need not fit in memory.
Body = bytes | Path


@dataclass(frozen=True)
class StoredPair:
    image_id: str
    original_key: str
    result_key: str


@dataclass(frozen=True)
class _Rollback:
    """A pair whose writing failed, to be left whole or not at all."""

    pair: StoredPair
    original_was_there: bool


class PairWriter(ABC):
    """Writes pairs over a store's object calls; a subclass supplies those calls."""

    settings: Settings

    def __init__(self) -> None:
        self._pending_rollbacks: set[_Rollback] = set()  # to finish once storage is back
        self._lock = threading.Lock()
        self._retrier: threading.Thread | None = None

    # -- the object calls a store supplies (UnavailableError when storage fails) ---------

    @abstractmethod
    def exists(self, bucket: str, key: str) -> bool: ...

    @abstractmethod
    def keys(self, bucket: str, prefix: str = "") -> list[str]: ...

    @abstractmethod
    def remove(self, bucket: str, key: str) -> None: ...

    @abstractmethod
    def put(
        self, bucket: str, key: str, data: bytes, mime_type: str, metadata: Mapping[str, str]
    ) -> None: ...

    @abstractmethod
    def fput(
        self, bucket: str, key: str, path: Path, mime_type: str, metadata: Mapping[str, str]
    ) -> None: ...

    def _write(
        self, bucket: str, key: str, body: Body, mime_type: str, metadata: Mapping[str, str]
    ) -> None:
        if isinstance(body, Path):
            self.fput(bucket, key, body, mime_type, metadata)
        else:
            self.put(bucket, key, body, mime_type, metadata)

    # -- writing a pair -------------------------------------------------------------------

    def put_pair(
        self,
        original: Body,
        original_type: str,
        result: Body,
        result_type: str,
        options: Mapping[str, object],
        result_metadata: Mapping[str, str] | None = None,
        sealed: bytes | None = None,
        prefix: str = "",
    ) -> StoredPair:
        """Store the original and its result, both or neither (see the module docstring).

        Bytes or files (a video, streamed). With `sealed` (faceblur.sealing's file), the
        originals bucket gets that instead of the original, at sealed_key(result key): no
        face is stored in the clear. `prefix` (an owner's `u/<id>/`) goes before both keys:
        an owner's objects are theirs alone, even when two people send the same photo.
        """
        self.retry_rollbacks()
        image_id = file_content_id(original) if isinstance(original, Path) else content_id(original)
        kept_key = prefix + result_key(image_id, options_id(options), result_type)
        pair = StoredPair(
            image_id=image_id,
            original_key=prefix + original_key(image_id, original_type)
            if sealed is None
            else sealed_key(kept_key),
            result_key=kept_key,
        )
        if sealed is not None:
            original, original_type = sealed, SEALED_MIME_TYPE
        originals, results = self.settings.bucket_originals, self.settings.bucket_results
        original_was_there = self.exists(originals, pair.original_key)
        if sealed is not None and original_was_there and self.exists(results, pair.result_key):
            # A seal opens only the exact result it was made with, and a new result of the
            # same photo differs (fresh noise): keep the whole pair, never mix two.
            return pair
        metadata = {"faceblur-original": pair.original_key, **(result_metadata or {})}
        try:
            self._write(originals, pair.original_key, original, original_type, {})
            self._write(results, pair.result_key, result, result_type, metadata)
            # A concurrent request for the same photo may have rolled the shared original
            # back between our two writes: put it again so our result is not left alone.
            if not self.exists(originals, pair.original_key):
                self._write(originals, pair.original_key, original, original_type, {})
        except UnavailableError:
            self._roll_back(_Rollback(pair, original_was_there))
            raise
        return pair

    # -- rolling back a half pair ----------------------------------------------------------

    def _finish(self, rollback: _Rollback) -> None:
        """Leave whole pairs only: drop our result if its original is gone, and our
        original if it has no result at all (unless it was there before us)."""
        pair, settings = rollback.pair, self.settings
        has_original = self.exists(settings.bucket_originals, pair.original_key)
        if not has_original:
            if self.exists(settings.bucket_results, pair.result_key):
                self.remove(settings.bucket_results, pair.result_key)
            return
        if rollback.original_was_there:
            return
        results_of_original = pair.result_key.rsplit("/", 1)[0] + "/"
        if not self.keys(settings.bucket_results, prefix=results_of_original):
            self.remove(settings.bucket_originals, pair.original_key)

    def _roll_back(self, rollback: _Rollback) -> None:
        try:
            self._finish(rollback)
        except UnavailableError:
            with self._lock:
                self._pending_rollbacks.add(rollback)
                if self._retrier is None:
                    self._retrier = threading.Thread(
                        target=self._retry_until_done, name="faceblur-rollback", daemon=True
                    )
                    self._retrier.start()

    @property
    def pending_rollbacks(self) -> frozenset[_Rollback]:
        with self._lock:
            return frozenset(self._pending_rollbacks)

    def retry_rollbacks(self) -> None:
        """Finish rollbacks that failed while storage was down; quiet if it still is."""
        for rollback in self.pending_rollbacks:
            try:
                self._finish(rollback)
            except UnavailableError:
                return
            with self._lock:
                self._pending_rollbacks.discard(rollback)

    def _retry_until_done(self) -> None:
        delay = ROLLBACK_FIRST_DELAY_SECONDS
        while True:
            time.sleep(delay)
            self.retry_rollbacks()
            delay = min(delay * 2, ROLLBACK_MAX_DELAY_SECONDS)
            with self._lock:
                if not self._pending_rollbacks:
                    self._retrier = None
                    return
