"""``LoggedProcess``: what every throwaway server the tests start offers (its PID, its log)."""

from __future__ import annotations

import subprocess
from pathlib import Path


class LoggedProcess:
    """Mixin for a dataclass holding a started ``process`` whose output goes to ``log_path``
    (a field or a property of the class)."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """Everything the process logged so far ("" when there is no log yet)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
