"""Config fragments that name session services: a :class:`Marker` stands in a fragment for a
value only a session fixture knows (the Redis Cluster's seeds, moto's URL); :func:`resolve`
fills every marker in, starting each fixture only when a fragment names it. Also the fragments
several suites share (``FAST_QUEUE``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

FAST_QUEUE = {
    "retry_base_delay_ms": 50,
    "retry_max_delay_ms": 200,
    "retry_jitter": 0,
    "lease_duration_ms": 1500,
    "lease_renew_interval_ms": 300,
    "worker_poll_interval_ms": 50,
    "shutdown_timeout_ms": 300,
}
"""``queue.reliability`` with short leases, back-offs and polls, so redelivery tests take a
second or two, not minutes."""


class Marker:
    """A placeholder for ``pick(<the value of fixture>)``."""

    def __init__(self, name: str, fixture: str, pick: Callable[[Any], Any]) -> None:
        self.name, self.fixture, self.pick = name, fixture, pick

    def __repr__(self) -> str:
        return self.name


def resolve(request: pytest.FixtureRequest, fragment: dict[str, Any]) -> dict[str, Any]:
    """``fragment`` (a config dict) with every marker replaced by its value."""

    def fill(value: Any) -> Any:
        if isinstance(value, Marker):
            return value.pick(request.getfixturevalue(value.fixture))
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    filled: dict[str, Any] = fill(fragment)
    return filled
