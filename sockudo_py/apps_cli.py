"""``sockudo-py apps``: list, show, add, update and remove apps in the configured app manager.

The command builds the ``Config`` as the server does (``--config``, then Sockudo's env
variables), then the cache and app manager with the server's factories, and starts them
without retries: a store that is down fails at once (exit 1) instead of being waited for.
Changes go through ``AppManager.upsert`` / ``remove``, so a cached manager clears the app's
cache entries (``app:id:{id}``, ``app:key:{key}``; on every node with a shared redis cache).

Exit codes: 0 done; 1 the store is unreachable, the app is unknown, or an id / key is taken;
2 bad usage, configuration or app values. Every error is one line on stderr.

The memory driver holds only the inline apps of config.json (``start`` upserts them into
every store, as Sockudo does): ``list`` / ``show`` show those, and changes live only as long
as this process, which a warning on stderr says.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, ValidationError

from .cli_support import EXIT_USAGE, CommandError, add_command, reason, run_command
from .config import App, Config

if TYPE_CHECKING:
    from .app_manager import AppManager

log = logging.getLogger("sockudo_py.apps_cli")

PROG = "sockudo-py apps"

MEMORY_NOTE = (
    "With app_manager.driver memory (the default) the apps are the inline apps of config.json "
    "(app_manager.array.apps): list and show show those, and add / update / remove change "
    "only this process, so nothing persists; edit config.json or use a mysql or dynamodb "
    "store instead."
)
MEMORY_WARNING = (
    "warning: app_manager.driver is memory: this change lives only in this process and is "
    "lost when it exits; edit app_manager.array.apps in config.json, or use a mysql or "
    "dynamodb store"
)

LIST_COLUMNS: tuple[tuple[str, Callable[[App], object]], ...] = (
    ("ID", lambda app: app.id),
    ("KEY", lambda app: app.key),
    ("SECRET", lambda app: app.secret),
    ("ENABLED", lambda app: app.enabled),
    ("MAX_CONNECTIONS", lambda app: app.max_connections or "unlimited"),
    ("CLIENT_MESSAGES", lambda app: app.enable_client_messages),
    ("USER_AUTH", lambda app: app.enable_user_authentication),
    ("WATCHLIST", lambda app: app.enable_watchlist_events),
    ("SUB_COUNT", lambda app: app.enable_subscription_count),
    ("ORIGINS", lambda app: ",".join(app.allowed_origins) or "*"),
    ("WEBHOOKS", lambda app: len(app.webhooks)),
)


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


def _app_options(parser: argparse.ArgumentParser, *, adding: bool) -> None:
    """The per-app options of ``add`` and ``update``; each is ``None`` unless given."""
    verb = "(generated when not given)" if adding else ""
    group = parser.add_argument_group("app fields")
    if adding:
        group.add_argument("--id", help="app id (default: 7 random digits)")
    group.add_argument("--key", help=f"app key {verb or '(must not belong to another app)'}")
    secret = group.add_mutually_exclusive_group()
    secret.add_argument("--secret", help=f"app secret {verb}".strip())
    if not adding:
        secret.add_argument(
            "--rotate-secret", action="store_true", help="replace the secret with a new random one"
        )
    enabled = group.add_mutually_exclusive_group()
    enabled.add_argument(
        "--enabled",
        dest="enabled",
        action="store_const",
        const=True,
        help="the app accepts connections (a new app is enabled by default)",
    )
    enabled.add_argument(
        "--disabled",
        dest="enabled",
        action="store_const",
        const=False,
        help="refuse its connections (4003) and API calls",
    )
    group.add_argument("--max-connections", metavar="N", help="0 means unlimited")
    for flag in (
        "enable_client_messages",
        "enable_user_authentication",
        "enable_watchlist_events",
        "enable_subscription_count",
    ):
        group.add_argument(
            "--" + flag.replace("_", "-"), dest=flag, action=argparse.BooleanOptionalAction
        )
    group.add_argument(
        "--allowed-origins", metavar="A,B", help="comma-separated origins ('' allows every one)"
    )
    group.add_argument("--webhooks", metavar="JSON", help="the webhooks list, as JSON")
    group.add_argument(
        "--set",
        dest="fields",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other app field (repeatable); VALUE is read as JSON when it parses, "
        "else as a string, e.g. --set max_client_events_per_second=20",
    )
    parser.add_argument("--json", action="store_true", help="print the app as JSON")


def add_apps_command(commands: Any) -> None:
    """Register ``apps`` on ``commands`` (the ``add_subparsers`` action of the main parser)."""
    actions, common = add_command(
        commands,
        "apps",
        "store",
        help="list, show, add, update or remove apps in the configured app manager",
        description="Manage the apps of the configured app manager (app_manager.driver, "
        "from --config and the environment, as for the server). " + MEMORY_NOTE,
        epilog="Exit codes: 0 done, 1 store unreachable / app unknown / id or key taken, "
        "2 bad usage or value.",
    )

    listing = actions.add_parser("list", parents=[common], help="a table of every app")
    listing.add_argument("--json", action="store_true", help="full apps as a JSON list")
    listing.add_argument("--show-secrets", action="store_true", help="print secrets unmasked")

    show = actions.add_parser("show", parents=[common], help="every field of one app")
    show.add_argument("id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the app as JSON")

    add = actions.add_parser(
        "add",
        parents=[common],
        help="create an app",
        description="Create an app; id, key and secret are generated unless given. "
        "An id or key that exists already is refused.",
    )
    _app_options(add, adding=True)

    update = actions.add_parser(
        "update",
        parents=[common],
        help="change fields of an app",
        description="Change only the given fields of app ID.",
    )
    update.add_argument("id", metavar="ID")
    _app_options(update, adding=False)

    remove = actions.add_parser("remove", parents=[common], help="delete an app")
    remove.add_argument("id", metavar="ID")


# --------------------------------------------------------------------------------------------
# Credentials and field values
# --------------------------------------------------------------------------------------------


def generate_id() -> str:
    """A Pusher-like numeric app id: 7 digits, no leading zero."""
    return str(1_000_000 + secrets.randbelow(9_000_000))


def generate_key() -> str:
    """20 hex characters."""
    return secrets.token_hex(10)


def generate_secret() -> str:
    """32 hex characters."""
    return secrets.token_hex(16)


def _field_names() -> dict[str, str]:
    """Every spelling ``--set`` accepts (field name, camelCase, soketi's...) -> field name."""
    names: dict[str, str] = {}
    for name, field in App.model_fields.items():
        names[name] = name
        names[name.replace("_", "-")] = name
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({choice: name for choice in alias.choices if isinstance(choice, str)})
    return names


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set field=value`` pairs as App fields; a value is JSON when it parses, else a
    string. Raises ``CommandError`` (exit 2) for a malformed pair or an unknown field."""
    names = _field_names()
    values: dict[str, Any] = {}
    for pair in pairs:
        field, sep, raw = pair.partition("=")
        field = field.strip()
        if not sep or not field:
            raise CommandError(f"--set expects FIELD=VALUE, got {pair!r}", EXIT_USAGE)
        if field not in names:
            raise CommandError(f"--set: {field!r} is not an app field", EXIT_USAGE)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        values[names[field]] = value
    return values


def requested_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The App fields the options of ``add`` / ``update`` set: ``--set`` first, then the
    named options (which win)."""
    changes = parse_set(args.fields)
    named = {
        "id": getattr(args, "id", None) if args.apps_action == "add" else None,
        "key": args.key,
        "secret": generate_secret() if getattr(args, "rotate_secret", False) else args.secret,
        "enabled": args.enabled,
        "max_connections": args.max_connections,
        "enable_client_messages": args.enable_client_messages,
        "enable_user_authentication": args.enable_user_authentication,
        "enable_watchlist_events": args.enable_watchlist_events,
        "enable_subscription_count": args.enable_subscription_count,
        "allowed_origins": args.allowed_origins,
        "webhooks": args.webhooks,
    }
    changes.update({field: value for field, value in named.items() if value is not None})
    return changes


def validate_app(data: Mapping[str, Any]) -> App:
    """``data`` as an ``App``; a bad value raises ``CommandError`` (exit 2) naming the field."""
    try:
        return App.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = ".".join(str(part) for part in error["loc"]) or "app"
            message = error["msg"].removeprefix("Value error, ")
            given = f" (got {error['input']!r})" if error["type"] != "missing" else ""
            problems.append(f"{path}: {message}{given}")
        raise CommandError("invalid app: " + "; ".join(problems), EXIT_USAGE) from None


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def mask(secret: str) -> str:
    """A secret hidden but for its last 4 characters (all of a short one)."""
    return "****" + secret[-4:] if len(secret) >= 16 else "****"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":")) if value else "-"
    return str(value)


def format_table(apps: list[App], show_secrets: bool) -> str:
    """The ``list`` table: one row per app, secrets masked unless ``show_secrets``."""
    if not apps:
        return "(no apps)"
    rows = [[title for title, _ in LIST_COLUMNS]]
    for app in apps:
        row = [_cell(value(app)) for _, value in LIST_COLUMNS]
        row[2] = app.secret if show_secrets else mask(app.secret)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def format_app(app: App) -> str:
    """Every field of ``app``, one ``field  value`` line each (nested values as JSON, webhooks
    without their unset options)."""
    data = app.model_dump(mode="json")
    data["webhooks"] = [
        hook.model_dump(mode="json", exclude_defaults=True) for hook in app.webhooks
    ]
    width = max(len(field) for field in data)
    return "\n".join(f"{field.ljust(width)}  {_cell(value)}" for field, value in data.items())


def print_app(app: App, as_json: bool) -> None:
    print(json.dumps(app.model_dump(mode="json"), indent=2) if as_json else format_app(app))


# --------------------------------------------------------------------------------------------
# Actions
# --------------------------------------------------------------------------------------------


async def _unused_id(manager: AppManager) -> str:
    for _ in range(10):
        app_id = generate_id()
        if await manager.find_by_id(app_id) is None:
            return app_id
    raise CommandError("could not find an unused app id; give one with --id")


async def _refuse_taken_key(manager: AppManager, key: str, app_id: str) -> None:
    owner = await manager.find_by_key(key)
    if owner is not None and owner.id != app_id:
        raise CommandError(f"key {key!r} already belongs to app {owner.id!r}")


async def do_list(manager: AppManager, args: argparse.Namespace) -> None:
    apps = sorted(await manager.all_apps(), key=lambda app: app.id)
    if args.json:
        print(json.dumps([app.model_dump(mode="json") for app in apps], indent=2))
    else:
        print(format_table(apps, args.show_secrets))


async def do_show(manager: AppManager, args: argparse.Namespace) -> None:
    app = await manager.find_by_id(args.id)
    if app is None:
        raise CommandError(f"no app with id {args.id!r}")
    print_app(app, args.json)


async def do_add(manager: AppManager, args: argparse.Namespace) -> None:
    given = requested_changes(args)
    # validated before the store is asked, so a bad value fails first; "0" stands in for a
    # generated id
    app = validate_app({"id": "0", "key": generate_key(), "secret": generate_secret(), **given})
    if "id" in given:
        if await manager.find_by_id(app.id) is not None:
            raise CommandError(f"an app with id {app.id!r} already exists")
    else:
        app = app.model_copy(update={"id": await _unused_id(manager)})
    await _refuse_taken_key(manager, app.key, app.id)
    await manager.upsert(app)
    print_app(app, args.json)


async def do_update(manager: AppManager, args: argparse.Namespace) -> None:
    changes = requested_changes(args)
    if not changes:
        raise CommandError("nothing to change: give at least one field option", EXIT_USAGE)
    if "id" in changes and str(changes["id"]) != args.id:
        raise CommandError("the id of an app cannot change: add a new app instead", EXIT_USAGE)
    old = await manager.find_by_id(args.id)
    if old is None:
        raise CommandError(f"no app with id {args.id!r}")
    app = validate_app({**old.model_dump(), **changes})
    if app.key != old.key:
        await _refuse_taken_key(manager, app.key, app.id)
    await manager.upsert(app)
    print_app(app, args.json)


async def do_remove(manager: AppManager, args: argparse.Namespace) -> None:
    if not await manager.remove(args.id):
        raise CommandError(f"no app with id {args.id!r}")
    print(f"removed app {args.id}")


ACTIONS: dict[str, Callable[[AppManager, argparse.Namespace], Coroutine[Any, Any, None]]] = {
    "list": do_list,
    "show": do_show,
    "add": do_add,
    "update": do_update,
    "remove": do_remove,
}
CHANGING = frozenset({"add", "update", "remove"})


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


async def run_action(args: argparse.Namespace, config: Config) -> None:
    """Open the cache and the app manager of ``config``, run ``args.apps_action``, close them.
    A store that is down raises at start (no retry)."""
    from .app_manager import create_app_manager
    from .cache import create_cache

    # ttl 0: reads go to the store itself (an admin sees what is stored, not a cached copy),
    # while changes still clear the servers' cache entries
    config.app_manager.cache.ttl = 0
    try:
        cache = create_cache(config)
        manager = create_app_manager(config, cache)
    except (ValueError, ImportError) as exc:  # a driver unknown or not installed
        raise CommandError(f"cannot open the app store: {exc}", EXIT_USAGE) from None
    driver = config.app_manager.driver
    await cache.start()
    try:
        try:
            await manager.start(retry=False)
        except Exception as exc:  # AppManagerUnavailable, or a driver's own error
            log.debug("app manager start failed", exc_info=True)
            raise CommandError(f"cannot reach the {driver} app store: {reason(exc)}") from exc
        await ACTIONS[args.apps_action](manager, args)
        if driver == "memory" and args.apps_action in CHANGING:
            print(f"{PROG}: {MEMORY_WARNING}", file=sys.stderr)
    finally:
        try:
            await manager.stop()  # also after a failed start: it releases what connect opened
        finally:
            await cache.stop()


def run_apps_command(args: argparse.Namespace) -> int:
    """Run ``sockudo-py apps ACTION`` for the parsed ``args``; the exit code."""
    return run_command(
        "apps",
        args,
        run_action,
        log=log,
        timed_out=lambda config, timeout: f"the app store did not answer within {timeout:g}s",
    )
