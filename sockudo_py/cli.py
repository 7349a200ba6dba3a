"""The ``sockudo-py`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
from .apps_cli import add_apps_command, run_apps_command
from .cli_support import OneLineParser
from .config import Config, load_config
from .config_cli import add_config_command, run_config_command
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
    parser.add_argument("--debug", action="store_true", help="verbose logging")
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
    overrides = {
        key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None
    }
    if args.debug:
        overrides["debug"] = True
    return config.model_copy(update=overrides)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "apps":
        raise SystemExit(run_apps_command(args))
    if args.command == "webhooks":
        raise SystemExit(run_webhooks_command(args))
    if args.command == "config":
        raise SystemExit(run_config_command(args))
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = build_config(args)
    except (ValueError, OSError) as exc:
        print(f"sockudo-py: configuration error:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from .server import Node, run

    try:
        node = Node.build(config)
    except (ValueError, ImportError) as exc:  # a driver that is unknown or not installed
        print(f"sockudo-py: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.getLogger("sockudo_py").info(
        "sockudo-py %s listening on %s:%s", __version__, config.host, config.port
    )
    run(node)
