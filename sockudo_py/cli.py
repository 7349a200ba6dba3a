"""The ``sockudo-py`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .apps_cli import add_apps_command, run_apps_command
from .cli_support import OneLineParser
from .config import Config, load_config, parse_bool
from .config_cli import add_config_command, run_config_command
from .logs import FORMATS, LEVELS, LogSettings, configure
from .webhooks_cli import add_webhooks_command, run_webhooks_command


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sockudo-py",
        description="A Pusher-protocol-compatible WebSocket server. With no options it serves "
        "the embedded default: port 6001, one app app-id/app-key/app-secret.",
    )
    parser.add_argument("--config", "-c", metavar="PATH", help="config.json to load")
    parser.add_argument("--host", help="address to bind (overrides config and HOST)")
    parser.add_argument("--port", type=int, help="port to bind (overrides config and PORT)")
    parser.add_argument(
        "--workers", type=int, metavar="N",
        help="worker processes serving the port (WORKERS; 0: one per CPU core)",
    )  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="verbose logging")
    parser.add_argument(
        "--log-format", choices=FORMATS, help="log lines as text or JSON (LOG_OUTPUT_FORMAT)"
    )
    parser.add_argument(
        "--log-level", choices=LEVELS, help="the least severe level logged (LOG_LEVEL)"
    )
    parser.add_argument("--version", action="version", version=f"sockudo-py {__version__}")
    commands = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        title="commands",
        description="with no command, sockudo-py runs the server",
        parser_class=OneLineParser,
    )
    add_apps_command(commands)
    add_webhooks_command(commands)
    add_config_command(commands)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    config = load_config(args.config, dict(os.environ))
    given = (("host", args.host), ("port", args.port), ("workers", args.workers))
    overrides = {key: value for key, value in given if value is not None}
    if args.debug:
        overrides["debug"] = True
    return config.model_copy(update=overrides)


def log_settings(
    args: argparse.Namespace, config: Config | None = None, *, debug: bool = False
) -> LogSettings:
    """The log settings of the command line, the environment and ``config``."""
    logging_config = config.logging if config is not None else None
    return LogSettings.resolve(
        os.environ,
        log_format=args.log_format,
        log_level=args.log_level,
        debug=config.debug if config is not None else debug,
        colors=logging_config.colors_enabled if logging_config is not None else True,
        include_target=logging_config.include_target if logging_config is not None else True,
    )


def _env_debug() -> bool:
    try:
        return any(parse_bool(os.environ.get(name) or "false") for name in ("DEBUG", "DEBUG_MODE"))
    except ValueError:
        return False  # load_config names the variable


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "apps":
        raise SystemExit(run_apps_command(args))
    if args.command == "webhooks":
        raise SystemExit(run_webhooks_command(args))
    if args.command == "config":
        raise SystemExit(run_config_command(args))
    try:
        # the environment's settings first, so the config's own warnings come out formatted
        configure(log_settings(args, debug=args.debug or _env_debug()))
        config = build_config(args)
        configure(log_settings(args, config))
    except (ValueError, OSError) as exc:
        print(f"sockudo-py: configuration error:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from . import workers
    from .server import Node, run

    index = workers.worker_index()
    if index is None and workers.worker_count(config) > 1:
        raise SystemExit(workers.supervise(config, sys.argv[1:] if argv is None else argv))
    if index is not None:
        workers.die_with_supervisor()
        config = workers.worker_config(config, index)
    try:
        node = Node.build(config, ipc_hub=workers.hub_path())
    except (ValueError, ImportError) as exc:  # a driver that is unknown or not installed
        print(f"sockudo-py: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.getLogger("sockudo_py").info(
        "sockudo-py %s listening on %s:%s%s", __version__, config.host, config.port,
        "" if index is None else f" (worker {index})",
    )  # fmt: skip
    run(node, shared_port=index is not None)
