"""``/usage``: host memory figures, as Sockudo reports them, plus this process's RSS."""

from __future__ import annotations

import os


def memory_usage() -> dict[str, float]:
    """Bytes of host memory ``total``/``free``/``used``, ``percent`` used, process ``rss``."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                name, _, rest = line.partition(":")
                fields[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    total = fields.get("MemTotal", 0)
    free = fields.get("MemAvailable", fields.get("MemFree", 0))
    used = total - free
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = 0
    return {
        "total": total,
        "free": free,
        "used": used,
        "percent": round(used * 100 / total, 2) if total else 0.0,
        "rss": rss,
    }
