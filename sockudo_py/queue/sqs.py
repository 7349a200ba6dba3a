"""The ``sqs`` queue: jobs in Amazon SQS (or an emulator), at least once by SQS visibility.

Needs ``aioboto3`` (``pip install 'sockudo-py[aws]'``). Section ``queue.sqs``:

* Queue ``name`` is the SQS queue ``<queue_url_prefix><name>`` when ``queue_url_prefix`` is set
  (it must exist); otherwise it is looked up by name at ``endpoint_url`` (or AWS's endpoint of
  ``region``) and **created when missing** (``VisibilityTimeout`` = ``visibility_timeout``).
  ``fifo``: names get the ``.fifo`` suffix, messages ``message_group_id`` and a unique
  deduplication id (one group is delivered in order, so a retried job holds its group back).
* Credentials: ``aws_access_key_id``/``aws_secret_access_key`` or ``aws_profile_name``, else
  the AWS default chain.
* A fetched job is hidden for ``visibility_timeout`` seconds, renewed (``ChangeMessage
  Visibility``) every third of it while its handler runs; a worker that dies leaves it hidden
  until that runs out, then SQS delivers it again. Ack deletes the message; a retry sets its
  visibility to the delay; a stopping consumer sets it to 0.
* ``attempts`` is SQS's ``ApproximateReceiveCount``: a release at stop counts too, and so does
  each re-hide of a deferred job (below). The last ``error`` is only kept on dead letters.
* Delays: ``DelaySeconds`` up to 900 s (SQS's maximum). Longer delays, and any delay on a
  FIFO queue (SQS has no per-message delay there), are kept in the message (``not_before``):
  it is re-hidden when received early, up to 12 h at a time.
* Dead letters: messages of the queue ``<name>-dead-letters`` (created like the queue;
  SQS keeps them ``MessageRetentionPeriod``, 4 days by default, raised to 14 days on creation).
  Listing and replaying receive all of them (up to ``READ_ALL``) for a moment (a few seconds
  hidden), so the newest can be picked, and make the others visible again; the list is best
  effort on real SQS (short polls sample servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

try:
    import aioboto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import ClientError
except ImportError as exc:  # pragma: no cover - exercised by hiding aioboto3
    raise ImportError("queue.driver 'sqs' needs aioboto3: pip install 'sockudo-py[aws]'") from exc

from ..config import QueueReliabilityConfig, SqsQueueConfig
from .base import Job, Queue

log = logging.getLogger("sockudo_py.queue.sqs")

MAX_DELAY = 900
MAX_VISIBILITY = 43_200
DEAD_SUFFIX = "-dead-letters"
LIST_HIDE = 5
"""Seconds dead letters are hidden while being listed or replayed (then shown again)."""
READ_ALL = 10_000
"""How many dead letters listing and replaying read at most (all of them, to find the newest
or the one asked for)."""
RETENTION = 14 * 24 * 3600


class SqsQueue(Queue):
    """See the module doc."""

    def __init__(
        self, config: SqsQueueConfig, reliability: QueueReliabilityConfig | None = None
    ) -> None:
        super().__init__(reliability)
        self.config = config
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._urls: dict[str, str] = {}
        self._url_lock = asyncio.Lock()
        self._visibility = max(1, config.visibility_timeout)

    async def start(self) -> None:
        await super().start()
        if self._client is not None:
            return
        cfg = self.config
        session = aioboto3.Session(
            aws_access_key_id=cfg.aws_access_key_id,
            aws_secret_access_key=cfg.aws_secret_access_key,
            profile_name=cfg.aws_profile_name,
            region_name=cfg.region,
        )
        boto_config = BotoConfig(
            connect_timeout=5,
            read_timeout=cfg.wait_time_seconds + 10,
            retries={"total_max_attempts": 3, "mode": "standard"},
        )
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                session.client(
                    "sqs",
                    region_name=cfg.region,
                    endpoint_url=cfg.endpoint_url or None,
                    config=boto_config,
                )
            )
            await self._client.list_queues(MaxResults=1)  # reachable, credentials accepted
        except BaseException:
            self._client = None
            await stack.aclose()
            raise
        self._stack = stack

    async def _close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    # ------------------------------------------------------------------ queues

    def _sqs_name(self, name: str) -> str:
        return name + ".fifo" if self.config.fifo else name

    async def _url(self, name: str) -> str:
        url = self._urls.get(name)
        if url is not None:
            return url
        async with self._url_lock:
            if name not in self._urls:
                self._urls[name] = await self._resolve(name)
            return self._urls[name]

    async def _resolve(self, name: str) -> str:
        sqs_name = self._sqs_name(name)
        if self.config.queue_url_prefix:
            return self.config.queue_url_prefix + sqs_name
        try:
            answer = await self._client.get_queue_url(QueueName=sqs_name)
            return str(answer["QueueUrl"])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" not in code and "QueueDoesNotExist" not in code:
                raise
        attributes = {"VisibilityTimeout": str(self._visibility)}
        if name.endswith(DEAD_SUFFIX):
            attributes["MessageRetentionPeriod"] = str(RETENTION)
        if self.config.fifo:
            attributes["FifoQueue"] = "true"
        answer = await self._client.create_queue(QueueName=sqs_name, Attributes=attributes)
        log.info("created SQS queue %s", sqs_name)
        return str(answer["QueueUrl"])

    async def _send(self, name: str, body: dict[str, Any], delay: float) -> None:
        params: dict[str, Any] = {
            "QueueUrl": await self._url(name),
            "MessageBody": json.dumps(body, separators=(",", ":")),
        }
        if delay > 0:
            if delay <= MAX_DELAY and not self.config.fifo:
                params["DelaySeconds"] = max(1, round(delay))
            else:
                body["not_before"] = time.time() + delay
                params["MessageBody"] = json.dumps(body, separators=(",", ":"))
                if not self.config.fifo:
                    params["DelaySeconds"] = MAX_DELAY
        if self.config.fifo:
            params["MessageGroupId"] = self.config.message_group_id
            params["MessageDeduplicationId"] = uuid.uuid4().hex
        await self._client.send_message(**params)

    # ------------------------------------------------------------------ interface

    async def enqueue(self, name: str, payload: dict[str, Any], delay: float = 0) -> str:
        job_id = uuid.uuid4().hex
        await self._send(
            name, {"id": job_id, "payload": payload, "enqueued_at": time.time()}, delay
        )
        return job_id

    def _renew_interval(self) -> float:
        return min(self.reliability.lease_renew_interval_ms / 1000, self._visibility / 3)

    def _idle_wait(self) -> float:
        return 0.0 if self.config.wait_time_seconds else super()._idle_wait()

    async def _fetch(self, name: str, count: int) -> list[Job]:
        url = await self._url(name)
        answer = await self._client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(count, self.config.max_messages)),
            WaitTimeSeconds=self.config.wait_time_seconds,
            VisibilityTimeout=self._visibility,
            AttributeNames=["ApproximateReceiveCount"],
        )
        messages = answer.get("Messages", [])
        if not messages and not self.config.wait_time_seconds:
            await self._sleep(self._idle_wait())
        jobs: list[Job] = []
        for message in messages:
            handle = (url, message["ReceiptHandle"])
            try:
                body = json.loads(message["Body"])
                job = Job(
                    id=str(body["id"]),
                    queue=name,
                    payload=body["payload"],
                    attempts=int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                    enqueued_at=float(body.get("enqueued_at", 0)),
                    handle=handle,
                )
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("queue %r: dropping a message that is not a job: %r", name, exc)
                await self._client.delete_message(QueueUrl=url, ReceiptHandle=handle[1])
                continue
            early = float(body.get("not_before", 0)) - time.time()
            if early > 0.5:  # a long or FIFO delay: hide it until due
                await self._hide(handle, early)
                continue
            jobs.append(job)
        return jobs

    async def _hide(self, handle: tuple[str, str], seconds: float) -> None:
        await self._client.change_message_visibility(
            QueueUrl=handle[0],
            ReceiptHandle=handle[1],
            VisibilityTimeout=max(0, min(MAX_VISIBILITY, round(seconds))),
        )

    async def _ack(self, job: Job) -> None:
        url, receipt = job.handle
        await self._client.delete_message(QueueUrl=url, ReceiptHandle=receipt)

    async def _renew(self, job: Job) -> None:
        await self._hide(job.handle, self._visibility)

    async def _retry(self, job: Job, delay: float, error: str | None) -> None:
        await self._hide(job.handle, delay)

    async def _dead(self, job: Job, error: str) -> None:
        body = {
            "id": job.id,
            "payload": job.payload,
            "enqueued_at": job.enqueued_at,
            "attempts": job.attempts,
            "error": error,
            "died_at": time.time(),
        }
        await self._send(job.queue + DEAD_SUFFIX, body, 0)
        await self._ack(job)

    async def _receive_dead(self, name: str, limit: int) -> list[tuple[dict[str, Any], str]]:
        """Up to ``limit`` dead letters of ``name`` with their receipt handles, hidden for
        ``LIST_HIDE`` seconds; the caller shows them again."""
        url = await self._url(name + DEAD_SUFFIX)
        seen: dict[str, tuple[dict[str, Any], str]] = {}
        received: set[str] = set()
        while len(seen) < limit:
            answer = await self._client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                WaitTimeSeconds=0,
                VisibilityTimeout=LIST_HIDE,
            )
            messages = answer.get("Messages", [])
            ids = {str(message.get("MessageId")) for message in messages}
            if not ids - received:  # none left, or the first ones are showing again
                break
            received |= ids
            for message in messages:
                try:
                    body = json.loads(message["Body"])
                    seen[str(body["id"])] = (body, message["ReceiptHandle"])
                except (ValueError, KeyError, TypeError):
                    continue
        return list(seen.values())

    async def _show(self, name: str, receipts: list[str]) -> None:
        url = await self._url(name + DEAD_SUFFIX)
        for receipt in receipts:
            with contextlib.suppress(ClientError):
                await self._hide((url, receipt), 0)

    async def dead_letters(self, name: str, limit: int = 100) -> list[Job]:
        # every one is read: SQS hands them out in no useful order, and the newest are asked for
        found = await self._receive_dead(name, max(limit, READ_ALL))
        await self._show(name, [receipt for _, receipt in found])
        found.sort(key=lambda item: float(item[0].get("died_at", 0)), reverse=True)
        del found[limit:]
        return [
            Job(
                id=str(body["id"]),
                queue=name,
                payload=body.get("payload", {}),
                attempts=int(body.get("attempts", 0)),
                enqueued_at=float(body.get("enqueued_at", 0)),
                error=body.get("error"),
            )
            for body, _ in found
        ]

    async def replay(self, name: str, job_id: str) -> bool:
        found = await self._receive_dead(name, READ_ALL)
        others: list[str] = []
        replayed = False
        for body, receipt in found:
            if not replayed and str(body.get("id")) == job_id:
                fresh = {"id": job_id, "payload": body.get("payload", {}),
                         "enqueued_at": time.time()}  # fmt: skip
                await self._send(name, fresh, 0)
                url = await self._url(name + DEAD_SUFFIX)
                await self._client.delete_message(QueueUrl=url, ReceiptHandle=receipt)
                replayed = True
            else:
                others.append(receipt)
        await self._show(name, others)
        return replayed
