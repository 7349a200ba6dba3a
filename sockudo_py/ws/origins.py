"""Origin allow-lists: ``*``, exact origins, and one ``*`` wildcard such as
``https://*.example.com``."""

from __future__ import annotations

from fnmatch import fnmatchcase


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """True when ``allowed`` admits ``origin`` (a browser's ``Origin`` header).

    A pattern without a scheme matches the origin's host part, so ``example.com`` admits
    ``https://example.com``. A missing origin is refused when a list is set.
    """
    if "*" in allowed:
        return True
    if not origin:
        return False
    origin = origin.lower().rstrip("/")
    host = origin.split("://", 1)[-1]
    for pattern in allowed:
        pattern = pattern.lower().rstrip("/")
        target = origin if "://" in pattern else host
        if target == pattern or ("*" in pattern and fnmatchcase(target, pattern)):
            return True
    return False
