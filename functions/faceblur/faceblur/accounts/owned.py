"""What a person owns in storage: everything under their owner prefix, removed with their
account."""

from __future__ import annotations

from faceblur.store.s3 import Store


def remove_owned(store: Store, prefix: str) -> int:
    """Remove everything stored for an owner's `prefix`: results, originals, what waits in
    the inbox, and their video jobs (status, tracks, edits); how many objects went.

    Their video jobs first (each status names its owner inside): a render still running
    then finds its inbox copy gone and keeps nothing, and what it wrote before is listed
    below. Then results: a result without its original is never left for a reader to find.
    """
    if not prefix.endswith("/"):
        raise ValueError("an owner's prefix ends with '/': nothing else may be emptied")
    settings = store.settings
    removed = store.remove_jobs(lambda status: status.get("prefix") == prefix)
    for bucket in (settings.bucket_results, settings.bucket_originals, settings.bucket_inbox):
        for key in store.keys(bucket, prefix=prefix):
            store.remove(bucket, key)
            removed += 1
    return removed
