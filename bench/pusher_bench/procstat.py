"""A server's CPU time and RSS from ``/proc`` (Linux), summed over the process and its
descendants (a multi-worker server is measured whole), and CPU pinning."""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/pid/stat`` after the command name (None if gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """The live descendants of ``pid``, from every process's parent id in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ProcTree:
    """A process and (when ``tree``) its descendants, looked up afresh at each reading."""

    def __init__(self, pid: int, tree: bool = True) -> None:
        self.pid = pid
        self.tree = tree

    def pids(self) -> list[int]:
        return [self.pid, *descendants(self.pid)] if self.tree else [self.pid]

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the live processes of the tree."""
        ticks = 0
        for pid in self.pids():
            fields = _stat(pid)
            if fields is not None:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / CLOCK_TICKS

    def rss_bytes(self) -> int:
        """Resident set size, summed over the tree (shared pages of workers count twice)."""
        total = 0
        for pid in self.pids():
            fields = _stat(pid)
            if fields is not None:
                total += int(fields[21]) * PAGE
        return total

    def alive(self) -> bool:
        return _stat(self.pid) is not None

    def pin(self, cpus: set[int]) -> None:
        """Pin every thread of every process of the tree to ``cpus``."""
        for pid in self.pids():
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(ProcessLookupError):
                    os.sched_setaffinity(int(task), cpus)


def own_cpu_seconds() -> float:
    """User + system CPU seconds of the calling process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one (inherited by what this process
    starts, servers included); return the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft
