"""In-memory guards in front of the accounts, per process: the API-key check's short cache
(`KeyChecker`), the rate limit (`RateLimiter`) and the back-off after failed sign-ins
(`Backoff`)."""

from __future__ import annotations

import threading
import time

from .users import Accounts, Identity, hash_key

# A revoked key or a disabled user stops working within this many seconds.
KEY_CACHE_SECONDS = 4.0
KEY_CACHE_MAX_ENTRIES = 10_000
BACKOFF_MAX_CALLERS = 100_000


class KeyChecker:
    """`Accounts.identity_for_key` behind a short cache: one query per key per few seconds.

    The cache is why a revoked key or a disabled user stops working within
    KEY_CACHE_SECONDS rather than at once; unknown keys are cached too, so guessing
    costs the database nothing more.
    """

    def __init__(
        self, accounts: Accounts, ttl: float = KEY_CACHE_SECONDS, clock=time.monotonic
    ) -> None:
        self.accounts = accounts
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self._lock = threading.Lock()

    def _cached(self, cache_key: str, lookup) -> Identity | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        identity = lookup()
        with self._lock:
            if len(self._cache) >= KEY_CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[cache_key] = (now + self.ttl, identity)
        return identity

    def identity(self, key: str) -> Identity | None:
        return self._cached("k:" + hash_key(key), lambda: self.accounts.identity_for_key(key))

    def owner(self, name: str) -> Identity | None:
        """The active user `name` (the page acting for its signed-in person)."""
        return self._cached("u:" + name, lambda: self.accounts.user(name))


class RateLimiter:
    """A token bucket per caller: `count` requests a period (a minute unless told),
    bursts up to that many.

    In memory, per process: each replica counts on its own.
    """

    def __init__(self, per_minute: int, clock=time.monotonic, period_seconds: float = 60.0) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / period_seconds
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, caller: str) -> int:
        """0 and one request counted when `caller` may go on; else whole seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(caller, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.refill_per_second)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                return 0
            self._buckets[caller] = (tokens, now)
            return max(1, int((1 - tokens) / self.refill_per_second + 0.999))


class Backoff:
    """Failed attempts per caller: the first `free` cost nothing, each further one doubles
    the wait before the next (from `first_wait` up to `max_wait` seconds); a success
    forgets them. A wait always ends: a caller is slowed, never locked out.

    In memory, per process, at most BACKOFF_MAX_CALLERS callers (those whose wait is over
    are dropped first).
    """

    def __init__(
        self,
        free: int = 5,
        first_wait: float = 1.0,
        max_wait: float = 900.0,
        clock=time.monotonic,
    ) -> None:
        self.free = free
        self.first_wait = first_wait
        self.max_wait = max_wait
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # caller -> (failures, wait until)
        self._lock = threading.Lock()

    def retry_after(self, caller: str) -> int:
        """Whole seconds `caller` must still wait; 0 when they may try now."""
        with self._lock:
            _, until = self._failures.get(caller, (0, 0.0))
        left = until - self._clock()
        return int(left + 0.999) if left > 0 else 0

    def failed(self, caller: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) >= BACKOFF_MAX_CALLERS:
                self._drop_waited(now)
            failures = self._failures.get(caller, (0, 0.0))[0] + 1
            over = failures - self.free
            wait = min(self.max_wait, self.first_wait * 2 ** (over - 1)) if over > 0 else 0.0
            self._failures[caller] = (failures, now + wait)

    def succeeded(self, caller: str) -> None:
        with self._lock:
            self._failures.pop(caller, None)

    def _drop_waited(self, now: float) -> None:
        for caller in [c for c, (_, until) in self._failures.items() if until <= now]:
            del self._failures[caller]
        if len(self._failures) >= BACKOFF_MAX_CALLERS:
            self._failures.clear()
