"""Queue drivers: durable, at-least-once job queues (webhook batches go out through one)."""

from __future__ import annotations

from ..config import Config
from .base import Handler, Job, Queue, QueueFull, Reject, Retry

__all__ = ["Handler", "Job", "Queue", "QueueFull", "Reject", "Retry", "create_queue"]


def create_queue(config: Config) -> Queue | None:
    """The queue named by ``config.queue.driver``; ``None`` for ``none`` (no queue: webhooks
    are disabled, as in Sockudo). A missing client package (``redis``, ``aioboto3``) raises
    ``ImportError`` naming it."""
    driver = config.queue.driver
    if driver == "none":
        return None
    if driver == "memory":
        from .memory import MemoryQueue

        return MemoryQueue(config.queue.reliability)
    queue: Queue
    if driver == "redis":
        from .redis import create_redis_queue

        queue = create_redis_queue(config)
        queue.concurrency = config.queue.redis.concurrency
        return queue
    if driver == "sqs":
        from .sqs import SqsQueue

        queue = SqsQueue(config.queue.sqs, config.queue.reliability)
        queue.concurrency = config.queue.sqs.concurrency
        return queue
    raise ValueError(f"queue.driver: {driver!r} is not available in this build")
