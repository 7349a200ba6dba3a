"""``sockudo-py config check [PATH]``: the real command, run as a process.

Every example config of the repository passes (config.json, deploy/config/*.json, the JSON
configs of README's code blocks); secrets never reach stdout or stderr; environment
variables show in the effective configuration; broken configs exit 2 naming the key, an
unreadable file exits 1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sockudo_py.config import Config
from sockudo_py.config_cli import MASK, mask_secrets, mask_url

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROG = "sockudo-py config: "


def sockudo_py(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockudo_py", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        cwd=ROOT,
    )


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return sockudo_py("config", "check", *args, env=env)


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [
        line.removeprefix(PROG + "error: ")
        for line in result.stderr.splitlines()
        if line.startswith(PROG + "error: ")
    ]


def write(tmp_path: Path, data: Any, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# The repository's example configs
# --------------------------------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    """``//`` comments of a jsonc block removed (not the ``//`` inside strings)."""
    out, in_string, i = [], False, 0
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def readme_configs() -> list[tuple[str, dict[str, Any]]]:
    """The configs in README's ```json / ```jsonc blocks: each top-level JSON object (a
    block may hold several); fragments such as ``"webhooks": [...]`` are not configs."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    configs = []
    for match in re.finditer(r"^```jsonc?\n(.*?)^```", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        body = _strip_comments(match.group(1))
        decoder, at = json.JSONDecoder(), 0
        while (start := body.find("{", at)) >= 0 and not body[at:start].strip():
            data, at = decoder.raw_decode(body, start)
            assert isinstance(data, dict)
            configs.append((f"README.md:{line}", data))
            at = len(body) - len(body[at:].lstrip())
    return configs


def example_files() -> list[Path]:
    files = [ROOT / "config.json", *sorted((DEPLOY / "config").glob("*.json"))]
    assert len(files) >= 2, "deploy/config/*.json are examples too"
    return files


@pytest.mark.parametrize("path", example_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_config_file_is_valid(path: Path) -> None:
    result = check(str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == f"{PROG}{path}: valid" + (
        " (1 warning)" if "SECURITY" in result.stderr else ""
    )
    assert "unknown config key" not in result.stderr
    effective = json.loads(result.stdout)
    assert set(effective) == set(Config.model_fields)


def test_readme_configs_are_valid(tmp_path: Path) -> None:
    configs = readme_configs()
    assert len(configs) >= 8, [where for where, _ in configs]
    for n, (where, data) in enumerate(configs):
        # a ${VAR} without default is set, as the README says to
        env = {name: f"readme-{name}" for name in re.findall(r"\$\{(\w+)\}", json.dumps(data))}
        result = check("--quiet", str(write(tmp_path, data, f"{n}.json")), env=env)
        assert result.returncode == 0, f"{where}: {data}\n{result.stderr}"
        assert "unknown config key" not in result.stderr, where
        assert result.stdout == ""


def test_compose_nodes_config_with_their_environment() -> None:
    """deploy/config/cluster.json with a node's environment from docker-compose.yml (its
    ``${VAR:-default}`` defaults; ``${VAR:?}`` given a value, as compose requires)."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    node = compose["services"]["sockudo-1"]
    given = {"SOCKUDO_APP_SECRET": "compose-secret-from-shell"}

    def resolve(value: str) -> str:
        def one(match: re.Match[str]) -> str:
            return given.get(match.group(1), match.group(3))

        return re.sub(r"\$\{(\w+)(:[-?])([^}]*)\}", one, value)

    env = {key: resolve(str(value)) for key, value in node["environment"].items()}
    config = DEPLOY / node["volumes"][0].split(":")[0]
    result = check(str(config), env=env)
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    (app,) = effective["app_manager"]["array"]["apps"]
    assert (app["id"], app["key"], app["secret"]) == ("app-id", "app-key", MASK)
    assert app["enable_client_messages"] is True
    assert effective["database"]["redis"]["url"] == "redis://redis:6379/0"
    assert effective["instance"]["process_id"] == "sockudo-1"
    assert "compose-secret-from-shell" not in result.stdout + result.stderr
    assert "SECURITY" not in result.stderr


def test_no_path_is_the_embedded_default_and_config_option_is_the_default_path(
    tmp_path: Path,
) -> None:
    result = check()
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective == mask_secrets(Config().model_dump(mode="json"))
    assert effective["app_manager"]["array"]["apps"][0]["secret"] == MASK
    assert result.stderr.splitlines()[-1] == f"{PROG}the embedded default: valid (1 warning)"

    path = write(tmp_path, {"port": 7007})
    before_command = sockudo_py("--config", str(path), "config", "check")
    after_action = check("--config", str(path))
    for result in (before_command, after_action):
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["port"] == 7007
    # PATH wins over --config
    other = write(tmp_path, {"port": 7008}, "other.json")
    result = check(str(other), "--config", str(path))
    assert json.loads(result.stdout)["port"] == 7008


# --------------------------------------------------------------------------------------------
# Secrets and the environment
# --------------------------------------------------------------------------------------------

FILE_SECRETS = {
    "app": "canary-app-secret-1",
    "hook_url_password": "canary-hook-pw-2",
    "hook_query_token": "canary-hook-token-3",
    "hook_header": "canary-bearer-4",
    "lambda_secret": "canary-lambda-5",
    "nats_password": "canary-nats-pw-6",
    "nats_token": "canary-nats-token-7",
    "nats_url_token": "canary-nats-url-8",
    "pub_password": "canary-pub-pw-9",
    "cluster_node": "canary-cluster-node-10",
    "cache_url": "canary-cache-url-11",
    "sqs_key_id": "canary-sqs-key-id-12",
    "sqs_secret": "canary-sqs-secret-13",
    "ssl_passphrase": "canary-ssl-14",
    "redis_password": "canary-redis-pw-15",
    "sentinel_password": "canary-sentinel-16",
    "sentinel_url": "canary-sentinel-url-17",
    "cluster_password": "canary-redis-cluster-18",
    "mysql_password": "canary-mysql-19",
    "postgres_password": "canary-postgres-20",
    "dynamo_key_id": "canary-dynamo-key-id-21",
    "dynamo_secret": "canary-dynamo-secret-22",
    "queue_cluster_node": "canary-queue-node-23",
}
ENV_SECRETS = {
    "REDIS_URL": "redis://:canary-env-redis-url-31@redis:6379/0",
    "DATABASE_MYSQL_PASSWORD": "canary-env-mysql-32",
    "AWS_SECRET_ACCESS_KEY": "canary-env-aws-33",
    "AWS_ACCESS_KEY_ID": "canary-env-aws-id-34",
    "NATS_TOKEN": "canary-env-nats-35",
    "CONSOLE_ADMIN_TOKEN": "canary-env-console-36",
}


def secret_config() -> dict[str, Any]:
    s = FILE_SECRETS
    webhook = {
        "url": f"https://hooks:{s['hook_url_password']}@example.com/in?token={s['hook_query_token']}",
        "event_types": ["channel_occupied"],
        "headers": {"Authorization": f"Bearer {s['hook_header']}", "X-Plain": "plain"},
    }
    lambda_hook = {
        "lambda": {
            "function_name": "hooks",
            "client_options": {"credentials": {"secretAccessKey": s["lambda_secret"]}},
        },
        "event_types": ["member_added"],
    }
    app = {"id": "1", "key": "public-key", "secret": s["app"], "webhooks": [webhook, lambda_hook]}
    return {
        "host": "127.0.0.1",
        "app_manager": {"array": {"apps": [app]}},
        "adapter": {
            "nats": {
                "password": s["nats_password"],
                "token": s["nats_token"],
                "servers": [f"nats://{s['nats_url_token']}@n1:4222", "nats://n2:4222"],
            },
            "redis": {"redis_pub_options": {"password": s["pub_password"]}},
            "cluster": {"nodes": [f"redis://:{s['cluster_node']}@h1:7000"]},
        },
        "cache": {"redis": {"url_override": f"rediss://user:{s['cache_url']}@cache:6380/1"}},
        "queue": {
            "sqs": {
                "aws_access_key_id": s["sqs_key_id"],
                "aws_secret_access_key": s["sqs_secret"],
            },
            "redis_cluster": {"nodes": [f"redis://:{s['queue_cluster_node']}@q1:7000"]},
        },
        "ssl": {"passphrase": s["ssl_passphrase"]},
        "database": {
            "redis": {
                "password": s["redis_password"],
                "sentinel_password": s["sentinel_password"],
                "sentinels": [{"host": f"redis://:{s['sentinel_url']}@s1", "port": 26379}],
                "cluster": {"password": s["cluster_password"]},
            },
            "mysql": {"password": s["mysql_password"]},
            "postgres": {"password": s["postgres_password"]},
            "dynamodb": {
                "aws_access_key_id": s["dynamo_key_id"],
                "aws_secret_access_key": s["dynamo_secret"],
            },
        },
    }


def test_secrets_are_masked_and_never_printed(tmp_path: Path) -> None:
    path = write(tmp_path, secret_config())
    result = check(str(path), env=ENV_SECRETS)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    leaked = [c for c in [*FILE_SECRETS.values(), *ENV_SECRETS.values()] if c in output]
    assert not leaked
    assert "canary" not in output
    effective = json.loads(result.stdout)

    app = effective["app_manager"]["array"]["apps"][0]
    assert (app["key"], app["secret"]) == ("public-key", MASK)
    hook, lambda_hook = app["webhooks"]
    assert hook["url"] == f"https://hooks:{MASK}@example.com/in?token={MASK}"
    assert hook["headers"] == {"Authorization": MASK, "X-Plain": MASK}
    assert lambda_hook["lambda_"]["client_options"] == {"credentials": MASK}
    nats = effective["adapter"]["nats"]
    assert (nats["password"], nats["token"]) == (MASK, MASK)
    assert nats["servers"] == [f"nats://{MASK}@n1:4222", "nats://n2:4222"]
    redis_env_url = f"redis://:{MASK}@redis:6379/0"
    assert effective["adapter"]["redis"]["redis_pub_options"] == {
        "password": MASK,
        "url": redis_env_url,
    }
    assert effective["cache"]["redis"]["url_override"] == redis_env_url  # REDIS_URL wins
    assert effective["database"]["redis"]["url"] == redis_env_url
    queue = effective["queue"]
    assert queue["sqs"]["aws_access_key_id"] == queue["sqs"]["aws_secret_access_key"] == MASK
    assert queue["redis_cluster"]["nodes"] == [f"redis://:{MASK}@q1:7000"]
    assert effective["ssl"]["passphrase"] == MASK
    redis = effective["database"]["redis"]
    assert redis["password"] == redis["sentinel_password"] == MASK
    assert redis["sentinels"][0]["host"] == f"redis://:{MASK}@s1"
    assert redis["cluster"]["password"] == MASK
    database = effective["database"]
    assert database["mysql"]["password"] == database["postgres"]["password"] == MASK
    dynamo = database["dynamodb"]
    assert dynamo["aws_access_key_id"] == dynamo["aws_secret_access_key"] == MASK
    assert effective["console"] == {"enabled": False, "admin_token": MASK}
    # a switch is not a secret, and what is not set shows as not set
    assert effective["cors"]["credentials"] is True
    assert effective["database"]["redis"]["username"] is None


def test_unset_secrets_show_as_unset() -> None:
    effective = mask_secrets(Config().model_dump(mode="json"))
    assert effective["database"]["redis"]["password"] is None
    assert effective["database"]["mysql"]["password"] == ""
    assert effective["adapter"]["nats"]["token"] is None
    assert effective["app_manager"]["array"]["apps"][0]["secret"] == MASK


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@h:6379/0", f"redis://:{MASK}@h:6379/0"),
        ("redis://user:pw@h", f"redis://user:{MASK}@h"),
        ("nats://tok@h:4222", f"nats://{MASK}@h:4222"),
        ("https://h/x?a=1&api_key=k&token=t", f"https://h/x?a=1&api_key={MASK}&token={MASK}"),
        ("https://h/x?a=1", "https://h/x?a=1"),
        ("redis://h:6379", "redis://h:6379"),
        ("not a url", "not a url"),
        ("redis://:pw@[::1", MASK),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_env_overrides_show_in_the_effective_config(tmp_path: Path) -> None:
    path = write(tmp_path, {"port": 7001, "adapter": {"driver": "local"}})
    env = {
        "PORT": "7123",
        "ADAPTER_DRIVER": "redis",
        "METRICS_PORT": "9777",
        "SOCKUDO_DEFAULT_APP_ID": "77",
        "SOCKUDO_DEFAULT_APP_KEY": "env-key",
        "SOCKUDO_DEFAULT_APP_SECRET": "env-secret-77",
        "SOCKUDO_DEFAULT_APP_SECERT": "typo",
    }
    result = check(str(path), env=env)
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert (effective["port"], effective["metrics"]["port"]) == (7123, 9777)
    assert effective["adapter"]["driver"] == "redis"
    apps = effective["app_manager"]["array"]["apps"]
    assert [(a["id"], a["key"], a["secret"]) for a in apps] == [("77", "env-key", MASK)]
    assert "env-secret-77" not in result.stdout + result.stderr
    notes = result.stderr.splitlines()
    assert (
        f"{PROG}note: environment variables applied: ADAPTER_DRIVER, METRICS_PORT, PORT, "
        "SOCKUDO_DEFAULT_APP_ID, SOCKUDO_DEFAULT_APP_KEY, SOCKUDO_DEFAULT_APP_SECRET" in notes
    )
    assert any("SOCKUDO_DEFAULT_APP_SECERT" in n and "warning" in n for n in notes)


def test_default_secret_on_a_public_host_is_a_warning() -> None:
    public = check(str(ROOT / "config.json"))
    assert public.returncode == 0
    assert f"{PROG}warning: !!! SECURITY" in public.stderr
    loopback = check(str(ROOT / "config.json"), env={"HOST": "127.0.0.1"})
    assert loopback.returncode == 0
    assert "SECURITY" not in loopback.stderr
    assert loopback.stderr.splitlines()[-1].endswith(": valid")


def test_quiet_only_validates(tmp_path: Path) -> None:
    result = check("--quiet", str(write(tmp_path, {"typo_key": 1})))
    assert result.returncode == 0 and result.stdout == ""
    assert f"{PROG}warning: unknown config key typo_key (ignored)" in result.stderr


# --------------------------------------------------------------------------------------------
# Broken configs
# --------------------------------------------------------------------------------------------


def test_each_problem_is_one_line_naming_the_key(tmp_path: Path) -> None:
    apps = [{"id": "1", "key": "k", "secret": "s3cr3t-value", "max_connections": "many"}]
    data = {
        "port": "abc",
        "adapter": {"driver": "zookeeper"},
        "app_manager": {"array": {"apps": apps}},
    }
    path = write(tmp_path, data)
    result = check(str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = errors(result)
    assert len(lines) == 3, result.stderr
    assert [line.split(":")[0] for line in lines] == [
        "port",
        "adapter.driver",
        "app_manager.array.apps.0.max_connections",
    ]
    assert "zookeeper" in lines[1]
    assert result.stderr.splitlines()[-1] == f"{PROG}{path}: invalid (3 errors)"
    assert "s3cr3t-value" not in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_json_exits_2_with_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "port": 6001,\n}\n')
    result = check(str(path))
    assert result.returncode == 2
    (line,) = errors(result)
    assert line.startswith(f"{path}: invalid JSON at line 3")


def test_bad_env_value_and_unresolved_variable_exit_2(tmp_path: Path) -> None:
    result = check(env={"ACTIVITY_TIMEOUT": "soon"})
    assert result.returncode == 2
    assert errors(result)[0].startswith("ACTIVITY_TIMEOUT:")
    path = write(tmp_path, '{"port": ${SOCKUDO_TEST_PORT}}')
    result = check(str(path))
    assert result.returncode == 2
    assert "SOCKUDO_TEST_PORT" in errors(result)[0]


def test_driver_not_in_this_build_exits_2() -> None:
    result = check(env={"CACHE_DRIVER": "none"})
    assert result.returncode == 2
    (line,) = errors(result)
    assert line.startswith("cache.driver:")


def test_unreadable_file_exits_1(tmp_path: Path) -> None:
    missing = check(str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert errors(missing) == [f"cannot read {tmp_path / 'nope.json'}: No such file or directory"]
    assert missing.stdout == ""
    directory = check(str(tmp_path))
    assert directory.returncode == 1
    assert check("-c", str(tmp_path / "x.json")).returncode == 1


def test_not_utf8_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"port": "\xff"}')
    result = check(str(path))
    assert result.returncode == 2
    assert len(errors(result)) == 1
