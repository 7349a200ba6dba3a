"""``sockudo-py config check [PATH]``: validate a configuration and print the effective one.

The configuration is built as the server builds it before it listens: the file (PATH, else
``--config``, else the embedded default; ``${VAR:-default}`` substituted), Sockudo's
environment variables on top, validation, then the drivers are built (not started: nothing is
connected to), so a driver missing from this build or a client package not installed is
found too. The server's own ``--host`` / ``--port`` / ``--debug`` are not applied.

stdout: the effective configuration as JSON (nothing with ``--quiet``), every secret masked:
``"********"`` when it is set, its value (``null`` or ``""``) when it is not. Secrets are the
values of keys that name one (``secret``, ``password``, ``passphrase``, ``token``, AWS access
keys, ``credentials``...), every webhook header value, and the credentials and secret-named
query parameters of URLs (``redis://:********@redis:6379/0``).

stderr, one line each: warnings (unknown config keys by dotted path, the default app secret on
a non-loopback host, ``SOCKUDO_*`` variables sockudo-py does not read), the environment
variables that applied (names only), the errors, and a last line with the verdict.

Exit codes: 0 valid (warnings allowed); 1 the file cannot be read; 2 invalid (one line per
problem, naming its key path or variable) or bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .cli_support import EXIT_FAILED, EXIT_USAGE, add_command, reason
from .config import Config, ConfigError, env_names, load_config

PROG = "sockudo-py config"

MASK = "********"
"""What a secret that is set is printed as."""

_SECRET_WORDS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "accesskey",
    "credential",
    "authorization",
    "apikey",
    "privatekey",
)
"""A key whose name, lower-cased without ``_``/``-``, contains one of these holds a secret
(``aws_secret_access_key``, ``sentinel_password``, ``secretAccessKey``, ``sessionToken``...)."""
_SECRET_NAMES = frozenset({"auth", "pass", "pwd"})
"""... or is one of these."""
_HEADERS = "headers"
"""A mapping under this key holds HTTP headers: every value is masked (they carry tokens)."""


def is_secret_key(key: str) -> bool:
    """Whether the value of config key ``key`` is a secret."""
    name = re.sub(r"[^a-z0-9]", "", key.lower())
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def _masked(value: Any) -> Any:
    """``MASK`` for a value that is set; ``None`` and ``""`` (not set) as they are, and
    booleans (a switch such as ``cors.credentials`` holds no secret)."""
    return value if value is None or value == "" or isinstance(value, bool) else MASK


def mask_url(text: str) -> str:
    """``text`` with the credentials of a URL masked (``user:********@`` when there is a
    password, ``********@`` for a lone user part, as NATS reads it as a token) and the values
    of its secret-named query parameters. Anything not a URL comes back unchanged; a URL too
    broken to parse that holds ``@`` is masked whole."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        username, password = parts.username, parts.password
    except ValueError:
        return MASK if "@" in text else text
    netloc, query = parts.netloc, parts.query
    if username is not None or password is not None:
        userinfo = MASK if password is None else f"{username or ''}:{MASK}"
        netloc = f"{userinfo}@{netloc.rpartition('@')[2]}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(is_secret_key(name) for name, _ in pairs):
        pairs = [(name, _masked(value) if is_secret_key(name) else value) for name, value in pairs]
        query = urlencode(pairs, safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return text
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_secrets(data: Any) -> Any:
    """A copy of the JSON-like ``data`` (a dumped config) with every secret masked."""
    if isinstance(data, dict):
        masked: dict[str, Any] = {}
        for key, value in data.items():
            if is_secret_key(key):
                masked[key] = _masked(value)
            elif key == _HEADERS and isinstance(value, dict):
                masked[key] = {name: _masked(header) for name, header in value.items()}
            else:
                masked[key] = mask_secrets(value)
        return masked
    if isinstance(data, list):
        return [mask_secrets(item) for item in data]
    if isinstance(data, str):
        return mask_url(data)
    return data


def effective_config(config: Config) -> dict[str, Any]:
    """``config`` as config.json, secrets masked."""
    dumped: dict[str, Any] = config.model_dump(mode="json")
    return mask_secrets(dumped)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def add_config_command(commands: Any) -> None:
    """Register ``config`` on ``commands`` (the ``add_subparsers`` action of the main
    parser)."""
    actions, common = add_command(
        commands,
        "config",
        "configuration",
        timeout=False,
        help="check a configuration and print the effective one (secrets masked)",
        description="Work with the configuration the server would run with: the file, then "
        "Sockudo's environment variables.",
    )
    check = actions.add_parser(
        "check",
        parents=[common],
        help="validate; print the effective configuration as JSON, secrets masked",
        description="Validate PATH (else --config, else the embedded default) with the "
        "environment variables on top, as the server does before it listens (drivers are "
        "built, nothing is connected to). stdout: the effective configuration as JSON, every "
        'secret shown as "********" when set. stderr: warnings, errors (one per line, with '
        "the key path) and the verdict.",
        epilog="Exit codes: 0 valid, 1 the file cannot be read, 2 invalid or bad usage.",
    )
    check.add_argument("path", nargs="?", metavar="PATH", help="config file (default: --config)")
    check.add_argument(
        "--quiet", "-q", action="store_true", help="only validate: print nothing on stdout"
    )


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _collect_logs(level: int) -> Iterator[list[logging.LogRecord]]:
    """The records of the ``sockudo_py`` loggers at ``level`` and above while inside, kept
    from any other handler (they are printed as this command's warnings)."""
    logger = logging.getLogger("sockudo_py")
    handler = _Collect()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def env_notes(env: Mapping[str, str]) -> list[str]:
    """What the environment does: the variables that apply, and ``SOCKUDO_*`` / soketi's
    ``SOKETI_*`` ones that sockudo-py does not read (a typo, or a feature it lacks)."""
    known = env_names()
    applied = sorted(name for name in env if name in known)
    ignored = sorted(
        name for name in env if name.startswith(("SOCKUDO_", "SOKETI_")) and name not in known
    )
    notes = []
    if applied:
        notes.append(f"note: environment variables applied: {', '.join(applied)}")
    if ignored:
        notes.append(
            "warning: environment variables not read by sockudo-py (ignored; a typo, or a "
            f"Sockudo feature it lacks): {', '.join(ignored)}"
        )
    return notes


def _readable(path: str) -> str | None:
    """Why ``path`` cannot be read, or None."""
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or reason(exc)}"
    return None


def _build_drivers(config: Config) -> None:
    """What the server does next: build (not start) every driver. Raises ValueError for a
    driver not in this build, ImportError for a client package not installed."""
    from .server import Node

    Node.build(config)


def check(
    path: str | None, env: Mapping[str, str], debug: bool = False
) -> tuple[Config | None, list[str], list[str]]:
    """Build the configuration of ``path`` and ``env``: ``(config or None, warnings and notes,
    errors)``, each message one line."""
    with _collect_logs(logging.DEBUG if debug else logging.WARNING) as records:
        try:
            config = load_config(path, env)
            _build_drivers(config)
            errors: list[str] = []
        except ConfigError as exc:
            config, errors = None, list(exc.problems)
        except (ValueError, ImportError) as exc:
            config, errors = None, [reason(exc)]
    messages = [
        f"{'warning' if r.levelno >= logging.WARNING else 'note'}: "
        + " ".join(r.getMessage().split())
        for r in records
    ]
    return config, messages + env_notes(env), errors


def run_config_command(args: argparse.Namespace) -> int:
    """Run ``sockudo-py config check`` for the parsed ``args``; the exit code."""
    path: str | None = args.path or getattr(args, "config", None)
    source = path or "the embedded default"

    def say(line: str) -> None:
        print(f"{PROG}: {line}", file=sys.stderr)

    if path is not None:
        unreadable = _readable(path)
        if unreadable is not None:
            say(f"error: {unreadable}")
            return EXIT_FAILED
    config, messages, errors = check(path, dict(os.environ), getattr(args, "debug", False))
    for line in messages:
        say(line)
    if config is None:
        for line in errors:
            say(f"error: {line}")
        say(f"{source}: invalid ({len(errors)} error{'s' if len(errors) != 1 else ''})")
        return EXIT_USAGE
    if not args.quiet:
        print(json.dumps(effective_config(config), indent=2, ensure_ascii=False))
    warned = sum(line.startswith("warning:") for line in messages)
    say(f"{source}: valid" + (f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""))
    return 0
