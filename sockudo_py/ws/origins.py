"""Origin patterns, one rule for the apps' ``allowed_origins`` (WebSocket upgrades) and for
``cors.origin`` (the HTTP API): ``*`` (or ``any``) admits every origin; otherwise a pattern
is an origin (``https://app.example.com``) or a host (``app.example.com``: any scheme), in
which ``*`` stands for any run of characters but ``/``: ``https://*.example.com`` admits
``https://a.example.com`` and ``https://a.b.example.com``, not ``https://example.com``;
``http://localhost:*`` admits every port. Case and a trailing ``/`` do not matter."""

from __future__ import annotations

import re
from functools import lru_cache

ANY = frozenset({"*", "any"})
_SCHEME = r"[a-z][a-z0-9+.\-]*://"


def admits_any(patterns: list[str]) -> bool:
    return any(pattern.strip().lower() in ANY for pattern in patterns)


def origins_regex(patterns: list[str] | tuple[str, ...]) -> str:
    """One regular expression (for ``fullmatch``, case-insensitive) of ``patterns`` (none of
    them ``*``)."""
    alternatives = []
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip("/")
        scheme = "" if "://" in pattern else _SCHEME
        alternatives.append(scheme + re.escape(pattern).replace(r"\*", "[^/]*"))
    return "(?i:" + "|".join(alternatives or ["(?!)"]) + ")"


@lru_cache(maxsize=1024)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(origins_regex(patterns))


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """True when ``allowed`` admits ``origin`` (a browser's ``Origin`` header). A missing
    origin is refused when a list without ``*`` is set."""
    if admits_any(allowed):
        return True
    if not origin:
        return False
    return _compiled(tuple(allowed)).fullmatch(origin.strip().rstrip("/")) is not None
