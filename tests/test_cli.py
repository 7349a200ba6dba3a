"""The ``sockudo-py`` command: a bad configuration stops start-up, naming the key path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockudo_py", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_wrong_value_stops_startup_naming_the_key_path(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    apps = [{"id": "1", "key": "k", "secret": "s", "max_connections": "many"}]
    config.write_text(json.dumps({"app_manager": {"array": {"apps": apps}}, "typo_key": 1}))
    result = run_cli("--config", str(config), "--port", "0")
    assert result.returncode == 2
    assert "app_manager.array.apps.0.max_connections" in result.stderr
    assert "unknown config key typo_key" in result.stderr


def test_bad_env_value_names_the_variable() -> None:
    result = run_cli("--port", "0", env={"ACTIVITY_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert "ACTIVITY_TIMEOUT" in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert "nope.json" in result.stderr


def test_driver_not_in_this_build_is_a_clear_error() -> None:
    result = run_cli("--port", "0", env={"CACHE_DRIVER": "none"})
    assert result.returncode == 2
    assert "cache.driver" in result.stderr


def test_unreachable_broker_without_fallback_stops_startup() -> None:
    env = {
        "ADAPTER_DRIVER": "redis",
        "REDIS_URL": "redis://127.0.0.1:1",
        "ADAPTER_FALLBACK_TO_LOCAL": "false",
    }
    result = run_cli("--port", "0", env=env)
    assert result.returncode != 0
    assert "adapter redis: cannot reach the broker" in result.stderr
