"""The store that keeps nothing (`store=false`), behind the same pair interface as the S3 one."""

from __future__ import annotations


class NullStore:
    """Stores nothing: `put_pair` keeps no pair and says so with None."""

    # Takes the S3 store's put_pair arguments, whatever they are, and ignores them all.
    def put_pair(self, *args: object, **kwargs: object) -> None:
        return None

    def result_url(self, key: str) -> str:
        raise KeyError(f"a NullStore holds no result {key!r}")
