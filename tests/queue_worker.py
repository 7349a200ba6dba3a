"""A queue consumer process for tests/test_queue_durability.py.

``python queue_worker.py '<config json>' <queue name>``: consumes ``<queue name>`` with the
queue of that config; for each job prints ``GOT <id> <attempts>`` (flushed) and then hangs in
the handler, holding the job, until the process is killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

from sockudo_py.config import Config
from sockudo_py.queue import Job, create_queue


async def main(config_json: str, name: str) -> None:
    queue = create_queue(Config.model_validate(json.loads(config_json)))
    assert queue is not None
    await queue.start()

    async def handler(job: Job) -> None:
        print(f"GOT {job.id} {job.attempts}", flush=True)
        await asyncio.Event().wait()

    await queue.consume(name, handler)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
