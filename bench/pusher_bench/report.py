"""The human table: one row per scenario figure, one column per server, one value per
round (``a / b``), and the issue's target where there is one. Markdown, so it pastes into
``bench/README.md`` as is."""

from __future__ import annotations

from typing import Any

ROWS: dict[str, list[tuple[str, str, str]]] = {
    "fanout": [
        ("deliveries/s", "deliveries_per_s", ""),
        ("server CPU µs per delivery", "server_cpu_us_per_delivery", "<= 3"),
        ("server busy %", "server_busy_pct", ""),
        ("p50 / p99 ms", "p50_ms/p99_ms", ""),
        ("client busy % (busiest process)", "client_busy_pct_max", ""),
    ],
    "channels": [
        ("publishes/s", "publishes_per_s", ""),
        ("deliveries/s", "deliveries_per_s", ""),
        ("server CPU µs per delivery", "server_cpu_us_per_delivery", ""),
        ("p50 / p99 ms", "p50_ms/p99_ms", ""),
        ("client busy % (busiest process)", "client_busy_pct_max", ""),
    ],
    "presence": [
        ("client events routed/s", "routed_per_s", ">= 20,000"),
        ("deliveries/s", "deliveries_per_s", ""),
        ("server CPU µs per routed event", "server_cpu_us_per_routed", ""),
        ("p50 / p99 ms", "p50_ms/p99_ms", ""),
        ("client busy % (busiest process)", "client_busy_pct_max", ""),
    ],
    "storm": [
        ("connect+subscribe/s", "connects_per_s", ">= 3,000"),
        ("RSS per connection KB", "rss_per_connection_kb", "<= soketi's"),
        ("RSS before → after MB", "rss_before_mb/rss_after_mb", ""),
        ("failed connections", "failed", "0"),
        ("client busy % (busiest process)", "connect_client_busy_pct_max", ""),
    ],
    "latency": [
        ("p50 / p95 ms", "p50_ms/p95_ms", ""),
        ("p99 ms", "p99_ms", "<= 15"),
        ("max ms", "max_ms", ""),
        ("server CPU µs per delivery", "server_cpu_us_per_delivery", ""),
        ("client busy % (busiest process)", "client_busy_pct_max", ""),
    ],
}


def label(result: dict[str, Any]) -> str:
    params = ", ".join(f"{k} {v}" for k, v in result["params"].items())
    return f"{result['scenario']} ({params})"


def cell(figures: dict[str, Any], keys: str, complete: bool) -> str:
    """One value (``a/b`` keys give ``a → b`` or ``a / b``); ``*`` marks an incomplete run."""
    values = [figures.get(key) for key in keys.split("/")]
    if all(v is None for v in values):
        return "-"
    joiner = " → " if keys.startswith("rss") else " / "
    text = joiner.join(_number(v) for v in values)
    return text if complete else f"{text}*"


def _number(value: Any) -> str:
    if isinstance(value, int) and abs(value) >= 10000:
        return f"{value / 1000:.1f}k"
    return "-" if value is None else str(value)


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table of ``results`` (rounds of one server and scenario joined by
    ``;``), with a footnote when any run was incomplete."""
    servers = list(dict.fromkeys(f"{r['server']} {r['version']}".strip() for r in results))
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(label(result), []).append(result)
    lines = [
        "| scenario | figure | " + " | ".join(servers) + " | target |",
        "|---|---|" + "---|" * len(servers) + "---|",
    ]
    for name, group in groups.items():
        for title, keys, target in ROWS[group[0]["scenario"]]:
            cells = [
                "; ".join(
                    cell(r["figures"], keys, r["complete"])
                    for r in group
                    if f"{r['server']} {r['version']}".strip() == server
                )
                or "-"
                for server in servers
            ]
            lines.append(f"| {name} | {title} | " + " | ".join(cells) + f" | {target} |")
    if not all(r["complete"] for r in results):
        lines.append("\n`*` incomplete: connections failed or deliveries missing (see JSON).")
    return "\n".join(lines)
