"""End-to-end interop: the real Pusher clients (pusher-js, Laravel Echo, the pusher Node SDK)
against sockudo-py running as a real process. The scenarios live in tests/node (run.mjs); each
prints a JSON result with its checks and, on failure, every frame each client saw."""

from __future__ import annotations

import urllib.request

import pytest
from interop_server import RunningServer, ServerFactory, describe_failure, run_node

SCENARIOS = [
    "public",  # subscribe + trigger, triggerBatch, socket_id exclusion
    "private",  # signed subscribe + trigger; bad signature -> pusher:subscription_error 401
    "encrypted",  # private-encrypted-: SDK encrypts, pusher-js decrypts
    "presence",  # members, member_added/removed, two tabs of one user, GET users
    "client-events",  # private + presence (metadata.user_id), never echoed to the sender
    "client-events-refused",  # public and private-encrypted -> pusher:error 4301
    "user",  # signin, sendToUser, terminateUserConnections
    "cache",  # cached last event replayed on subscribe; pusher:cache_miss
    "subscription-count",  # pusher_internal:subscription_count -> channel.subscriptionCount
    "channel-queries",  # GET /channels (prefix, user_count), GET /channels/{ch}, trigger info
    "echo",  # Laravel Echo: listen, private, join here/joining/leaving, whisper, error()
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_interop(sockudo_server_module: RunningServer, scenario: str) -> None:
    server = sockudo_server_module
    result = run_node("run.mjs", server.node_params(scenario=scenario))
    assert result.get("ok") and result["returncode"] == 0, describe_failure(result, server)


def test_every_scenario_is_listed() -> None:
    result = run_node("run.mjs", {"scenario": "__none__", "port": 1})
    assert result["ok"] is False
    known = set(result["error"].split("known: ", 1)[1].split(", "))
    assert known == {*SCENARIOS, "keepalive", "user-auth-timeout"}


def test_server_process_up_and_metrics(sockudo_server_module: RunningServer) -> None:
    """The fixture's server answers /up on its port and /metrics on its metrics port."""
    server = sockudo_server_module
    with urllib.request.urlopen(f"{server.http_url}/up", timeout=5) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(f"{server.metrics_url}/metrics", timeout=5) as resp:
        assert resp.status == 200


def test_interop_keepalive(sockudo_server_factory: ServerFactory) -> None:
    """activity_timeout 2 s: an idle pusher-js client stays connected through ping/pong."""
    server = sockudo_server_factory(extra_config={"activity_timeout": 2})
    result = run_node("run.mjs", server.node_params(scenario="keepalive", activityTimeoutS=2))
    assert result.get("ok") and result["returncode"] == 0, describe_failure(result, server)


def test_interop_user_auth_timeout(sockudo_server_factory: ServerFactory) -> None:
    """user_authentication_timeout 1 s: only the connection that did neither signin nor a
    private subscription is closed (4009)."""
    server = sockudo_server_factory(extra_config={"user_authentication_timeout": 1})
    result = run_node("run.mjs", server.node_params(scenario="user-auth-timeout", authTimeoutS=1))
    assert result.get("ok") and result["returncode"] == 0, describe_failure(result, server)
