"""``sockudo-py webhooks``: list and replay the webhook jobs that failed for good.

Webhook jobs go through the queue :data:`~sockudo_py.webhooks.QUEUE_NAME` (``webhooks``) of
the configured ``queue.driver``; a job its endpoint rejected, or that still failed when its
retries were spent, is kept in that queue's dead letters. ``dead-letters`` lists them (newest
first), ``replay`` puts them back on the queue, where the servers' webhook consumers send them
again with a fresh retry window.

The command builds the ``Config`` as the server does (``--config``, then Sockudo's env
variables) and the queue with the server's factory, starts it (no consumer: it never takes a
job) and stops it at the end. Only a durable driver is a store another process can see:
``memory`` dead letters live inside each server process (exit 1 says so), and ``none`` means
webhooks are off (exit 2).

Exit codes: 0 done; 1 the queue is unreachable, an id is not a dead letter, or the driver is
``memory``; 2 bad usage or configuration (``queue.driver`` ``none`` included). Every error is
one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .cli_support import (
    DEFAULT_TIMEOUT,
    EXIT_FAILED,
    EXIT_USAGE,
    CommandError,
    add_command,
    reason,
    run_command,
)
from .config import Config
from .webhooks import QUEUE_NAME

if TYPE_CHECKING:
    from .queue import Job, Queue

log = logging.getLogger("sockudo_py.webhooks_cli")

PROG = "sockudo-py webhooks"

DEFAULT_LIMIT = 50
PAGE = 100
"""Dead letters listed at a time by ``replay --all``."""

NONE_MESSAGE = (
    "webhooks are off (queue.driver is none): there is no queue, so no dead letters; "
    "set queue.driver to redis or sqs"
)
MEMORY_MESSAGE = (
    "queue.driver is memory: its dead letters live inside each server process and cannot be "
    "seen or replayed from another process; use queue.driver redis or sqs for a dead-letter "
    "store an operator can reach"
)

COLUMNS = ("ID", "APP", "TARGET", "EVENTS", "ATTEMPTS", "ENQUEUED", "ERROR")
MIN_ERROR_WIDTH = 24
FALLBACK_WIDTH = 160
"""Line width of the table when stdout is not a terminal (``COLUMNS`` overrides it)."""


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_webhooks_command(commands: Any) -> None:
    """Register ``webhooks`` on ``commands`` (the ``add_subparsers`` action of the main
    parser)."""
    actions, common = add_command(
        commands,
        "webhooks",
        "queue",
        help="list or replay the webhook jobs that failed for good (dead letters)",
        description="List or replay the dead letters of the webhook queue "
        f"({QUEUE_NAME!r}) of the configured queue.driver (redis or sqs; from --config and "
        "the environment, as for the server).",
        epilog="Exit codes: 0 done, 1 queue unreachable / id not a dead letter / "
        "memory driver, 2 bad usage or configuration (queue.driver none).",
    )

    listing = actions.add_parser(
        "dead-letters",
        parents=[common],
        help="a table of the dead letters, newest first",
        description="List the webhook jobs that failed for good, newest first: job id, app, "
        "target, events, attempts, when first enqueued (UTC) and the last error.",
    )
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N (default {DEFAULT_LIMIT})",
    )
    listing.add_argument(
        "--json", action="store_true", help="one JSON object per line, with the full job"
    )

    replay = actions.add_parser(
        "replay",
        parents=[common],
        help="put dead letters back on the webhook queue",
        description="Move dead letters back onto the webhook queue (attempts counted afresh, "
        "a new retry window), where the servers send them again. Exit 1 if an ID is not a "
        "dead letter (the others are still replayed).",
    )
    replay.add_argument("ids", nargs="*", metavar="ID", help="job ids (from dead-letters)")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")


# --------------------------------------------------------------------------------------------
# What a job holds
# --------------------------------------------------------------------------------------------


def target_of(payload: dict[str, Any]) -> str:
    """Where the job goes: its ``url``, or ``lambda:<function>``; ``-`` when unknown."""
    target = payload.get("target")
    if not isinstance(target, dict):
        return "-"
    if target.get("url"):
        return str(target["url"])
    function = target.get("lambda_function")
    config = target.get("lambda_") or target.get("lambda")
    if not function and isinstance(config, dict):
        function = config.get("function_name")
    if function or config:
        return f"lambda:{function or '?'}"
    return "-"


def events_of(payload: dict[str, Any]) -> tuple[int | None, list[str]]:
    """The job's event count and its distinct event names (in order), read from its body."""
    events: Any = None
    body = payload.get("body")
    try:
        parsed = json.loads(body) if isinstance(body, str | bytes) else body
        if isinstance(parsed, dict):
            events = parsed.get("events")
    except ValueError:
        pass
    names: list[str] = []
    if isinstance(events, list):
        for event in events:
            name = event.get("name") if isinstance(event, dict) else None
            if isinstance(name, str) and name not in names:
                names.append(name)
    count = payload.get("events")
    if not isinstance(count, int) or isinstance(count, bool):
        count = len(events) if isinstance(events, list) else None
    return count, names


def iso_time(seconds: float) -> str | None:
    """Unix ``seconds`` as UTC ISO 8601 to the second; ``None`` for 0 (unknown)."""
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _events_cell(payload: dict[str, Any]) -> str:
    count, names = events_of(payload)
    text = "?" if count is None else str(count)
    return f"{text} {','.join(names)}" if names else text


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()) or "-"


def job_record(job: Job) -> dict[str, Any]:
    """Every field of a dead letter, for ``--json``."""
    count, names = events_of(job.payload)
    app_id = job.payload.get("app_id")
    return {
        "id": job.id,
        "queue": job.queue,
        "app_id": None if app_id is None else str(app_id),
        "target": target_of(job.payload),
        "events": count,
        "event_names": names,
        "attempts": job.attempts,
        "enqueued_at": job.enqueued_at,
        "enqueued_at_iso": iso_time(job.enqueued_at),
        "error": job.error,
        "payload": job.payload,
    }


def _row(job: Job) -> list[str]:
    return [
        job.id,
        str(job.payload.get("app_id", "-")),
        target_of(job.payload),
        _events_cell(job.payload),
        str(job.attempts),
        iso_time(job.enqueued_at) or "-",
        _one_line(job.error),
    ]


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def format_table(jobs: list[Job], width: int | None = None) -> str:
    """The ``dead-letters`` table; the ERROR column is cut to fit ``width`` characters (the
    terminal's, ``COLUMNS``, else ``FALLBACK_WIDTH``)."""
    if not jobs:
        return "no dead letters"
    if width is None:
        width = shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns
    rows = [list(COLUMNS), *(_row(job) for job in jobs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    error_width = max(MIN_ERROR_WIDTH, width - sum(widths[:-1]) - 2 * (len(COLUMNS) - 1))
    for row in rows[1:]:
        row[-1] = _truncate(row[-1], error_width)
    widths[-1] = max(len(row[-1]) for row in rows)
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _describe(job: Job) -> str:
    app_id = job.payload.get("app_id", "-")
    return f"{job.id} (app {app_id}, {target_of(job.payload)}, {_events_cell(job.payload)})"


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


async def do_dead_letters(queue: Queue, args: argparse.Namespace) -> None:
    jobs = await queue.dead_letters(QUEUE_NAME, args.limit + 1)
    more = len(jobs) > args.limit
    jobs = jobs[: args.limit]
    if args.json:
        for job in jobs:
            print(json.dumps(job_record(job), separators=(",", ":")))
    else:
        print(format_table(jobs))
    if more:
        print(
            f"{PROG}: there are more than {args.limit} dead letters; raise --limit to see them",
            file=sys.stderr,
        )


async def _replay_ids(queue: Queue, ids: list[str]) -> None:
    missing: list[str] = []
    replayed = 0
    for job_id in dict.fromkeys(ids):  # each once, in the order given
        if await queue.replay(QUEUE_NAME, job_id):
            replayed += 1
            print(f"replayed {job_id}", flush=True)
        else:
            missing.append(job_id)
    if missing:
        raise CommandError(
            f"not a dead letter of the {QUEUE_NAME!r} queue: {', '.join(missing)} "
            f"({replayed} of {replayed + len(missing)} replayed)"
        )


async def _replay_all(queue: Queue) -> None:
    """Replay every dead letter, listing ``PAGE`` at a time. A job that dies again while this
    runs (same id) is not replayed twice, so the loop ends even while a server keeps
    rejecting what it gets."""
    done: set[str] = set()
    replayed = 0
    limit = PAGE
    while True:
        jobs = await queue.dead_letters(QUEUE_NAME, limit)
        fresh = [job for job in jobs if job.id not in done]
        for job in fresh:
            done.add(job.id)
            if await queue.replay(QUEUE_NAME, job.id):  # False: replayed by someone else
                replayed += 1
                print(f"replayed {_describe(job)}", flush=True)
        if len(jobs) < limit:  # that was every dead letter there is
            break
        # the ones seen before (dead again, newest first) take room on the next page
        limit = PAGE + len(jobs) - len(fresh)
    print(f"replayed {replayed} dead letter(s)" if replayed else "no dead letters")


async def do_replay(queue: Queue, args: argparse.Namespace) -> None:
    if args.all:
        await _replay_all(queue)
    else:
        await _replay_ids(queue, args.ids)


ACTIONS: dict[str, Callable[[Queue, argparse.Namespace], Coroutine[Any, Any, None]]] = {
    "dead-letters": do_dead_letters,
    "replay": do_replay,
}


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def check_usage(args: argparse.Namespace) -> None:
    """What argparse cannot say: ``replay`` needs ids or ``--all`` (not both); a positive
    ``--timeout``."""
    if args.webhooks_action == "replay":
        if args.all and args.ids:
            raise CommandError("give job ids or --all, not both", EXIT_USAGE)
        if not args.all and not args.ids:
            raise CommandError("give the job ids to replay, or --all", EXIT_USAGE)
    if float(getattr(args, "timeout", DEFAULT_TIMEOUT)) <= 0:
        raise CommandError("--timeout must be more than 0 seconds", EXIT_USAGE)


def check_driver(config: Config) -> None:
    """Refuse the drivers without an operator-visible dead-letter store."""
    driver = config.queue.driver
    if driver == "none":
        raise CommandError(NONE_MESSAGE, EXIT_USAGE)
    if driver == "memory":
        raise CommandError(MEMORY_MESSAGE, EXIT_FAILED)


async def run_action(args: argparse.Namespace, config: Config) -> None:
    """Open the queue of ``config``, run ``args.webhooks_action``, stop the queue. A queue
    that is down raises at start (no retry)."""
    from .queue import create_queue

    driver = config.queue.driver
    try:
        queue = create_queue(config)
    except (ValueError, ImportError) as exc:  # a driver unknown or not installed
        raise CommandError(f"cannot open the {driver} queue: {exc}", EXIT_USAGE) from None
    if queue is None:  # driver none: refused by check_driver already
        raise CommandError(NONE_MESSAGE, EXIT_USAGE)
    try:
        try:
            await queue.start()
        except Exception as exc:  # connection refused, bad credentials, ...
            log.debug("queue start failed", exc_info=True)
            raise CommandError(f"cannot reach the {driver} queue: {reason(exc)}") from exc
        await ACTIONS[args.webhooks_action](queue, args)
    finally:
        await queue.stop()  # also after a failed start: it releases what start opened


def run_webhooks_command(args: argparse.Namespace) -> int:
    """Run ``sockudo-py webhooks ACTION`` for the parsed ``args``; the exit code."""
    return run_command(
        "webhooks",
        args,
        run_action,
        log=log,
        timed_out=lambda config, timeout: (
            f"the {config.queue.driver} queue did not answer within {timeout:g}s (see --timeout)"
        ),
        check_args=check_usage,
        check_config=check_driver,
    )
