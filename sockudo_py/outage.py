"""``OutageLog``: how a driver says its backing service went away, and came back, without
flooding the log: one warning per interval while calls fail, one line when it answers again."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable
from urllib.parse import urlsplit

Errors = tuple[type[BaseException], ...]

WARNING_INTERVAL = 30.0


class OutageLog:
    """Call ``failed`` on each failed call and ``succeeded`` on each good one. ``failed``
    warns at most once per ``interval`` seconds, counting the failures in between and
    saying what callers get meanwhile (``meanwhile``); ``succeeded`` logs the recovery once."""

    def __init__(
        self,
        logger: logging.Logger,
        service: str,
        meanwhile: str,
        interval: float = WARNING_INTERVAL,
    ) -> None:
        self.logger, self.service, self.meanwhile, self.interval = (
            logger,
            service,
            meanwhile,
            interval,
        )
        self._failures = 0
        self._last_warning = -math.inf
        self.down = False

    def failed(self, exc: BaseException, operation: str | None = None) -> None:
        self._failures += 1
        self.down = True
        now = time.monotonic()
        if now - self._last_warning >= self.interval:
            where = f", last on {operation}" if operation else ""
            self.logger.warning(
                "%s unavailable (%d failed call(s) since the last warning; %s)%s: %r",
                self.service, self._failures, self.meanwhile, where, exc,
            )  # fmt: skip
            self._last_warning = now
            self._failures = 0

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            self._failures = 0
            self._last_warning = -math.inf
            self.logger.info("%s reachable again", self.service)

    async def probe(
        self, call: Awaitable[object], errors: Errors, operation: str | None = None
    ) -> None:
        """Await ``call`` (a start-up ping): its ``errors`` count as a failure, never raise."""
        try:
            await call
        except errors as exc:
            self.failed(exc, operation)
        else:
            self.succeeded()

    async def close(self, call: Awaitable[object], errors: Errors) -> None:
        """Await ``call`` (closing a client); its ``errors`` are only logged (debug)."""
        try:
            await call
        except errors as exc:
            self.logger.debug("%s: closing: %r", self.service, exc)


def redact_url(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
