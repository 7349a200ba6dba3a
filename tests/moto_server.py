"""A throwaway moto server (AWS emulator: DynamoDB, SQS, ...) for tests.

* :func:`start_moto_server` (a context manager, usable outside pytest too) runs
  ``python -m moto.server -H 127.0.0.1 -p <free port>`` as a separate process, with every
  ``AWS_*`` variable removed from its environment, waits (bounded by ``timeout``) until it
  answers HTTP, and yields a :class:`MotoServer` (``.url`` = ``http://127.0.0.1:<port>``).
  On exit it stops exactly that process (by PID) and removes its log directory.
* ``moto_server`` is the session fixture (registered in ``tests/conftest.py``).
* Config fragments may hold the marker :data:`MOTO_ENDPOINT` where an endpoint URL goes
  (``database.dynamodb.endpoint_url``, ``queue.sqs.endpoint_url``...);
  ``fragments.resolve`` replaces it with the session server's URL, starting the server on
  first use. Pass :data:`MOTO_CREDENTIALS` next to it: drivers under test must use these
  dummy credentials, never whatever AWS credentials the user has.

moto not installed or not starting is a failure naming the fix, never a skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from child_process import LoggedProcess
from fragments import Marker

HOST = "127.0.0.1"
REGION = "us-east-1"
MOTO_CREDENTIALS: dict[str, str] = {
    "region": REGION,
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
}
"""Dummy credentials (moto accepts any); spread them into a driver's config section."""


class MotoServerError(RuntimeError):
    """The moto server could not be started."""


@dataclass(frozen=True)
class MotoServer(LoggedProcess):
    """A running ``moto.server`` process started by :func:`start_moto_server`."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    host: str = HOST

    @property
    def url(self) -> str:
        """The endpoint URL to give boto clients (``endpoint_url``)."""
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Drop every resource of every service (moto's ``/moto-api/reset``)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass


def _check_installed() -> None:
    for module in ("moto", "flask", "werkzeug"):
        if importlib.util.find_spec(module) is None:
            raise MotoServerError(
                f"`{module}` is not importable: the AWS tests need moto's server mode: "
                f"{sys.executable} -m pip install 'moto[server]' "
                "(it is in the `test` extra: pip install -e '.[all,test]')"
            )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _child_env() -> dict[str, str]:
    """Our environment without any ``AWS_*`` variable (no real credentials, endpoints or
    profiles reach the emulator)."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("AWS_")}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if not with 200
    except OSError:
        return False


def _launch(root: Path, attempt: int) -> MotoServer:
    port = _free_port()
    log_path = root / f"moto-{attempt}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            cwd=root,
        )
    return MotoServer(port=port, process=process, log_path=log_path)


@contextlib.contextmanager
def start_moto_server(timeout: float = 20.0) -> Iterator[MotoServer]:
    """A moto server on a free loopback port for the block; see the module doc."""
    _check_installed()
    deadline = time.monotonic() + timeout
    root = Path(tempfile.mkdtemp(prefix="sockudo-moto-"))
    started: list[MotoServer] = []
    try:
        for attempt in range(3):  # a port taken between the check and the bind: try another
            server = _launch(root, attempt)
            started.append(server)
            while server.process.poll() is None and not _answers(server.url):
                if time.monotonic() >= deadline:
                    raise MotoServerError(
                        f"moto server on port {server.port} not answering after {timeout} s; "
                        f"log:\n{server.output()[-2000:]}"
                    )
                time.sleep(0.1)
            if server.process.poll() is None:
                break
        else:
            raise MotoServerError(
                f"moto server exited during start-up (code {server.process.returncode}); "
                f"log:\n{server.output()[-2000:]}"
            )
        yield server
    finally:
        for each in started:
            each.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A moto server shared by the whole session (started on first use)."""
    with start_moto_server() as server:
        yield server


# --------------------------------------------------------------------------- config fragments


MOTO_ENDPOINT: Any = Marker("MOTO_ENDPOINT", "moto_server", lambda server: server.url)
