"""The Docker image and the compose stack, without a Docker engine (there is none here).

The ``Dockerfile`` is parsed and its required parts asserted. Then the image is played out on
this machine: the build context is what ``.dockerignore`` lets through; the build stage's
COPY and RUN lines (``pip wheel``) run in a temporary ``/src``; the runtime stage's ``pip``
RUN line runs with a fresh venv's ``pip`` first on PATH, the bind mount pointing at the
wheel the build stage made; its COPY puts the baked config at a mounted-style
``<tmp>/app/config/config.json``; then the Dockerfile's CMD (paths mapped) starts the
installed ``sockudo-py`` with the runtime stage's ENV and an operator's env overrides
(PORT, METRICS_PORT, SOCKUDO_DEFAULT_APP_*), and the HEALTHCHECK command runs against it.
pip keeps this machine's own configuration (pip.conf, ``PIP_*``), as a build host would.

``deploy/docker-compose.yml`` and the nginx, Prometheus and Grafana files it mounts are
parsed and checked against each other and the repository. ``nginx -t`` is not run: nginx is
not needed here (and would fail on the compose service names, which only Docker's DNS
resolves); the nginx checks are structural.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
NODES = ("sockudo-1", "sockudo-2", "sockudo-3")

IMAGE_CONFIG = "/app/config/config.json"
PIP_TIMEOUT = 240
"""Seconds each pip step may take (a fresh venv from the local index takes about a minute)."""


# --------------------------------------------------------------------------------------------
# Reading the Dockerfile
# --------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str

    def flags(self) -> tuple[dict[str, str], str]:
        """Leading ``--name=value`` flags and the rest (``RUN --mount=...``, ``COPY
        --from=...``, ``HEALTHCHECK --interval=... CMD ...``)."""
        flags: dict[str, str] = {}
        rest = self.args
        while match := re.match(r"--([\w-]+)=(\S+)\s+", rest):
            flags[match.group(1)] = match.group(2)
            rest = rest[match.end() :]
        return flags, rest


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                env[key] = value
        return env

    def workdir(self) -> str:
        return self.all("WORKDIR")[-1].args


def read_dockerfile() -> tuple[str, list[Stage]]:
    """The raw text and the stages (``ARG`` defaults before the first ``FROM`` substituted
    into the ``FROM`` lines)."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue  # comments and blank lines, also inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line.strip())
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest)
            base, _, name = image.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return text, stages


def exec_form(args: str) -> list[str]:
    form = json.loads(args)
    assert isinstance(form, list) and all(isinstance(part, str) for part in form), args
    return form


# --------------------------------------------------------------------------------------------
# The build context (.dockerignore, moby's rules: the last matching pattern wins, and a
# pattern matching a parent directory matches what is inside)
# --------------------------------------------------------------------------------------------


def _pattern(text: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        elif text[i] == "[":
            end = text.index("]", i)
            out, i = out + text[i : end + 1], end + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out)


def dockerignore() -> list[tuple[bool, str, re.Pattern[str]]]:
    """``(is_exception, pattern, regex)`` of each ``.dockerignore`` line."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        text = line.lstrip("!").strip().strip("/")
        rules.append((negate, text, _pattern(text)))
    return rules


def in_context(rel: str, rules: list[tuple[bool, str, re.Pattern[str]]]) -> bool:
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, _, regex in rules:
        if any(regex.fullmatch(path) for path in candidates):
            excluded = not negate
    return not excluded


def build_context(dest: Path) -> Path:
    """Copy what ``docker build .`` would send into ``dest``."""
    rules = dockerignore()
    exceptions = [text for negate, text, _ in rules if negate]
    for top, dirs, files in os.walk(ROOT):
        rel_top = os.path.relpath(top, ROOT)
        rel_top = "" if rel_top == "." else rel_top + "/"
        # an excluded directory no exception reaches into is not walked
        dirs[:] = [
            d
            for d in dirs
            if in_context(rel_top + d, rules)
            or any(e.startswith((rel_top + d + "/", "**")) for e in exceptions)
        ]
        for name in files:
            rel = rel_top + name
            if in_context(rel, rules):
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, target)
    return dest


# --------------------------------------------------------------------------------------------
# Playing the stages out
# --------------------------------------------------------------------------------------------


def host_path(root: Path, image_path: str, workdir: str = "/") -> Path:
    return root / os.path.join(workdir, image_path).lstrip("/")


def do_copy(instruction: Instruction, context: Path, root: Path, workdir: str) -> None:
    flags, rest = instruction.flags()
    assert "from" not in flags, "COPY --from: the runtime stage mounts the wheel instead"
    *sources, dest = shlex.split(rest)
    target = host_path(root, dest, workdir)
    for source in sources:
        src = context / source
        assert src.exists(), f"COPY {source}: not in the build context (.dockerignore?)"
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
        elif dest.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / src.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def map_paths(command: str, mapping: dict[str, Path]) -> str:
    for image_path, host in mapping.items():
        command = re.sub(re.escape(image_path) + r"(?=[/\s\"')]|$)", str(host), command)
    return command


def pip_env(venv: Path, stage: Stage) -> dict[str, str]:
    """This machine's environment (pip's configuration, proxies, HOME) without anything that
    would point Python elsewhere; the stage's ENV; the venv's bin first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env.update(stage.env())
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


def run_step(command: str, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["sh", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )
    assert result.returncode == 0, f"RUN {command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"


@dataclass
class Image:
    """The image played out on this machine."""

    venv: Path
    root: Path  # the runtime stage's filesystem: <root>/app/config/config.json
    stage: Stage


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    tmp = tmp_path_factory.mktemp("image")
    _, stages = read_dockerfile()
    build, runtime = stages[0], stages[-1]
    context = build_context(tmp / "context")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)

    # the wheel dir the runtime stage mounts from the build stage
    (mount,) = [
        dict(part.split("=", 1) for part in flags["mount"].split(","))
        for flags, _ in (run.flags() for run in runtime.all("RUN"))
        if "mount" in flags
    ]
    assert mount["type"] == "bind" and mount["from"] == build.name
    build_root, runtime_root = tmp / "build", tmp / "runtime"
    wheels = host_path(build_root, mount["source"])

    workdir = build.workdir()
    host_path(build_root, workdir).mkdir(parents=True)
    for instruction in build.instructions:
        if instruction.keyword == "COPY":
            do_copy(instruction, context, build_root, workdir)
        elif instruction.keyword == "RUN":
            command = map_paths(instruction.args, {mount["source"]: wheels})
            run_step(command, host_path(build_root, workdir), pip_env(venv, build))
    assert [w.name for w in wheels.glob("sockudo_py-*.whl")], "the build stage made no wheel"

    workdir = runtime.workdir()
    host_path(runtime_root, workdir).mkdir(parents=True)
    for instruction in runtime.instructions:
        if instruction.keyword == "COPY":
            do_copy(instruction, context, runtime_root, workdir)
        elif instruction.keyword == "RUN" and "pip" in instruction.args:
            _, command = instruction.flags()
            command = map_paths(command, {mount["target"]: wheels})
            run_step(command, tmp, pip_env(venv, runtime))
    return Image(venv, runtime_root, runtime)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


def container_env(image: Image, **overrides: str) -> dict[str, str]:
    """A container's environment: the image's PATH (the venv's python and sockudo-py), its
    ENV, and what the operator passes with ``-e``."""
    env = {"PATH": f"{image.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(image.root)}
    env.update(image.stage.env())
    env.update(overrides)
    return env


def in_container(image: Image, *argv: str) -> subprocess.CompletedProcess[str]:
    """``docker run --rm IMAGE argv...``, played out."""
    return subprocess.run(
        argv, cwd=image.root, env=container_env(image), capture_output=True, text=True, timeout=60
    )


def image_argv(image: Image, argv: list[str]) -> list[str]:
    """An exec-form command with its image paths (``/app/...``) on this machine."""
    return [
        str(host_path(image.root, part)) if host_path(image.root, part).exists() else part
        for part in argv
    ]


def wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sockudo-py exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"/up did not answer 200 within {timeout}s")


# --------------------------------------------------------------------------------------------
# The Dockerfile
# --------------------------------------------------------------------------------------------


def test_dockerfile_has_the_required_parts() -> None:
    text, stages = read_dockerfile()
    assert text.startswith("# syntax=docker/dockerfile:1")  # RUN --mount needs BuildKit
    assert len(stages) >= 2, "multi-stage: build, then runtime"
    for stage in stages:
        assert re.fullmatch(r"python:3\.1[1-9]-slim", stage.base), stage.base
    build, runtime = stages[0], stages[-1]

    assert any("pip wheel" in run.args for run in build.all("RUN"))
    (install,) = [run for run in runtime.all("RUN") if "pip install" in run.args]
    flags, command = install.flags()
    assert f"from={build.name}" in flags["mount"], "installs the wheel of the build stage"
    assert re.search(r"sockudo_py-\*\.whl\)?\[all\]", command), "with every driver: [all]"
    assert "--no-cache-dir" in command

    user = runtime.all("USER")[-1].args
    uid = user.split(":")[0]
    assert uid not in ("root", "0"), "runs as non-root"
    assert any(f"--uid {uid}" in run.args for run in runtime.all("RUN"))
    assert runtime.instructions.index(runtime.all("USER")[-1]) > max(
        runtime.instructions.index(run) for run in runtime.all("RUN")
    ), "USER comes after the root-only RUN steps"

    ports = " ".join(expose.args for expose in runtime.all("EXPOSE")).split()
    assert {"6001", "9601"} <= set(ports)

    (check,) = runtime.all("HEALTHCHECK")
    check_flags, check_command = check.flags()
    assert set(check_flags) >= {"interval", "timeout", "retries"}
    assert check_command.startswith("CMD [")
    probe = exec_form(check_command.removeprefix("CMD "))
    assert probe[:2] == ["python", "-c"] and "/up" in probe[2] and "PORT" in probe[2]
    assert "curl" not in check.args and "wget" not in check.args  # not in slim images

    (cmd,) = runtime.all("CMD")
    assert exec_form(cmd.args) == ["sockudo-py", "--config", IMAGE_CONFIG]
    assert [c.args for c in runtime.all("COPY")] == [f"config.json {IMAGE_CONFIG}"]
    baked = json.loads((ROOT / "config.json").read_text(encoding="utf-8"))
    assert baked["host"] == "0.0.0.0" and baked["port"] == 6001
    assert baked["metrics"]["port"] == 9601 and baked["metrics"]["host"] == "0.0.0.0"


def test_build_context_is_only_what_the_image_needs(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    sent = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    _, stages = read_dockerfile()
    for stage in stages:
        for copy in stage.all("COPY"):
            for source in shlex.split(copy.flags()[1])[:-1]:
                assert (context / source).exists(), f"COPY {source} is not in the context"
    assert "pyproject.toml" in sent and "sockudo_py/__init__.py" in sent
    assert "README.md" in sent, "pyproject.toml's readme is needed to build the wheel"
    leaked = [p for p in sent if p.startswith((".venv/", "tests/", ".git/", "deploy/"))]
    assert not leaked and not [p for p in sent if "__pycache__" in p or p.endswith(".pyc")]


# --------------------------------------------------------------------------------------------
# The image, played out
# --------------------------------------------------------------------------------------------


@pytest.mark.timeout(PIP_TIMEOUT * 2 + 60)
def test_installed_wheel_has_every_driver_and_is_not_the_worktree(image: Image) -> None:
    probe = (
        "import importlib.util, json, sockudo_py;"
        "print(json.dumps([sockudo_py.__file__] + [bool(importlib.util.find_spec(m)) for m in"
        " ('redis', 'nats', 'aiomysql', 'aioboto3', 'uvloop', 'orjson')]))"
    )
    result = in_container(image, "python", "-c", probe)
    assert result.returncode == 0, result.stderr
    location, *found = json.loads(result.stdout)
    assert Path(location).is_relative_to(image.venv), location
    assert all(found), found

    baked = str(host_path(image.root, IMAGE_CONFIG))
    check = in_container(image, "sockudo-py", "config", "check", "--quiet", baked)
    assert check.returncode == 0, check.stderr


@pytest.mark.timeout(PIP_TIMEOUT * 2 + 90)
def test_cmd_serves_and_the_healthcheck_passes(image: Image, tmp_path: Path) -> None:
    _, stages = read_dockerfile()
    runtime = stages[-1]
    port, metrics_port = free_port(), free_port()
    env = container_env(
        image,
        PORT=str(port),
        METRICS_PORT=str(metrics_port),
        SOCKUDO_DEFAULT_APP_ID="4242",
        SOCKUDO_DEFAULT_APP_KEY="docker-key",
        SOCKUDO_DEFAULT_APP_SECRET="docker-secret-4242",
    )
    argv = image_argv(image, exec_form(runtime.all("CMD")[0].args))
    assert argv[-1] == str(host_path(image.root, IMAGE_CONFIG))  # the mounted-style path
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=host_path(image.root, runtime.workdir()), env=env, stdout=out, stderr=out
        )
    try:
        wait_up(port, proc)
        probe = exec_form(runtime.all("HEALTHCHECK")[0].flags()[1].removeprefix("CMD "))
        health = subprocess.run(probe, cwd=image.root, env=env, capture_output=True, timeout=30)
        assert health.returncode == 0, health.stderr

        with connect(f"ws://127.0.0.1:{port}/app/docker-key?protocol=7", open_timeout=10) as ws:
            frame = json.loads(ws.recv(timeout=10))
            assert frame["event"] == "pusher:connection_established"
            assert re.fullmatch(r"\d+\.\d+", json.loads(frame["data"])["socket_id"])
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            assert r.status == 200 and b"sockudo_" in r.read()

        # graceful stop (uvicorn re-raises the signal once shut down, as `docker stop` expects)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert "Traceback" not in output, output
    # the env app replaced the baked demo app: no default-secret warning, no secret in logs
    assert "SECURITY" not in output and "docker-secret-4242" not in output

    # the probe fails when nothing answers on PORT
    closed = container_env(image, PORT=str(free_port()))
    down = subprocess.run(probe, cwd=image.root, env=closed, capture_output=True, timeout=30)
    assert down.returncode != 0


# --------------------------------------------------------------------------------------------
# The compose stack
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, object]) -> dict[str, dict[str, object]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def bind_mounts(service: dict[str, object]) -> list[tuple[Path, str]]:
    """``(host path, container path)`` of each bind mount (``./...`` on the host)."""
    mounts = []
    for volume in service.get("volumes", []):  # type: ignore[attr-defined]
        source, target, *_ = str(volume).split(":")
        if source.startswith("."):
            mounts.append(((DEPLOY / source).resolve(), target))
    return mounts


def test_compose_services_ports_and_mounted_files(compose: dict[str, object]) -> None:
    found = services(compose)
    assert set(found) >= {"redis", *NODES, "nginx", "prometheus", "grafana"}
    for name, service in found.items():
        for host, target in bind_mounts(service):
            assert host.exists(), f"{name} mounts {host}, which is not in the repository"
            assert host.is_relative_to(ROOT)
            assert target.startswith("/")
        build = service.get("build")
        if isinstance(build, dict):
            context = (DEPLOY / str(build["context"])).resolve()
            assert (context / str(build.get("dockerfile", "Dockerfile"))) == DOCKERFILE

    for node in NODES:
        service = found[node]
        assert service["image"] == found[NODES[0]]["image"]
        assert "build" in service
        ((host, target),) = bind_mounts(service)
        assert target == IMAGE_CONFIG and host.parent == DEPLOY / "config"
        env = service["environment"]
        assert isinstance(env, dict)
        assert {"SOCKUDO_DEFAULT_APP_ID", "SOCKUDO_DEFAULT_APP_KEY"} <= set(env)
        assert ":?" in str(env["SOCKUDO_DEFAULT_APP_SECRET"]), "no default secret in compose"
        assert str(env["REDIS_URL"]).startswith("redis://redis:")
        assert env["INSTANCE_PROCESS_ID"] == node
        assert "ports" not in service, "nodes are reached through nginx"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"  # type: ignore[index]
        config = json.loads(host.read_text(encoding="utf-8"))
        assert config["adapter"]["driver"] == "redis"
        assert {config[s]["driver"] for s in ("cache", "queue", "rate_limiter")} == {"redis"}

    assert found["nginx"]["ports"] == ["6001:80"]
    nginx_deps = found["nginx"]["depends_on"]
    assert isinstance(nginx_deps, dict)
    assert all(nginx_deps[node]["condition"] == "service_healthy" for node in NODES)
    for admin in ("prometheus", "grafana"):
        ports = found[admin]["ports"]
        assert isinstance(ports, list)
        assert all(str(p).startswith("127.0.0.1:") for p in ports), "admin UIs on loopback"


def test_nginx_proxies_websockets_and_the_api_to_the_three_nodes(
    compose: dict[str, object],
) -> None:
    ((host, target),) = bind_mounts(services(compose)["nginx"])
    assert target == "/etc/nginx/nginx.conf"
    conf = re.sub(r"#[^\n]*", "", host.read_text(encoding="utf-8"))
    assert conf.count("{") == conf.count("}")
    upstream = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf)
    assert upstream is not None
    name, body = upstream.groups()
    assert re.findall(r"server\s+([\w.-]+:\d+)", body) == [f"{n}:6001" for n in NODES]
    assert "zone " in body and "resolver 127.0.0.11" in conf  # for `resolve`
    locations = dict(re.findall(r"location\s+(?:=\s*)?(\S+)\s*\{([^}]*)\}", conf))
    for path in ("/app/", "/apps/", "/up"):
        assert f"proxy_pass http://{name};" in locations[path], path
    ws = locations["/app/"]
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $connection_upgrade;" in ws
    assert re.search(r"proxy_read_timeout\s+\d{3,}s;", ws)
    assert "map $http_upgrade $connection_upgrade" in conf
    assert "proxy_http_version 1.1;" in conf
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in conf
    assert re.search(r"proxy_next_upstream[^;]*http_503", conf), "draining nodes are skipped"
    # nginx is one proxy: the nodes trust exactly one X-Forwarded-For hop
    cluster = json.loads((DEPLOY / "config" / "cluster.json").read_text(encoding="utf-8"))
    limits = cluster["rate_limiter"]
    assert limits["api_rate_limit"]["trust_hops"] == limits["websocket_rate_limit"]["trust_hops"]
    assert limits["api_rate_limit"]["trust_hops"] == 1
    healthcheck = services(compose)["nginx"]["healthcheck"]
    assert isinstance(healthcheck, dict)
    assert "/nginx-health" in " ".join(healthcheck["test"]) and "/nginx-health" in locations


def test_prometheus_scrapes_every_node(compose: dict[str, object]) -> None:
    ((host, target),) = bind_mounts(services(compose)["prometheus"])
    assert target == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load(host.read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert targets == [f"{node}:9601" for node in NODES]


def test_grafana_provisions_prometheus_and_the_dashboard(compose: dict[str, object]) -> None:
    grafana = services(compose)["grafana"]
    mounts = {target: host for host, target in bind_mounts(grafana)}
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == DEPLOY / "grafana" / "provisioning"

    (source,) = [
        yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
        for path in (provisioning / "datasources").glob("*.y*ml")
    ]
    (datasource,) = source
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    prometheus_port = str(services(compose)["prometheus"]["ports"][0]).rsplit(":", 1)[1]  # type: ignore[index]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"

    (dashboards,) = [
        yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
        for path in (provisioning / "dashboards").glob("*.y*ml")
    ]
    (provider,) = dashboards
    assert provider["type"] == "file"
    folder = provider["options"]["path"]
    # deploy/grafana/sockudo-py.json (the dashboard, written with the metrics) lands there
    assert mounts[folder] == DEPLOY / "grafana"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]  # type: ignore[index]
    assert home == f"{folder}/sockudo-py.json"


def iter_compose_env(compose: dict[str, object]) -> Iterator[tuple[str, str]]:
    for node in NODES:
        env = services(compose)[node]["environment"]
        assert isinstance(env, dict)
        yield from ((str(k), str(v)) for k, v in env.items())


def test_compose_variables_have_defaults_or_say_what_to_set(compose: dict[str, object]) -> None:
    for name, value in iter_compose_env(compose):
        for match in re.finditer(r"\$\{(\w+)(:?[-?])?([^}]*)\}", value):
            assert match.group(2), f"{name}: ${{{match.group(1)}}} needs :- or :?"
            if match.group(2).endswith("?"):
                assert match.group(3), f"{name}: say what to set"
