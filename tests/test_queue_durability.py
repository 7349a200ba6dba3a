"""Durable queues survive a consumer that dies mid-job: a worker process (tests/queue_worker.py)
is SIGKILLed while its handler holds a job; once the lease (redis) or the visibility timeout
(sqs) runs out, another consumer gets the same job, its attempts counted."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from moto_server import MOTO_CREDENTIALS, MotoServer

from sockudo_py.config import Config
from sockudo_py.queue import Job, create_queue

pytestmark = pytest.mark.timeout(40)

WORKER = Path(__file__).with_name("queue_worker.py")
RELIABILITY = {"lease_duration_ms": 1500, "lease_renew_interval_ms": 300,
               "worker_poll_interval_ms": 50}  # fmt: skip


def redis_fragment(uid: str) -> dict[str, Any]:
    return {
        "queue": {
            "driver": "redis",
            "redis": {"prefix": f"test-durable-{uid}:"},
            "reliability": RELIABILITY,
        },
        "database": {"redis": {"url": "redis://127.0.0.1:6379/0"}},
    }


def sqs_fragment(endpoint: str) -> dict[str, Any]:
    sqs = {**MOTO_CREDENTIALS, "endpoint_url": endpoint, "visibility_timeout": 2,
           "wait_time_seconds": 1}  # fmt: skip
    return {"queue": {"driver": "sqs", "sqs": sqs, "reliability": RELIABILITY}}


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"worker said nothing in {timeout} s"
    return process.stdout.readline().strip()


async def check_redelivered_after_kill(fragment: dict[str, Any]) -> None:
    name = f"durable-{uuid.uuid4().hex[:8]}"
    queue = create_queue(Config.model_validate(fragment))
    assert queue is not None
    await queue.start()
    worker: subprocess.Popen[str] | None = None
    try:
        job_id = await queue.enqueue(name, {"app_id": "a", "payload": {"events": []}})
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(fragment), name],
            stdout=subprocess.PIPE,
            text=True,
            cwd=WORKER.parent,
        )
        line = await asyncio.to_thread(read_line, worker, 15)
        assert line == f"GOT {job_id} 1"
        await asyncio.sleep(0.5)  # the worker is renewing its lease meanwhile
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(5)
        killed_at = time.monotonic()

        got: list[Job] = []

        async def handler(job: Job) -> None:
            got.append(job)

        consumer = asyncio.ensure_future(queue.consume(name, handler))
        deadline = killed_at + 8
        while not got:
            assert time.monotonic() < deadline, "job not delivered again after the kill"
            await asyncio.sleep(0.05)
        assert got[0].id == job_id
        assert got[0].attempts == 2
        assert got[0].payload == {"app_id": "a", "payload": {"events": []}}
        await queue.stop()
        await asyncio.wait_for(consumer, 5)
    finally:
        if worker is not None and worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(5)
        await queue.stop()


async def test_redis_job_of_a_killed_worker_is_delivered_again() -> None:
    await check_redelivered_after_kill(redis_fragment(uuid.uuid4().hex[:8]))


async def test_sqs_job_of_a_killed_worker_is_delivered_again(moto_server: MotoServer) -> None:
    await check_redelivered_after_kill(sqs_fragment(moto_server.url))
