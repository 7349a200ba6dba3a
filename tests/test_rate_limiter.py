"""Rate limiter pieces beyond the contract: the memory driver's bounds, Redis failing open,
the factory and the client-IP rule."""

from __future__ import annotations

import logging

import pytest
from interop_server import free_port

from sockudo_py.config import Config
from sockudo_py.rate_limiter import client_ip, create_rate_limiter
from sockudo_py.rate_limiter.memory import MemoryRateLimiter
from sockudo_py.rate_limiter.redis import RedisRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_sweeps_expired_windows() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(max_keys=1000, clock=clock, sweep_every=10)
    for i in range(9):
        await limiter.hit(f"k{i}", 5, 1)
    assert len(limiter) == 9
    clock.now += 2
    await limiter.hit("fresh", 5, 1)  # the 10th new key triggers a sweep
    assert len(limiter) == 1


async def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(max_keys=100, clock=clock)
    for i in range(1000):
        assert (await limiter.hit(f"k{i}", 1, 60)).allowed
    assert len(limiter) <= 100
    assert not (await limiter.hit("k999", 1, 60)).allowed  # recent windows are kept


async def test_redis_down_fails_open_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", "x:")
    with caplog.at_level(logging.WARNING, "sockudo_py.rate_limiter.redis"):
        await limiter.start()
        decisions = [await limiter.hit("k", 1, 10) for _ in range(3)]
    await limiter.stop()
    assert all(d.allowed for d in decisions)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "failing open" in warnings[0].getMessage()


def test_factory() -> None:
    # per-IP limits are off by default, but per-app limits still need a limiter
    assert isinstance(create_rate_limiter(Config()), MemoryRateLimiter)
    enabled = Config.model_validate({"rate_limiter": {"enabled": True}})
    assert isinstance(create_rate_limiter(enabled), MemoryRateLimiter)
    redis = Config.model_validate(
        {"rate_limiter": {"enabled": True, "driver": "redis", "redis": {"prefix": "p:"}}}
    )
    assert isinstance(create_rate_limiter(redis), RedisRateLimiter)


@pytest.mark.parametrize(
    ("peer", "headers", "hops", "expected"),
    [
        ("10.0.0.1", ["1.2.3.4"], 0, "10.0.0.1"),  # header ignored without trusted hops
        ("10.0.0.1", [], 1, "10.0.0.1"),  # no header: the peer
        ("10.0.0.1", ["1.2.3.4"], 1, "1.2.3.4"),
        ("10.0.0.1", ["6.6.6.6, 1.2.3.4"], 1, "1.2.3.4"),  # forged left part ignored
        ("10.0.0.1", ["6.6.6.6, 1.2.3.4, 10.0.0.9"], 2, "1.2.3.4"),
        ("10.0.0.1", ["6.6.6.6", "1.2.3.4"], 1, "1.2.3.4"),  # several headers form one chain
        ("10.0.0.1", ["1.2.3.4"], 3, "1.2.3.4"),  # shorter chain than hops: leftmost
        ("10.0.0.1", ["1.2.3.4:5555"], 1, "1.2.3.4"),
        ("10.0.0.1", ["[2001:db8::1]:443"], 1, "2001:db8::1"),
        ("10.0.0.1", ["2001:db8::1"], 1, "2001:db8::1"),
        ("10.0.0.1", ["not-an-ip"], 1, "10.0.0.1"),
        (None, [], 0, "unknown"),
    ],
)
def test_client_ip(peer: str | None, headers: list[str], hops: int, expected: str) -> None:
    assert client_ip(peer, headers, hops) == expected
