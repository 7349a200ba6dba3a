"""Rate limiter contract (``sockudo_py.rate_limiter.base.RateLimiter``), run against every
driver on its real store. Windows are fractions of a second so the suite stays quick."""

from __future__ import annotations

import asyncio

from sockudo_py.rate_limiter import RateLimiter


async def test_allows_up_to_the_limit_then_denies(rate_limiter: RateLimiter, uid: str) -> None:
    key = f"{uid}:k"
    remaining = [(await rate_limiter.hit(key, 3, 10)).remaining for _ in range(3)]
    assert remaining == [2, 1, 0]
    denied = await rate_limiter.hit(key, 3, 10)
    assert not denied.allowed
    assert denied.limit == 3 and denied.remaining == 0
    assert 0 < denied.reset_after_seconds <= 10


async def test_cost_counts_points_and_a_denied_hit_counts_nothing(
    rate_limiter: RateLimiter, uid: str
) -> None:
    key = f"{uid}:batch"
    first = await rate_limiter.hit(key, 5, 10, cost=3)
    assert first.allowed and first.remaining == 2
    too_big = await rate_limiter.hit(key, 5, 10, cost=3)
    assert not too_big.allowed and too_big.remaining == 2
    fits = await rate_limiter.hit(key, 5, 10, cost=2)
    assert fits.allowed and fits.remaining == 0
    assert not (await rate_limiter.hit(key, 5, 10)).allowed


async def test_cost_over_the_limit_is_always_denied(rate_limiter: RateLimiter, uid: str) -> None:
    key = f"{uid}:huge"
    denied = await rate_limiter.hit(key, 2, 10, cost=3)
    assert not denied.allowed and denied.remaining == 2
    ok = await rate_limiter.hit(key, 2, 10)
    assert ok.allowed and ok.remaining == 1


async def test_keys_are_independent(rate_limiter: RateLimiter, uid: str) -> None:
    assert (await rate_limiter.hit(f"{uid}:a", 1, 10)).allowed
    assert not (await rate_limiter.hit(f"{uid}:a", 1, 10)).allowed
    assert (await rate_limiter.hit(f"{uid}:b", 1, 10)).allowed


async def test_window_is_fixed_and_resets(rate_limiter: RateLimiter, uid: str) -> None:
    key = f"{uid}:w"
    first = await rate_limiter.hit(key, 2, 0.4)
    assert first.allowed and 0 < first.reset_after_seconds <= 0.4
    await asyncio.sleep(0.15)
    second = await rate_limiter.hit(key, 2, 0.4)
    assert second.allowed
    # a later hit does not extend the window: it ends 0.4 s after the first hit
    assert second.reset_after_seconds <= 0.4 - 0.1
    denied = await rate_limiter.hit(key, 2, 0.4)
    assert not denied.allowed
    await asyncio.sleep(denied.reset_after_seconds + 0.05)
    again = await rate_limiter.hit(key, 2, 0.4)
    assert again.allowed and again.remaining == 1


async def test_concurrent_hits_never_exceed_the_limit(rate_limiter: RateLimiter, uid: str) -> None:
    key = f"{uid}:c"
    decisions = await asyncio.gather(*(rate_limiter.hit(key, 20, 10) for _ in range(60)))
    assert sum(d.allowed for d in decisions) == 20
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(20))
