"""``LoggedProcess``: what every throwaway server the tests start offers (its PID, its log,
a stop)."""

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

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process (by PID), SIGKILL it if it is still there after ``timeout``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
