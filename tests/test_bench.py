"""Smoke run of the load tool (``bench/pusher_bench``), so it does not rot: every scenario,
a few connections and a few events, against a sockudo-py the tool spawns itself.

Only completeness is asserted (every connection subscribed, every event delivered, the JSON
fields there, the spawned servers gone afterwards), never a rate or a latency: figures
belong to ``bench/README.md``, not to a test on a shared machine.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SMALL = [
    "--subscribers", "6", "--events", "5", "--connections", "12", "--rooms", "3",
    "--members", "3", "--seconds", "0.5", "--rate", "20", "--settle", "0.2",
    "--channels", "4", "--per-channel", "2", "--timeout", "15", "--connect-timeout", "15",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench(scenario: str, *extra: str) -> tuple[list[dict[str, Any]], str]:
    """Run the tool on a spawned sockudo-py; its JSON results and its whole stdout."""
    command = [sys.executable, "-m", "bench.pusher_bench", scenario, "--spawn", "sockudo-py"]
    command += ["--spawn-port", str(free_port()), *SMALL, *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return results, done.stdout


@pytest.fixture(scope="module")
def all_run() -> tuple[list[dict[str, Any]], str]:
    return bench("all")


def by_scenario(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["scenario"]: r for r in results}


def test_all_runs_each_target_scenario_on_a_fresh_server(
    all_run: tuple[list[dict[str, Any]], str],
) -> None:
    results, _ = all_run
    assert [r["scenario"] for r in results] == ["fanout", "storm", "latency", "presence"]
    assert len({r["pid"] for r in results}) == len(results)
    for result in results:
        assert result["server"] == "sockudo-py"
        assert result["complete"], result
        assert result["figures"]["errors"] == {}, result
        assert not Path(f"/proc/{result['pid']}").exists(), "spawned server left running"


def test_fanout_and_latency_deliver_every_event(
    all_run: tuple[list[dict[str, Any]], str],
) -> None:
    results = by_scenario(all_run[0])
    fanout, latency = results["fanout"]["figures"], results["latency"]["figures"]
    assert fanout["connections"] == 6
    assert fanout["deliveries"] == fanout["expected"] == 6 * 5
    assert fanout["complete_connections"] == 6
    assert latency["deliveries"] == latency["expected"] == 6 * 10  # 20/s for 0.5 s
    for figures in (fanout, latency):
        assert figures["publishes"] == figures["deliveries"] // 6
        for key in ("p50_ms", "p99_ms", "max_ms", "server_cpu_us_per_delivery", "client_cpu_s"):
            assert key in figures


def test_storm_reports_rate_and_rss(all_run: tuple[list[dict[str, Any]], str]) -> None:
    storm = by_scenario(all_run[0])["storm"]["figures"]
    assert storm["connections"] == 12 and storm["failed"] == 0
    assert storm["connects_per_s"] > 0
    assert storm["rss_after_mb"] > 0 and "rss_per_connection_kb" in storm


def test_presence_routes_client_events_to_the_other_members(
    all_run: tuple[list[dict[str, Any]], str],
) -> None:
    presence = by_scenario(all_run[0])["presence"]["figures"]
    assert presence["connections"] == 9
    assert presence["client_events_sent"] > 0
    assert presence["deliveries"] == presence["expected"] == presence["client_events_sent"] * 2
    assert "routed_per_s" in presence and "server_cpu_us_per_routed" in presence


def test_table_has_a_row_per_figure(all_run: tuple[list[dict[str, Any]], str]) -> None:
    _, stdout = all_run
    assert "| scenario | figure | sockudo-py" in stdout
    assert "| fanout (subscribers 6, events 5, rate max) | server CPU µs per delivery |" in stdout


def test_channels_with_batches_and_two_client_processes() -> None:
    results, _ = bench("channels", "--batch", "2", "--client-procs", "2", "--json-only")
    (result,) = results
    figures = result["figures"]
    assert result["complete"], result
    assert figures["client_procs"] == 2
    assert figures["connections"] == 8
    assert figures["publishes"] == 5 // 2
    assert figures["deliveries"] == figures["expected"] == 2 * 2 * 2
