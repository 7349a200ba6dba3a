"""``sockudo-py webhooks``: the real command, run as a process against the dead letters of the
webhook queue in each durable queue store.

Stores: redis (127.0.0.1:6379, a key prefix per test, its keys deleted afterwards) and sqs (the
session's ``moto_server``, a ``queue_url_prefix`` and so a pair of queues per test, deleted
afterwards). Dead letters are made the way the server makes them: jobs in the webhook job shape
(``sockudo_py.webhooks``) are enqueued with the queue driver and consumed by a handler that
rejects them (``Reject("HTTP 404 ...")``) or fails until ``max_attempts``. A missing service
fails these tests, never skips.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from fragments import FAST_QUEUE
from moto_server import MOTO_CREDENTIALS, MotoServer
from test_apps_cli import write_config

from sockudo_py import webhooks_cli
from sockudo_py.config import Webhook, load_config
from sockudo_py.queue import Job, Queue, Reject, create_queue
from sockudo_py.webhooks import QUEUE_NAME

pytestmark = pytest.mark.timeout(120)  # the SQS case runs ~8 CLI processes on a loaded machine

REDIS_URL = "redis://127.0.0.1:6379/0"
WIDTH = 200
"""The table's width (``COLUMNS`` of the command)."""
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

URL_TARGET = Webhook(url="https://hooks.example.com/pusher", headers={"X-Env": "test"})
LAMBDA_TARGET = Webhook.model_validate(
    {"lambda": {"function_name": "notify", "region": "eu-west-1"}}
)
OTHER_TARGET = Webhook(url="https://other.example.net/hook")


# --- running the command ---------------------------------------------------------------------


def run_cli(config: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sockudo_py", "webhooks", *args]
    return subprocess.run(
        [*command, "--config", str(config), "--timeout", "20"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": str(WIDTH)},
    )


def ok(config: Path, *args: str) -> str:
    result = run_cli(config, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(config: Path, code: int, *args: str) -> tuple[str, str]:
    """Runs a command that must fail with ``code`` and one line on stderr; (that line,
    stdout)."""
    result = run_cli(config, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0], result.stdout


def listed(config: Path, *args: str) -> list[dict[str, Any]]:
    """``dead-letters --json``, parsed (one object a line)."""
    return [json.loads(line) for line in ok(config, "dead-letters", "--json", *args).splitlines()]


# --- the stores ------------------------------------------------------------------------------


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def redis_config(tmp_path: Path, uid: str) -> Iterator[Path]:
    """A config.json with the redis queue under a key prefix of its own, cleaned afterwards."""
    prefix = f"test-webhooks-cli-{uid}:"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    client.ping()  # no Redis on 127.0.0.1:6379: an error, not a skip
    fragment = {
        "queue": {"driver": "redis", "redis": {"prefix": prefix}, "reliability": FAST_QUEUE},
        "database": {"redis": {"url": REDIS_URL}},
    }
    try:
        yield write_config(tmp_path / "config.json", fragment)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def sqs_config(tmp_path: Path, uid: str, moto_server: MotoServer) -> Iterator[Path]:
    """A config.json with the sqs queue on moto; ``queue_url_prefix`` names this test's own
    pair of queues (``webhooks`` and ``webhooks-dead-letters``), deleted afterwards."""
    client = boto3.client(
        "sqs",
        endpoint_url=moto_server.url,
        region_name=MOTO_CREDENTIALS["region"],
        aws_access_key_id=MOTO_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=MOTO_CREDENTIALS["aws_secret_access_key"],
    )
    base = f"test-webhooks-cli-{uid}-"
    urls = [
        client.create_queue(QueueName=base + name, Attributes={"VisibilityTimeout": "2"})[
            "QueueUrl"
        ]
        for name in (QUEUE_NAME, QUEUE_NAME + "-dead-letters")
    ]
    sqs = {
        **MOTO_CREDENTIALS,
        "endpoint_url": moto_server.url,
        "queue_url_prefix": urls[0].removesuffix(QUEUE_NAME),
        "visibility_timeout": 2,
        "wait_time_seconds": 1,
    }
    fragment = {"queue": {"driver": "sqs", "sqs": sqs, "reliability": FAST_QUEUE}}
    try:
        yield write_config(tmp_path / "config.json", fragment)
    finally:
        for url in urls:
            client.delete_queue(QueueUrl=url)


@pytest.fixture(params=["redis", "sqs"])
def store(request: pytest.FixtureRequest) -> Path:
    """The config.json of each durable queue store."""
    config: Path = request.getfixturevalue(f"{request.param}_config")
    return config


# --- the queue, from the test's side ---------------------------------------------------------


@asynccontextmanager
async def opened(config: Path) -> AsyncIterator[Queue]:
    queue = create_queue(load_config(str(config), {}))
    assert queue is not None
    await queue.start()
    try:
        yield queue
    finally:
        await queue.stop()


def webhook_job(app_id: str, target: Webhook, names: list[str]) -> dict[str, Any]:
    """A job as the webhook dispatcher queues it (sockudo_py/webhooks/__init__.py)."""
    events = [
        {
            "name": name,
            "channel": "presence-room",
            **({"user_id": "u1"} if "member" in name else {}),
        }
        for name in names
    ]
    body = json.dumps({"time_ms": int(time.time() * 1000), "events": events}, separators=(",", ":"))
    return {
        "app_id": app_id,
        "target": target.model_dump(mode="json"),
        "body": body,
        "events": len(events),
    }


async def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


LONG_ERROR = "HTTP 410 Gone: " + "the endpoint said no " * 20


async def seed(config: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Three dead letters: ``rejected`` (404 at once), ``failing`` (fails twice, the
    ``max_attempts``), ``gone`` (410 with a long error). Name -> (job id, payload)."""
    payloads = {
        "rejected": webhook_job(
            "app-1", URL_TARGET, ["member_added", "channel_occupied", "member_added"]
        ),
        "failing": webhook_job("app-2", LAMBDA_TARGET, ["channel_vacated"]),
        "gone": webhook_job("app-1", OTHER_TARGET, ["client_event"]),
    }
    async with opened(config) as queue:
        jobs = {name: (await queue.enqueue(QUEUE_NAME, p), p) for name, p in payloads.items()}

        async def handler(job: Job) -> None:
            if job.id == jobs["rejected"][0]:
                raise Reject("HTTP 404 Not Found")
            if job.id == jobs["gone"][0]:
                raise Reject(LONG_ERROR)
            raise ConnectionRefusedError("receiver down")

        consumer = asyncio.ensure_future(
            queue.consume(QUEUE_NAME, handler, concurrency=3, max_attempts=2)
        )

        async def all_dead() -> bool:
            return len(await queue.dead_letters(QUEUE_NAME)) == 3

        try:
            await wait_until(all_dead)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    return jobs


async def consume_back(config: Path, count: int) -> list[Job]:
    """The next ``count`` jobs delivered from the webhook queue (acknowledged)."""
    got: list[Job] = []
    async with opened(config) as queue:

        async def handler(job: Job) -> None:
            got.append(job)

        consumer = asyncio.ensure_future(queue.consume(QUEUE_NAME, handler, concurrency=3))

        async def enough() -> bool:
            return len(got) >= count

        try:
            await wait_until(enough)
            await asyncio.sleep(0.3)  # nothing more comes
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
    return got


async def cli(config: Path, *args: str) -> str:
    return await asyncio.to_thread(ok, config, *args)


async def cli_fails(config: Path, code: int, *args: str) -> tuple[str, str]:
    return await asyncio.to_thread(fails, config, code, *args)


# --- dead letters and replay in each store ---------------------------------------------------


async def test_dead_letters_table_json_and_replay(store: Path) -> None:
    jobs = await seed(store)
    rejected, failing, gone = (jobs[name][0] for name in ("rejected", "failing", "gone"))

    # the table
    table = (await cli(store, "dead-letters")).splitlines()
    assert table[0].split() == ["ID", "APP", "TARGET", "EVENTS", "ATTEMPTS", "ENQUEUED", "ERROR"]
    assert len(table) == 4
    assert all(len(line) <= WIDTH for line in table), table
    rows = {line.split()[0]: line for line in table[1:]}
    assert set(rows) == {rejected, failing, gone}
    assert table[1].split()[0] == failing  # newest first: it died on its second attempt
    cells = rows[rejected].split()
    assert cells[1:5] == ["app-1", "https://hooks.example.com/pusher", "3",
                          "member_added,channel_occupied"]  # fmt: skip
    assert cells[5] == "1" and ISO.match(cells[6])
    assert rows[rejected].endswith("Reject: HTTP 404 Not Found")
    cells = rows[failing].split()
    assert cells[1:6] == ["app-2", "lambda:notify", "1", "channel_vacated", "2"]
    assert rows[failing].endswith("ConnectionRefusedError: receiver down")
    assert "Reject: HTTP 410 Gone: the endpoint said no" in rows[gone]
    assert rows[gone].endswith("...")  # the long error cut to fit

    # --json: every field, the full payload
    records = {record["id"]: record for record in await asyncio.to_thread(listed, store)}
    assert set(records) == {rejected, failing, gone}
    record = records[rejected]
    assert record["payload"] == jobs["rejected"][1]
    assert record["queue"] == QUEUE_NAME and record["app_id"] == "app-1"
    assert record["target"] == "https://hooks.example.com/pusher"
    assert record["events"] == 3
    assert record["event_names"] == ["member_added", "channel_occupied"]
    assert record["attempts"] == 1 and record["error"] == "Reject: HTTP 404 Not Found"
    assert abs(record["enqueued_at"] - time.time()) < 60
    assert ISO.match(record["enqueued_at_iso"])
    assert records[failing]["attempts"] == 2
    assert records[failing]["target"] == "lambda:notify"
    assert records[failing]["payload"]["target"]["lambda_"]["function_name"] == "notify"
    assert records[gone]["error"] == "Reject: " + LONG_ERROR

    # --limit: the newest only, and a note that there are more
    result = await asyncio.to_thread(run_cli, store, "dead-letters", "--limit", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [failing]
    assert "there are more than 1 dead letters" in result.stderr

    # replay one: back on the queue, counted afresh, gone from the dead letters
    assert (await cli(store, "replay", rejected)).splitlines() == [f"replayed {rejected}"]
    [back] = await consume_back(store, 1)
    assert back.id == rejected and back.attempts == 1
    assert back.payload == jobs["rejected"][1]
    assert {r["id"] for r in await asyncio.to_thread(listed, store)} == {failing, gone}

    # an id that is not a dead letter: exit 1, the others still replayed
    error, out = await cli_fails(store, 1, "replay", "no-such-job", failing, rejected)
    assert "no-such-job" in error and rejected in error and "1 of 3 replayed" in error
    assert out.splitlines() == [f"replayed {failing}"]
    assert [r["id"] for r in await asyncio.to_thread(listed, store)] == [gone]

    # --all
    out = await cli(store, "replay", "--all")
    assert out.splitlines() == [
        f"replayed {gone} (app app-1, https://other.example.net/hook, 1 client_event)",
        "replayed 1 dead letter(s)",
    ]
    assert (await cli(store, "dead-letters")).strip() == "no dead letters"
    assert await asyncio.to_thread(listed, store) == []
    back_again = await consume_back(store, 2)
    assert sorted(job.id for job in back_again) == sorted([failing, gone])
    assert all(job.attempts == 1 for job in back_again)
    assert (await cli(store, "replay", "--all")).strip() == "no dead letters"


# --- drivers without a dead-letter store, bad usage, a store that is down --------------------


def test_driver_none_means_webhooks_are_off(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", {"queue": {"driver": "none"}})
    for args in (["dead-letters"], ["replay", "--all"]):
        error, out = fails(config, 2, *args)
        assert "webhooks are off (queue.driver is none)" in error
        assert out == ""


def test_memory_driver_dead_letters_are_not_reachable(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.json", {"queue": {"driver": "memory"}})
    for args in (["dead-letters"], ["replay", "abc"]):
        error, _ = fails(config, 1, *args)
        assert "memory" in error and "inside each server process" in error
        assert "redis or sqs" in error


def test_bad_usage(redis_config: Path) -> None:
    assert "give the job ids to replay, or --all" in fails(redis_config, 2, "replay")[0]
    assert "not both" in fails(redis_config, 2, "replay", "abc", "--all")[0]
    assert "--limit" in fails(redis_config, 2, "dead-letters", "--limit", "0")[0]
    assert "invalid choice" in fails(redis_config, 2, "purge")[0]


def test_unreachable_store(tmp_path: Path) -> None:
    fragment = {
        "queue": {"driver": "redis"},
        "database": {"redis": {"url": "redis://127.0.0.1:1/0"}},
    }
    config = write_config(tmp_path / "config.json", fragment)
    error, _ = fails(config, 1, "dead-letters")
    assert "cannot reach the redis queue" in error


# --- replay --all in pages (in process, a store with more than a page) -----------------------


class PagedStore:
    """``dead_letters`` / ``replay`` of a queue with ``count`` dead letters; ``dies_again``
    are dead-lettered again as soon as they are replayed (a server that keeps rejecting)."""

    def __init__(self, count: int, dies_again: set[str]) -> None:
        self.dead = [f"job-{i:04d}" for i in range(count)]  # oldest first
        self.dies_again = dies_again
        self.replayed: list[str] = []

    async def dead_letters(self, name: str, limit: int = 100) -> list[Job]:
        assert name == QUEUE_NAME
        newest = list(reversed(self.dead))[:limit]
        return [Job(job_id, name, webhook_job("app", URL_TARGET, ["x"]), 1) for job_id in newest]

    async def replay(self, name: str, job_id: str) -> bool:
        if job_id not in self.dead:
            return False
        self.dead.remove(job_id)
        self.replayed.append(job_id)
        if job_id in self.dies_again:
            self.dead.append(job_id)
        return True


async def test_replay_all_goes_through_every_page(capsys: pytest.CaptureFixture[str]) -> None:
    store = PagedStore(2 * webhooks_cli.PAGE + 37, dies_again={"job-0000", "job-0150", "job-0236"})
    await webhooks_cli._replay_all(store)  # type: ignore[arg-type]
    assert sorted(store.replayed) == [f"job-{i:04d}" for i in range(2 * webhooks_cli.PAGE + 37)]
    assert sorted(store.dead) == ["job-0000", "job-0150", "job-0236"]  # not replayed twice
    assert capsys.readouterr().out.splitlines()[-1] == "replayed 237 dead letter(s)"
