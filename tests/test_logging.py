"""The log output of real sockudo-py processes: JSON lines (``LOG_OUTPUT_FORMAT=json``) or
human lines, the level, one line per connection error with its app and socket, no secret.

The JSON run exercises errors with ``DEBUG`` on (uvicorn's access lines then carry each
signed request's query string): upgrades refused (unknown key, origin not allowed), a socket
the server closes (user authentication timeout, 4009), a frame over the size limit (1009),
good and badly signed HTTP API calls, a private channel signature, a webhook to a URL with a
password that refuses connections, a Redis cache whose URL has a password and that does not
answer, then SIGTERM. Every line must be a JSON object with ``time``, ``level``, ``logger``
and ``message``, and none of the secrets (the app secret, each ``auth_signature`` sent, the
channel signature, the two passwords) may appear anywhere in the output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from interop_server import DEFAULT_APP, RunningServer, ServerFactory, free_port
from pusher_ws import PusherWs, api, channel_auth

from sockudo_py.logs import redact
from sockudo_py.ws.connection import LineBudget

pytestmark = pytest.mark.timeout(60)

GOOD_ORIGIN = "https://good.example"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SOCKET_ID = re.compile(r"\d+\.\d+")


def app_config(**extra: Any) -> dict[str, Any]:
    return {**DEFAULT_APP, "allowed_origins": [GOOD_ORIGIN], **extra}


async def refused(server: RunningServer, key: str, code: int, **kwargs: Any) -> None:
    """An upgrade the server admits, then refuses with ``pusher:error`` ``code``."""
    client = await PusherWs.open(server, key, **kwargs)
    try:
        assert (await client.expect("pusher:error"))["data"]["code"] == code
        assert await client.expect_close() == code
    finally:
        await client.close()


def stop(server: RunningServer) -> str:
    """SIGTERM ``server``, wait for it, and return all it wrote."""
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=15)
    return server.output()


async def wait_for_output(server: RunningServer, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.output():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{server.output()[-3000:]}"
        await asyncio.sleep(0.1)


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of ``output`` as a JSON object (a line that is not one fails)."""
    entries = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        assert TIME.fullmatch(entry["time"]), line
        entries.append(entry)
    return entries


def the_line(entries: list[dict[str, Any]], message: str, **fields: Any) -> dict[str, Any]:
    """The one entry whose message starts with ``message`` and that has ``fields``."""
    found = [
        e
        for e in entries
        if e["message"].startswith(message) and all(e.get(k) == v for k, v in fields.items())
    ]
    assert len(found) == 1, (message, fields, [e for e in entries if "socket" in e["message"]])
    return found[0]


async def test_json_lines_carry_connection_errors_and_no_secret(
    sockudo_server_factory: ServerFactory,
) -> None:
    tag = uuid.uuid4().hex[:12]
    secret, redis_password, hook_password = f"s3cret-{tag}", f"redis-pw-{tag}", f"hook-pw-{tag}"
    dead = free_port()  # nothing listens there
    hook = {"url": f"http://hooks:{hook_password}@127.0.0.1:{dead}/hook",
            "event_types": ["channel_occupied"]}  # fmt: skip
    app = app_config(secret=secret, enable_user_authentication=True, webhooks=[hook])
    config = {
        "shutdown_grace_period": 2,
        "user_authentication_timeout": 1,
        "websocket_max_payload_kb": 1,
        "cache": {
            "driver": "redis",
            "redis": {"url_override": f"redis://:{redis_password}@127.0.0.1:{dead}/0"},
        },
    }
    server = sockudo_server_factory(
        config, apps=[app], env={"LOG_OUTPUT_FORMAT": "json", "DEBUG": "true"}
    )
    key, app_id = app["key"], app["id"]
    signatures = []

    await refused(server, "no-such-key", 4001)
    await refused(server, key, 4009, origin="https://evil.example")
    idle = await PusherWs.connect(server, key, origin=GOOD_ORIGIN)
    big = await PusherWs.connect(server, key, origin=GOOD_ORIGIN)
    member = await PusherWs.connect(server, key, secret, origin=GOOD_ORIGIN)
    try:
        await big.send_raw("x" * 4096)
        assert await big.expect_close() == 1009
        await member.subscribe("private-logs")  # signed with the secret; the webhook fires
        signatures.append(channel_auth(key, secret, member.socket_id, "private-logs"))
        await member.subscribe("cache-logs")  # the Redis cache does not answer
        assert await idle.expect_close(timeout=5) == 4009  # not signed in within 1 s
        for signing_secret, status in ((secret, 200), ("not-the-secret", 401)):
            resp = await api(server, app, "GET", f"/apps/{app_id}/channels", secret=signing_secret)
            assert resp.status_code == status, resp.text
            signatures.append(resp.request.url.params["auth_signature"])
        await wait_for_output(server, "webhook of app")  # a delivery attempt failed
        output = await asyncio.to_thread(stop, server)  # ``member`` still connected
    finally:
        await idle.close()
        await big.close()
        await member.close()

    for hidden in (secret, redis_password, hook_password, *signatures):
        assert hidden not in output, f"{hidden!r} is in the log output"
    for signature in signatures:  # nor a part of one (a frame dump shows a truncated frame)
        assert signature[:16] not in output and signature[-16:] not in output, signature
    entries = json_lines(output)

    origin = the_line(entries, "connection refused: 4009 Origin not allowed", app_id=app_id)
    assert SOCKET_ID.fullmatch(origin["socket_id"]) and origin["code"] == 4009
    assert origin["level"] == "INFO" and origin["logger"] == "sockudo_py.ws"
    unknown = the_line(entries, "connection refused: 4001", app_id=None)
    assert SOCKET_ID.fullmatch(unknown["socket_id"])
    the_line(entries, "closing socket: 4009", app_id=app_id, socket_id=idle.socket_id)
    the_line(entries, "socket closed: 1009", app_id=app_id, socket_id=big.socket_id)
    drained = the_line(entries, "closing socket: 4200", socket_id=member.socket_id)
    assert drained["level"] == "DEBUG"  # every socket gets one at a drain
    # the secrets were there to hide: masked, not missing
    assert any("auth_signature=***" in e["message"] for e in entries), "no access line"
    assert any(f"redis://:***@127.0.0.1:{dead}" in e["message"] for e in entries)
    assert any(f"http://hooks:***@127.0.0.1:{dead}/hook" in e["message"] for e in entries)


async def test_human_lines(sockudo_server_factory: ServerFactory) -> None:
    server = sockudo_server_factory(apps=[app_config()])
    await refused(server, server.app["key"], 4009, origin="https://evil.example")
    lines = stop(server).splitlines()
    assert lines and not any(line.startswith("{") or "\x1b[" in line for line in lines), lines
    app_id = server.app["id"]
    pattern = re.compile(
        rf"{TIME.pattern} INFO +sockudo_py\.ws: connection refused: 4009 Origin not allowed "
        rf"app_id={app_id} socket_id={SOCKET_ID.pattern} code=4009"
    )
    assert any(pattern.fullmatch(line) for line in lines), lines
    assert not any(" DEBUG " in line for line in lines), lines  # INFO unless debug


async def test_log_level_setting(sockudo_server_factory: ServerFactory) -> None:
    server = sockudo_server_factory(env={"LOG_OUTPUT_FORMAT": "json", "LOG_LEVEL": "warning"})
    await refused(server, "no-such-key", 4001)
    entries = json_lines(stop(server))
    assert all(e["level"] in ("WARNING", "ERROR", "CRITICAL") for e in entries), entries


def test_unknown_log_format_stops_startup() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sockudo_py", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "LOG_OUTPUT_FORMAT": "xml"},
    )
    assert result.returncode == 2
    assert "LOG_OUTPUT_FORMAT" in result.stderr and "human, json" in result.stderr


HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("GET /apps/1/channels?auth_key=k&auth_signature=abc123 HTTP/1.1", "auth_signature=***"),
        ("redis redis://:pw@127.0.0.1:6379/0 down", "redis://:***@127.0.0.1"),
        ("nats://user:pw@n1:4222", "nats://user:***@n1"),
        ('{"channel":"private-x","auth":"app-key:0123456789abcdef"}', '"auth":"app-key:***"'),
        (f"X-Pusher-Signature: {HEX}", "X-Pusher-Signature: ***"),
        ("App(id='1', secret='xyz', key='k')", "secret='***'"),
        ('{"password": "pw", "app_secret":"s"}', '"password": "***", "app_secret":"***"'),
        ("< cookie: session=abc; theme=dark", "< cookie: ***"),
        ("Authorization: Bearer abc", "Authorization: ***"),
    ],
)
def test_redact_masks_secrets_whoever_logged_them(line: str, masked: str) -> None:
    assert masked in redact(line)
    for secret in ("abc123", ":pw@", "0123456789abcdef", "xyz", "session=abc", "Bearer"):
        assert secret not in redact(line)


def test_connection_error_lines_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of refused connections (bad keys) logs at most the budget, then one line with
    the count when the next window opens."""
    budget = LineBudget(lines=5, window=0.2)
    logger = logging.getLogger("sockudo_py.test_budget")
    caplog.set_level(logging.INFO, logger="sockudo_py.test_budget")
    allowed = [budget.allows(logger) for _ in range(50)]
    assert allowed.count(True) == 5
    time.sleep(0.25)
    assert budget.allows(logger)  # a new window
    [summary] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "45 connection error line(s) not logged" in summary.getMessage()
