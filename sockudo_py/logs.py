"""The server's log output: human lines or JSON lines, a level, and no secrets in either.

* ``LOG_OUTPUT_FORMAT`` (Sockudo's name; ``--log-format``) picks ``human`` (default) or
  ``json``: one JSON object per line with ``time`` (UTC, ISO 8601), ``level``, ``logger``,
  ``message``, the record's structured fields (``extra=``: ``app_id``, ``socket_id``,
  ``code``...) and ``exception`` when there is one. Human lines end with the same fields
  as ``key=value``; newlines in their message are escaped (a traceback follows on its own
  lines).
* The level: ``--log-level`` or ``LOG_LEVEL`` if given, else DEBUG with ``debug``
  (``--debug``, ``DEBUG``, config ``debug``), else INFO.
* ``logging.colors_enabled`` (``LOG_COLORS_ENABLED``) colours the level of human lines on a
  terminal; ``logging.include_target`` (``LOG_INCLUDE_TARGET``) shows the logger name in them.
* Every line passes :func:`redact` last: ``auth_signature`` query values, passwords in URLs,
  hex HMAC-SHA256 signatures and ``secret``/``password``/``token`` values are masked, whatever
  logged them (uvicorn's access lines included).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

FORMATS = ("human", "json")
CHATTY = ("httpx", "httpcore", "botocore", "aiobotocore", "urllib3")
"""Libraries whose INFO/DEBUG lines are kept out (httpx's request lines show with debug)."""
LEVELS = ("debug", "info", "warning", "error", "critical")

_MASK = "***"
_SECRETS = (
    # signed HTTP API requests in access lines: ?auth_key=..&auth_signature=<hex>
    (re.compile(r"(auth_signature=)[^&\s\"']+", re.IGNORECASE), r"\1" + _MASK),
    # credentials in URLs: scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^/\s:@\"']*:)[^@\s/\"']+@", re.IGNORECASE), r"\1***@"),
    # HMAC-SHA256 in hex: channel and user auth ("key:<hex>"), webhook signatures
    (re.compile(r"\b[0-9a-fA-F]{64}\b"), _MASK),
    (re.compile(r"""(["']auth["']\s*:\s*["'][^"':]*:)[^"']+"""), r"\1" + _MASK),
    # credentials in HTTP header lines
    (
        re.compile(r"(\b(?:set-)?cookie|\bauthorization)(\s*:\s*)[^\r\n]+", re.IGNORECASE),
        r"\1\2***",
    ),
    # secret=..., "secret": "...", 'password': '...' in messages and reprs
    (
        re.compile(
            r"""(\b[\w-]*(?:secret|password|passwd|token)[\w-]*['"]?\s*[:=]\s*['"]?)"""
            r"""(?!\*\*\*)[^'"\s,;&}\]]+""",
            re.IGNORECASE,
        ),
        r"\1" + _MASK,
    ),
)


def redact(text: str) -> str:
    """``text`` with the secrets it may hold masked (see the module doc)."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


# attributes every LogRecord has; the others came with ``extra=`` and are structured fields
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record`` (what ``extra=`` added)."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_")
    }


def _timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(
                key, value if value is None or isinstance(value, (int, float)) else str(value)
            )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # values are redacted one by one, before encoding, so the line stays valid JSON
        safe = {key: redact(v) if isinstance(v, str) else v for key, v in entry.items()}
        return orjson.dumps(safe).decode()


_COLORS = {
    logging.DEBUG: "\x1b[34m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}


class HumanFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> key=value ...`` (see the module doc)."""

    def __init__(self, *, colors: bool = False, include_target: bool = True) -> None:
        super().__init__()
        self.colors = colors
        self.include_target = include_target

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname:<7}"
        if self.colors:
            level = f"{_COLORS.get(record.levelno, '')}{level}\x1b[0m"
        parts = [_timestamp(record.created), level]
        if self.include_target:
            parts.append(f"{record.name}:")
        # one record, one line: a newline in a message (a key from a URL...) cannot forge another
        parts.append(record.getMessage().replace("\r", "\\r").replace("\n", "\\n"))
        parts.extend(f"{key}={value}" for key, value in fields_of(record).items())
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        elif record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return redact(text)


@dataclass(frozen=True)
class LogSettings:
    """How the server logs: ``output_format`` (human/json) and ``level`` (a ``logging``
    level), ``colors`` and ``include_target`` for human lines."""

    output_format: str = "human"
    level: int = logging.INFO
    colors: bool = True
    include_target: bool = True

    @classmethod
    def resolve(
        cls,
        env: Mapping[str, str],
        *,
        log_format: str | None = None,
        log_level: str | None = None,
        debug: bool = False,
        colors: bool = True,
        include_target: bool = True,
    ) -> LogSettings:
        """The settings from the command line (``log_format``, ``log_level``), the
        environment (``LOG_OUTPUT_FORMAT``, ``LOG_LEVEL``) and ``debug``; raises ValueError
        naming the variable for a value that is not one of the choices."""
        output_format = _choice("LOG_OUTPUT_FORMAT", log_format or env.get("LOG_OUTPUT_FORMAT"))
        level_name = _choice("LOG_LEVEL", log_level or env.get("LOG_LEVEL"))
        if level_name:
            level = logging.getLevelNamesMapping()[level_name.upper()]
        else:
            level = logging.DEBUG if debug else logging.INFO
        return cls(output_format or "human", level, colors, include_target)


def _choice(name: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    choices = FORMATS if name == "LOG_OUTPUT_FORMAT" else LEVELS
    if value == "warn":
        value = "warning"
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def configure(settings: LogSettings, stream: TextIO | None = None) -> None:
    """Route every log record (ours, uvicorn's, the drivers') through one handler on
    ``stream`` (stderr) with ``settings``; calling it again replaces that handler."""
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter
    if settings.output_format == "json":
        formatter = JsonFormatter()
    else:
        colors = settings.colors and getattr(stream, "isatty", lambda: False)()
        formatter = HumanFormatter(colors=colors, include_target=settings.include_target)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    for name in CHATTY:  # a line per HTTP request (each webhook) or per AWS call
        level = logging.INFO if name == "httpx" and settings.level <= logging.DEBUG else None
        logging.getLogger(name).setLevel(level or logging.WARNING)
