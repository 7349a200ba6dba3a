"""The ``memory`` rate limiter: counters in this process (one node's view only)."""

from __future__ import annotations

import time
from collections.abc import Callable

from .base import Decision, RateLimiter

MAX_KEYS = 100_000
"""Keys kept at most; past it expired windows are swept, then the oldest windows dropped."""


class MemoryRateLimiter(RateLimiter):
    """Fixed windows in a dict ``key -> [window_end, count]`` (monotonic clock).

    Bounded: expired windows are swept every ``sweep_every`` new keys and whenever the dict
    reaches ``max_keys``; if it is still full, the windows opened first are dropped (their
    keys start afresh, i.e. are let through: memory is protected before precision).
    """

    def __init__(
        self,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: int = 1000,
    ) -> None:
        self._windows: dict[str, list[float]] = {}
        self._max_keys = max(1, max_keys)
        self._clock = clock
        self._sweep_every = max(1, sweep_every)
        self._new_keys = 0

    def __len__(self) -> int:
        return len(self._windows)

    async def hit(self, key: str, limit: int, window_seconds: float, cost: int = 1) -> Decision:
        now = self._clock()
        window = self._windows.get(key)
        if window is not None and window[0] <= now:
            del self._windows[key]  # re-inserted when counted: dict order = window start order
            window = None
        if window is None:
            if cost > limit:
                return Decision(False, limit, max(0, limit), float(window_seconds))
            self._admit_key(now)
            self._windows[key] = [now + window_seconds, float(cost)]
            return Decision(True, limit, limit - cost, float(window_seconds))
        end, count = window[0], int(window[1])
        if count + cost > limit:
            return Decision(False, limit, max(0, limit - count), end - now)
        window[1] = count + cost
        return Decision(True, limit, limit - count - cost, end - now)

    def _admit_key(self, now: float) -> None:
        self._new_keys += 1
        if self._new_keys >= self._sweep_every or len(self._windows) >= self._max_keys:
            self._new_keys = 0
            self.sweep(now)
        while len(self._windows) >= self._max_keys:
            del self._windows[next(iter(self._windows))]

    def sweep(self, now: float | None = None) -> None:
        """Drop every expired window."""
        now = self._clock() if now is None else now
        for key in [k for k, (end, _) in self._windows.items() if end <= now]:
            del self._windows[key]
