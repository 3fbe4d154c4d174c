"""The photo use case: anonymise and store, both or neither.

Doors reach it through `faceblur.service.entry.serve` (requests) and
`faceblur.service.events` (inbox objects); the workflow across the pipeline and storage
lives here once. The store is any `PairStore`: the S3 `Store`, or a `NullStore` when the
caller asked for nothing to be kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from faceblur.errors import NothingHiddenError
from faceblur.media.photo import PhotoResult
from faceblur.options import DEFAULT_THRESHOLD, Options
from faceblur.sealing.seal import seal_for_store
from faceblur.store.null import NullStore
from faceblur.store.pairs import PairWriter, StoredPair
from faceblur.store.s3 import FACES_METADATA, NOTHING_HIDDEN_METADATA


class Anonymiser(Protocol):
    """The pipeline as a door runs it (its model, its lock): bytes in, a result out."""

    def anonymise(self, data: bytes, options: Options, max_pixels: int) -> PhotoResult: ...


# What the use cases need of a store: keep an original with its result (the S3 store), or
# keep nothing (`store=false`). Both come from the store floor, with one `put_pair`.
PairStore = PairWriter | NullStore


@dataclass(frozen=True)
class Kept:
    """A stored pair and the presigned URL of its result."""

    pair: StoredPair
    result_url: str


@dataclass(frozen=True)
class Outcome:
    """One anonymised image; `kept` is None when the store keeps nothing."""

    result: PhotoResult
    kept: Kept | None
    timings: dict[str, float]  # the pipeline's, plus 'pipeline' and 'storage' in seconds


def pair_arguments(
    data: bytes, result: PhotoResult, options: Options, seal_key: str | None, max_pixels: int
) -> dict[str, object]:
    """`put_pair`'s arguments for an original and its result, with the face count.

    With a sealing public key, the original goes to the store sealed for its authority
    (faceblur.seal), never in the clear.
    """
    sealed = seal_for_store(seal_key, data, result.data, result.anonymised, max_pixels)
    metadata = {FACES_METADATA: str(len(result.anonymised))}
    if not result.anonymised:
        metadata[NOTHING_HIDDEN_METADATA] = "true"
    # The result keeps the input's format, so its type is the original's type too.
    return {
        "sealed": sealed,
        "original": data,
        "original_type": result.mime_type,
        "result": result.data,
        "result_type": result.mime_type,
        "options": vars(options),
        "result_metadata": metadata,
    }


def _looked_for_faces(options: Options) -> bool:
    """Whether these options ran the detector at least as keenly as the defaults do, so
    that finding nothing with them means the detector finds nothing."""
    return options.detect and not options.upright_only and options.threshold <= DEFAULT_THRESHOLD


def check_something_hidden(
    data: bytes, result: PhotoResult, options: Options, anonymiser: Anonymiser, max_pixels: int
) -> None:
    """NothingHiddenError when `result` hides nothing although the detector, with the
    default options, finds faces in `data` (detect=false without regions, threshold=1)."""
    if result.anonymised or _looked_for_faces(options):
        return
    found = anonymiser.anonymise(data, Options(), max_pixels).faces
    if found:
        raise NothingHiddenError(
            f"this request would hide nothing, but the photo shows {len(found)} "
            f"face{'s' * (len(found) != 1)}: send it with detection on (the default "
            "options) or with regions over the faces"
        )


def anonymise_and_store(
    data: bytes,
    options: Options,
    anonymiser: Anonymiser,
    store: PairStore,
    max_pixels: int,
    seal_key: str | None = None,
    prefix: str = "",
    refuse_unhidden: bool = False,
) -> Outcome:
    """Anonymise `data` and keep the original with its result in `store` (both or neither).

    `seal_key`: the authority's public key (PEM) when originals are kept sealed.
    `prefix`: the owner's, where accounts are on (faceblur.store.keys.owner_prefix).
    `refuse_unhidden`: refuse (NothingHiddenError) a request that hides nothing in a photo
    where the detector finds faces, before anything is stored.
    """
    started = time.perf_counter()
    result = anonymiser.anonymise(data, options, max_pixels)
    if refuse_unhidden:
        check_something_hidden(data, result, options, anonymiser, max_pixels)
    stored_at = time.perf_counter()
    pair = store.put_pair(
        **pair_arguments(data, result, options, seal_key, max_pixels), prefix=prefix
    )
    kept = Kept(pair, store.result_url(pair.result_key)) if pair else None
    timings = {
        **result.timings,
        "pipeline": stored_at - started,
        "storage": time.perf_counter() - stored_at,
    }
    return Outcome(result, kept, timings)
