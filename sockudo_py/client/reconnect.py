"""Reconnection: back-off delays and what a Pusher close code asks of the client."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class CloseAction(Enum):
    """What to do after the connection closed with a given code."""

    STOP = "stop"  # 4000-4099: the client must not reconnect as is
    BACKOFF = "backoff"  # 4100-4199 and anything else (network errors, 1006...)
    IMMEDIATE = "immediate"  # 4200-4299: reconnect at once


def close_action(code: int | None) -> CloseAction:
    """Pusher's close code ranges: 4000-4099 stop, 4100-4199 back off, 4200-4299 at once;
    every other code, or none (network error), backs off."""
    if code is not None and 4000 <= code <= 4099:
        return CloseAction.STOP
    if code is not None and 4200 <= code <= 4299:
        return CloseAction.IMMEDIATE
    return CloseAction.BACKOFF


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential back-off with jitter.

    Attempt ``n`` (0-based) waits ``min(initial_delay * multiplier**n, max_delay)`` seconds
    plus a random ``0..jitter`` fraction of it. ``max_attempts`` ``None`` means unlimited;
    ``enabled=False`` never reconnects (the client goes ``disconnected`` at the first loss).
    """

    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.25
    max_attempts: int | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0 or None")

    def base_delay(self, attempt: int) -> float:
        """The delay before retry ``attempt`` (0-based), without jitter."""
        if attempt <= 0:
            return min(self.initial_delay, self.max_delay)
        # stop multiplying once past the cap: no float overflow after many attempts
        delay = self.initial_delay
        for _ in range(attempt):
            delay *= self.multiplier
            if delay >= self.max_delay:
                return self.max_delay
        return delay

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry ``attempt`` (0-based), with jitter."""
        base = self.base_delay(attempt)
        fraction = (rng or random).uniform(0, self.jitter) if self.jitter else 0.0
        return base * (1 + fraction)

    def allows(self, attempt: int) -> bool:
        """Whether retry ``attempt`` (0-based) may be made."""
        return self.enabled and (self.max_attempts is None or attempt < self.max_attempts)
