"""The console in a real browser: headless Chromium (Debian's ``chromium``, which
``scripts/services.sh`` installs; Playwright drives it, its own browser download is never
used) against a real sockudo-py process, with a pusher-js client (``tests/node``) on the
other side. The page is opened with ``?token=``; the client's connection and subscriptions
appear; an event sent from the page reaches the client and shows in the log. The page's
screenshot is saved as ``tests/artifacts/console.png``.

Without Chromium (or Playwright) the test is skipped, except with ``CI`` set: a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_server import NodeProcess, RunningServer, ServerFactory

ADMIN = "browser-test-admin-token"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WAIT_MS = 10_000
WAIT_S = WAIT_MS / 1000


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def chromium_path() -> str:
    """Debian's Chromium (``CHROMIUM`` overrides), else skip (a failure under ``CI``)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        message = "Debian's chromium is not installed: apt-get install -y chromium chromium-driver"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page (Playwright's sync API) and the errors it reports."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if _in_ci():
            pytest.fail("playwright is not installed (the test extra)")
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)

            def console_error(message: Any) -> None:
                if message.type == "error":
                    errors.append(f"console error: {message.text}")

            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            page.on("console", console_error)
            yield page, errors
        finally:
            browser.close()


@pytest.fixture
def server(sockudo_server_factory: ServerFactory) -> RunningServer:
    # enabled in the config, the admin token from the environment
    return sockudo_server_factory(
        {"console": {"enabled": True}}, env={"CONSOLE_ADMIN_TOKEN": ADMIN}
    )


def test_the_console_shows_a_pusher_js_client_and_sends_it_an_event(
    browser_page: tuple[Any, list[str]], server: RunningServer
) -> None:
    from playwright.sync_api import expect

    page, errors = browser_page
    page.goto(f"{server.http_url}/console?token={ADMIN}")
    expect(page.locator("#log-status")).to_contain_text("live")
    assert page.url == f"{server.http_url}/console"  # the token left the address bar
    expect(page.locator("#app-picker")).to_have_value(server.app["id"])  # the first app

    client = NodeProcess(
        "console_client.mjs",
        server.node_params(
            channel="console-demo", presence="presence-console-demo", user="ada",
            event="greeting",
        ),
    )  # fmt: skip
    try:
        connected = client.line(WAIT_S)
        assert connected["step"] == "connected", connected
        socket_id = connected["socketId"]
        steps = [client.line(WAIT_S) for _ in range(2)]
        assert {step.get("channel") for step in steps} == {
            "console-demo",
            "presence-console-demo",
        }, steps

        # its connection and subscriptions appear: counts, channels, members, the log
        expect(page.locator("#stat-connections")).to_have_text("1")
        demo = page.locator('#channels tr[data-channel="console-demo"]')
        expect(demo.locator("td").nth(1)).to_have_text("1")
        page.locator('#channels tr[data-channel="presence-console-demo"]').click()
        expect(page.locator("#members")).to_contain_text("ada")
        log = page.locator("#log")
        expect(log.locator('tr[data-kind="connected"]')).to_contain_text(socket_id)
        subscribed = log.locator('tr[data-kind="subscribed"]')
        expect(subscribed.filter(has_text="presence-console-demo")).to_contain_text("user ada")
        expect(subscribed).to_have_count(2)
        channels = subscribed.locator("td:nth-child(4)").all_inner_texts()
        assert sorted(channels) == ["console-demo", "presence-console-demo"]

        # an event from the page reaches the pusher-js client, and shows in the log
        page.fill("#event-channel", "console-demo")
        page.fill("#event-name", "greeting")
        page.fill("#event-data", '{"text": "hello from the console"}')
        page.click("#event-send")
        received = client.line(WAIT_S)
        assert received == {
            "step": "event",
            "channel": "console-demo",
            "event": "greeting",
            "data": {"text": "hello from the console"},
        }, received
        published = log.locator('tr[data-kind="api_event"]')
        expect(published).to_contain_text("greeting")
        expect(published).to_contain_text("via console")

        # the filters narrow the log down, the pause holds it
        page.fill("#filter-event", "greet")
        expect(log.locator("tr")).to_have_count(1)
        page.fill("#filter-event", "")
        page.fill("#filter-channel", "no-such-channel")
        expect(log.locator("tr")).to_have_count(0)
        page.fill("#filter-channel", "")
        page.click("#pause")
        expect(page.locator("#pause")).to_have_text("Resume")

        ARTIFACTS.mkdir(exist_ok=True)
        page.click("#pause")
        shot = ARTIFACTS / "console.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"console screenshot: {shot}")
        assert errors == []
    finally:
        client.close()
