"""What the operator commands (``sockudo-py apps``, ``sockudo-py webhooks``) share.

Contract: a command ``NAME`` registers itself with :func:`add_command`, which gives it and
each of its actions the ``--config`` / ``--debug`` / ``--timeout`` options and parses the action
into ``args.NAME_action``, and runs with :func:`run_command`, which sets up logging
(``--debug``), builds the ``Config`` as the server does (``--config``, then Sockudo's env
variables) and runs the command's coroutine under ``--timeout``. A failure the command expects
is a :class:`CommandError` (its message, its exit code); any other failure of the coroutine
becomes ``ACTION failed: <reason>`` (exit 1). Every error is one line
``sockudo-py NAME: error: <message>`` on stderr, usage errors included (:class:`OneLineParser`).
``sockudo-py config`` talks to no store: it registers with ``timeout=False`` and runs on its
own (see ``config_cli``).

Exit codes: ``EXIT_FAILED`` (1) the store is unreachable or refuses what was asked;
``EXIT_USAGE`` (2) bad usage, configuration or values.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from .config import Config, ConfigError, load_config

EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_TIMEOUT = 30.0
"""Seconds the whole command may take talking to its store (``--timeout``)."""


class CommandError(Exception):
    """An expected failure: ``message`` is printed as one line, ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _common_options(noun: str, timeout: bool = True) -> argparse.ArgumentParser:
    """``--config`` / ``--debug`` / ``--timeout`` (in a group "``noun`` options"; no
    ``--timeout`` unless ``timeout``), accepted after the command and after its action too.
    Their default is SUPPRESS so a value given before the command is kept."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group(f"{noun} options")
    group.add_argument(
        "--config", "-c", metavar="PATH", default=argparse.SUPPRESS, help="config.json to load"
    )
    group.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="verbose logging"
    )
    if not timeout:
        return common
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help=f"give up on the {noun} after this long (default {DEFAULT_TIMEOUT:g})",
    )
    return common


def add_command(
    commands: Any, name: str, noun: str, *, timeout: bool = True, **kwargs: Any
) -> tuple[Any, argparse.ArgumentParser]:
    """Register the command ``name`` on ``commands`` (the ``add_subparsers`` action of the
    main parser), with ``kwargs`` (``help``, ``description``, ...) and the common options,
    whose help speaks of the ``noun`` ("store", "queue"; ``timeout=False`` for a command that
    talks to no store: no ``--timeout``). Returns the ``add_subparsers`` action for its
    actions (parsed into ``args.<name>_action``) and the common options, the parent to give
    each action's parser."""
    common = _common_options(noun, timeout)
    command = commands.add_parser(name, parents=[common], **kwargs)
    actions = command.add_subparsers(
        dest=f"{name}_action", metavar="ACTION", required=True, parser_class=OneLineParser
    )
    return actions, common


def reason(exc: BaseException) -> str:
    """``exc`` as one line: its message, else its type's name."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _not_about_listening(record: logging.LogRecord) -> bool:
    """Drops the config's warning about serving the default secret on a public address: these
    commands listen nowhere (unknown-key warnings and the rest still show)."""
    return not str(record.msg).startswith("!!! SECURITY")


def _load_config(args: argparse.Namespace) -> Config:
    try:
        return load_config(getattr(args, "config", None), dict(os.environ))
    except ConfigError as exc:
        raise CommandError("configuration error: " + "; ".join(exc.problems), EXIT_USAGE) from None
    except (ValueError, OSError) as exc:
        raise CommandError(f"configuration error: {reason(exc)}", EXIT_USAGE) from None


def run_command(
    name: str,
    args: argparse.Namespace,
    work: Callable[[argparse.Namespace, Config], Coroutine[Any, Any, None]],
    *,
    log: logging.Logger,
    timed_out: Callable[[Config, float], str],
    check_args: Callable[[argparse.Namespace], None] | None = None,
    check_config: Callable[[Config], None] | None = None,
) -> int:
    """Run ``sockudo-py name ACTION`` for the parsed ``args``; the exit code. In order:
    ``check_args(args)``, the config, ``check_config(config)``, then ``work(args, config)``
    within ``--timeout`` seconds (past it, the error is ``timed_out(config, timeout)``)."""
    prog = f"sockudo-py {name}"
    action = getattr(args, f"{name}_action")
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "debug", False) else logging.WARNING,
        format=f"{prog}: %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("sockudo_py.config").addFilter(_not_about_listening)
    try:
        if check_args is not None:
            check_args(args)
        config = _load_config(args)
        if check_config is not None:
            check_config(config)
        timeout = float(getattr(args, "timeout", DEFAULT_TIMEOUT))
        try:
            asyncio.run(asyncio.wait_for(work(args, config), timeout))
        except TimeoutError:
            raise CommandError(timed_out(config, timeout)) from None
        except CommandError:
            raise
        except Exception as exc:  # the store failed mid-way
            log.debug("%s %s failed", name, action, exc_info=True)
            raise CommandError(f"{action} failed: {reason(exc)}") from None
    except CommandError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code
    return 0
