"""WebhookDispatcher and WebhookDelivery in one process: the hold, batching, filters, the
job format, signing and the retry / dead-letter decisions, against a real HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pusher
import pytest
from webhook_receiver import WebhookReceiver

from sockudo_py.app_manager import AppManagerUnavailable
from sockudo_py.app_manager.memory import MemoryAppManager
from sockudo_py.config import App, QueueReliabilityConfig, WebhooksConfig
from sockudo_py.queue import Job, QueueFull, Reject, Retry
from sockudo_py.queue.memory import MemoryQueue
from sockudo_py.webhooks import QUEUE_NAME
from sockudo_py.webhooks.delivery import WebhookDelivery
from sockudo_py.webhooks.dispatcher import WebhookDispatcher
from sockudo_py.webhooks.events import EVENT_NAMES, matches

ALL = sorted(EVENT_NAMES)
HOLD = 0.3


def make_app(webhooks: list[dict[str, Any]], app_id: str = "1") -> App:
    return App.model_validate({"id": app_id, "key": f"key-{app_id}", "secret": f"secret-{app_id}",
                               "webhooks": webhooks})  # fmt: skip


class Setup:
    def __init__(self, apps: list[App], batching: dict[str, Any] | None = None,
                 capacity: int = 100_000) -> None:  # fmt: skip
        self.apps = MemoryAppManager(apps)
        self.queue = MemoryQueue(QueueReliabilityConfig(memory_capacity=capacity))
        config = WebhooksConfig.model_validate({"batching": batching or {}})
        self.dispatcher = WebhookDispatcher(self.apps, self.queue, config, hold=HOLD)

        self.taken: list[dict[str, Any]] = []
        self.consumer: asyncio.Future[None] | None = None

    async def jobs(self, settle: float = 0.15) -> list[dict[str, Any]]:
        """The jobs queued since the last call (taken off the queue), in order."""
        if self.consumer is None:
            await self.apps.start()

            async def take(job: Job) -> None:
                self.taken.append(job.payload)

            self.consumer = asyncio.ensure_future(self.queue.consume(QUEUE_NAME, take))
        await asyncio.sleep(settle)
        taken, self.taken = self.taken, []
        return taken

    async def close(self) -> None:
        await self.dispatcher.stop(timeout=1)
        await self.queue.stop()

    async def events(self, settle: float = 0.15) -> list[dict[str, Any]]:
        return [e for job in await self.jobs(settle) for e in json.loads(job["body"])["events"]]


async def started(setup: Setup) -> Setup:
    await setup.apps.start()
    await setup.jobs(settle=0)
    return setup


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    s = await started(Setup([make_app([{"url": "http://127.0.0.1:9/hook", "event_types": ALL}])]))
    yield s
    await s.close()


async def test_a_job_per_batch_and_endpoint_with_the_body_pusher_sends(setup: Setup) -> None:
    before = int(time.time() * 1000)
    setup.dispatcher.channel_occupied("1", "private-a")
    setup.dispatcher.member_added("1", "presence-r", "u1")
    setup.dispatcher.client_event("1", "private-a", "client-x", {"k": 1}, "1.2", None)
    setup.dispatcher.client_event("1", "presence-r", "client-y", "text", "1.3", "u1")
    setup.dispatcher.cache_miss("1", "cache-c")
    setup.dispatcher.subscription_count("1", "public-p", 3)
    [job] = await setup.jobs()
    assert job["app_id"] == "1" and job["events"] == 6
    assert job["target"]["url"] == "http://127.0.0.1:9/hook"
    assert "secret" not in json.dumps(job)
    body = json.loads(job["body"])
    assert before <= body["time_ms"] <= int(time.time() * 1000)
    assert body["events"] == [
        {"name": "channel_occupied", "channel": "private-a"},
        {"name": "member_added", "channel": "presence-r", "user_id": "u1"},
        {"name": "client_event", "channel": "private-a", "event": "client-x",
         "data": '{"k":1}', "socket_id": "1.2"},
        {"name": "client_event", "channel": "presence-r", "event": "client-y", "data": "text",
         "socket_id": "1.3", "user_id": "u1"},
        {"name": "cache_miss", "channel": "cache-c"},
        {"name": "subscription_count", "channel": "public-p", "subscription_count": 3},
    ]  # fmt: skip


async def test_vacated_and_member_removed_wait_for_the_hold(setup: Setup) -> None:
    setup.dispatcher.channel_vacated("1", "public-a")
    setup.dispatcher.member_removed("1", "presence-r", "u1")
    assert await setup.events(settle=HOLD / 3) == []
    assert await setup.events(settle=HOLD) == [
        {"name": "channel_vacated", "channel": "public-a"},
        {"name": "member_removed", "channel": "presence-r", "user_id": "u1"},
    ]


async def test_coming_back_within_the_hold_sends_nothing(setup: Setup) -> None:
    d = setup.dispatcher
    d.channel_vacated("1", "public-a")
    d.member_removed("1", "presence-r", "u1")
    d.member_removed("1", "presence-r", "u2")
    await asyncio.sleep(HOLD / 3)
    d.channel_occupied("1", "public-a")
    d.member_added("1", "presence-r", "u1")
    assert await setup.events(settle=HOLD * 1.5) == [
        {"name": "member_removed", "channel": "presence-r", "user_id": "u2"}
    ]
    d.channel_occupied("1", "public-a")  # no hold pending now: a real transition
    assert await setup.events() == [{"name": "channel_occupied", "channel": "public-a"}]


async def test_stop_sends_held_events_at_once(setup: Setup) -> None:
    setup.dispatcher.channel_vacated("1", "public-a")
    started = time.monotonic()
    await setup.dispatcher.stop(timeout=1)
    assert time.monotonic() - started < HOLD
    assert await setup.events() == [{"name": "channel_vacated", "channel": "public-a"}]


async def test_batches_are_split_at_their_size_and_merged_within_their_duration() -> None:
    s = await started(Setup([make_app([{"url": "http://h/", "event_types": ALL}])],
                            batching={"duration": 100, "size": 10}))  # fmt: skip
    for i in range(25):
        s.dispatcher.channel_occupied("1", f"c{i}")
    jobs = await s.jobs(settle=0.2)
    assert [job["events"] for job in jobs] == [10, 10, 5]
    names = [e["channel"] for job in jobs for e in json.loads(job["body"])["events"]]
    assert names == [f"c{i}" for i in range(25)]
    await s.close()

    unbatched = await started(Setup([make_app([{"url": "http://h/", "event_types": ALL}])],
                                    batching={"enabled": False}))  # fmt: skip
    for i in range(3):
        unbatched.dispatcher.channel_occupied("1", f"c{i}")
    assert [job["events"] for job in await unbatched.jobs()] == [1, 1, 1]
    await unbatched.close()


async def test_each_endpoint_gets_only_what_its_types_and_filter_take() -> None:
    hooks = [
        {"url": "http://h/all", "event_types": ALL},
        {"url": "http://h/presence", "event_types": ["member_added", "channel_occupied"],
         "filter": {"channel_name_starts_with": "presence-"}},
        {"url": "http://h/suffix", "event_types": ["channel_occupied"],
         "filter": {"channel_suffix": "-admin", "channel_pattern": "^private-"}},
        {"url": "http://h/none", "event_types": []},
    ]  # fmt: skip
    s = await started(Setup([make_app(hooks), make_app([], app_id="2")]))
    s.dispatcher.channel_occupied("1", "presence-r")
    s.dispatcher.channel_occupied("1", "private-x-admin")
    s.dispatcher.channel_occupied("1", "public-admin")
    s.dispatcher.member_added("1", "presence-r", "u")
    s.dispatcher.channel_occupied("2", "public-a")  # an app without webhooks
    s.dispatcher.channel_occupied("404", "public-a")  # an unknown app
    by_url: dict[str, list[str]] = {}
    for job in await s.jobs():
        events = json.loads(job["body"])["events"]
        by_url[job["target"]["url"]] = [f"{e['name']}:{e['channel']}" for e in events]
    assert by_url == {
        "http://h/all": ["channel_occupied:presence-r", "channel_occupied:private-x-admin",
                         "channel_occupied:public-admin", "member_added:presence-r"],
        "http://h/presence": ["channel_occupied:presence-r", "member_added:presence-r"],
        "http://h/suffix": ["channel_occupied:private-x-admin"],
    }  # fmt: skip
    await s.close()


def test_matches_reads_soketi_and_sockudo_filter_names() -> None:
    [hook] = make_app([{"url": "http://h/", "event_types": ["cache_miss"],
                        "filter": {"channel_prefix": "cache-", "channel_name_ends_with": "-x"}}]
                      ).webhooks  # fmt: skip
    assert matches(hook, {"name": "cache_miss", "channel": "cache-a-x"})
    assert not matches(hook, {"name": "cache_miss", "channel": "cache-a"})
    assert not matches(hook, {"name": "client_event", "channel": "cache-a-x"})


async def test_a_full_queue_keeps_the_jobs_and_retries_them() -> None:
    s = Setup([make_app([{"url": "http://h/", "event_types": ALL}])],
              batching={"enabled": False}, capacity=1)  # fmt: skip
    await s.apps.start()  # (nobody consumes yet)
    for i in range(3):
        s.dispatcher.channel_occupied("1", f"c{i}")
    await asyncio.sleep(0.1)
    with pytest.raises(QueueFull):
        await s.queue.enqueue(QUEUE_NAME, {"probe": True})
    taken: list[str] = []
    deadline = time.monotonic() + 5
    while len(taken) < 3 and time.monotonic() < deadline:
        taken += [json.loads(job["body"])["events"][0]["channel"] for job in await s.jobs(0.3)]
    assert sorted(taken) == ["c0", "c1", "c2"]
    await s.close()


class FlakyStore(MemoryAppManager):
    """The memory store, unreachable for its first ``failures`` lookups."""

    def __init__(self, apps: list[App], failures: int) -> None:
        super().__init__(apps)
        self.failures = failures

    async def find_by_id(self, app_id: str) -> App | None:
        if self.failures > 0:
            self.failures -= 1
            raise AppManagerUnavailable("store down")
        return await super().find_by_id(app_id)


async def test_events_wait_while_the_app_store_is_down() -> None:
    s = await started(Setup([]))
    store = FlakyStore([make_app([{"url": "http://h/", "event_types": ALL}])], failures=2)
    await store.start()
    s.dispatcher.app_manager = store
    s.dispatcher.channel_occupied("1", "public-a")
    taken: list[dict[str, Any]] = []
    deadline = time.monotonic() + 6
    while not taken and time.monotonic() < deadline:
        taken += await s.events(0.3)
    assert taken == [{"name": "channel_occupied", "channel": "public-a"}]
    await s.close()


# --- delivery -------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> AsyncIterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def job(receiver: WebhookReceiver, target: dict[str, Any] | None = None, *, attempts: int = 1,
        age: float = 0.0, app_id: str = "1") -> Job:  # fmt: skip
    body = json.dumps({"time_ms": 1, "events": [{"name": "channel_occupied", "channel": "c"}]})
    payload = {"app_id": app_id, "target": {"url": receiver.url(), **(target or {})},
               "body": body, "events": 1}  # fmt: skip
    return Job("j1", QUEUE_NAME, payload, attempts, time.time() - age)


async def delivery(**retry: Any) -> WebhookDelivery:
    config = WebhooksConfig.model_validate({"retry": retry})
    apps = MemoryAppManager([make_app([])])
    await apps.start()
    return WebhookDelivery(apps, config)


async def test_delivery_signs_the_body_as_the_pusher_sdk_checks_it(
    receiver: WebhookReceiver,
) -> None:
    d = await delivery()
    headers = {"X-Custom": "yes", "X-Pusher-Signature": "forged", "x-pusher-key": "forged"}
    the_job = job(receiver, {"headers": headers})
    await d(the_job)
    await d.close()
    [got] = receiver.received()
    queued = json.loads(the_job.payload["body"])
    assert got.json["events"] == queued["events"]
    assert abs(got.json["time_ms"] - time.time() * 1000) < 5000  # stamped when sent
    assert got.signed_by("secret-1")
    assert (
        pusher.Pusher("1", "key-1", "secret-1").validate_webhook(
            "key-1", got.headers["x-pusher-signature"], got.body.decode()
        )
        == got.json
    )
    assert got.headers["x-pusher-key"] == "key-1"
    assert got.headers["x-custom"] == "yes"
    assert got.headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409, 425, 429])
async def test_retried_statuses_back_off(receiver: WebhookReceiver, status: int) -> None:
    receiver.script("/hook", [status])
    d = await delivery(initial_backoff_ms=1000, max_backoff_ms=60_000)
    with pytest.raises(Retry) as first:
        await d(job(receiver, attempts=1))
    with pytest.raises(Retry) as third:
        await d(job(receiver, attempts=3))
    await d.close()
    assert 0.9 <= first.value.delay <= 1.1
    assert 3.6 <= third.value.delay <= 4.4
    assert str(status) in str(first.value)


async def test_retry_after_is_honoured_up_to_the_max_backoff(receiver: WebhookReceiver) -> None:
    receiver.script("/hook", [(429, {"Retry-After": "2"}), (503, {"Retry-After": "100"}), 429])
    d = await delivery(initial_backoff_ms=100, max_backoff_ms=5000)
    delays = []
    for _ in range(3):
        with pytest.raises(Retry) as retry:
            await d(job(receiver))
        delays.append(retry.value.delay)
    await d.close()
    assert delays[0] == pytest.approx(2) and delays[1] == 5 and delays[2] < 0.2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 301])
async def test_other_statuses_are_permanent(receiver: WebhookReceiver, status: int) -> None:
    receiver.script("/hook", [status])
    d = await delivery()
    with pytest.raises(Reject, match=str(status)):
        await d(job(receiver))
    await d.close()
    assert len(receiver.received()) == 1


async def test_a_down_endpoint_is_retried_until_the_window_is_spent(
    receiver: WebhookReceiver,
) -> None:
    receiver.stop()
    d = await delivery(initial_backoff_ms=1000, max_elapsed_time_ms=300_000)
    with pytest.raises(Retry, match="network error"):
        await d(job(receiver, attempts=2, age=100))
    with pytest.raises(Reject, match="gave up after 9 attempts"):
        await d(job(receiver, attempts=9, age=299))
    await d.close()


async def test_attempt_bound_retries_off_and_a_gone_app_end_in_dead_letters(
    receiver: WebhookReceiver,
) -> None:
    receiver.script("/hook", [500])
    bounded = await delivery(max_attempts=3)
    with pytest.raises(Retry):
        await bounded(job(receiver, attempts=2))
    with pytest.raises(Reject, match="after 3 attempts"):
        await bounded(job(receiver, attempts=3))
    off = await delivery(enabled=False)
    with pytest.raises(Reject, match="retries are off"):
        await off(job(receiver))
    with pytest.raises(Reject, match="no longer exists"):
        await off(job(receiver, app_id="gone"))
    with pytest.raises(Reject, match="not a webhook job"):
        await off(Job("x", QUEUE_NAME, {"app_id": "1"}, 1, time.time()))
    await bounded.close()
    await off.close()


class View:
    """A ``ChannelView`` whose answers the test sets."""

    def __init__(self) -> None:
        self.channels: set[str] = set()
        self.members: set[tuple[str, str]] = set()

    def occupied(self, app_id: str, channel: str) -> bool:
        return channel in self.channels

    def has_member(self, app_id: str, channel: str, user_id: str) -> bool:
        return (channel, user_id) in self.members


async def test_the_hold_ends_with_a_recheck_of_the_view(setup: Setup) -> None:
    view = View()
    setup.dispatcher.view = view
    d = setup.dispatcher
    d.channel_vacated("1", "public-a")
    d.channel_vacated("1", "public-b")
    d.member_removed("1", "presence-r", "u1")
    d.member_removed("1", "presence-r", "u2")
    # meanwhile another node's sockets took public-a and u1 is back there (as another node,
    # now the channels' owner, reported)
    view.channels.add("public-a")
    view.members.add(("presence-r", "u1"))
    assert await setup.events(settle=HOLD * 1.5) == [
        {"name": "channel_vacated", "channel": "public-b"},
        {"name": "member_removed", "channel": "presence-r", "user_id": "u2"},
    ]
