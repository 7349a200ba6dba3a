"""TLS on the main listener (``ssl.*``) and the optional plain HTTP listener that redirects to it.

* ``check_tls`` loads the certificate, key and CA bundle once before anything starts, so a
  bad path or file stops start-up with one line naming the key (``TlsError``, a ValueError),
  instead of a traceback from inside uvicorn.
* ``uvicorn_tls_options`` turns ``ssl.*`` into uvicorn's ``ssl_*`` options: one port then
  serves ``https://`` and ``wss://``. ``ca_path`` asks every client for a certificate signed
  by that bundle (mutual TLS).
* ``abort_stalled_closes`` ends the TLS connections that uvicorn closed at shutdown but whose
  peer never answers the TLS ``close_notify`` (an idle keep-alive client): they would hold the
  shutdown for the whole graceful timeout.
* ``start_https_redirect`` adds, with ``ssl.redirect_http``, a plain listener on
  ``ssl.http_port`` whose every request (WebSocket upgrades included: they get the HTTP
  answer) is ``308 Permanent Redirect`` to the same path and query on
  ``https://<host>:<port>``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Iterable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import SslConfig

log = logging.getLogger("sockudo_py.tls")

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d*)?")


class TlsError(ValueError):
    """The ``ssl`` section names files that cannot serve TLS; the message is one line that
    starts with the key to fix."""


def check_tls(cfg: SslConfig, port: int) -> None:
    """With ``ssl.enabled``: raise ``TlsError`` unless the certificate, key (with
    ``passphrase``) and ``ca_path`` load, and the redirect port differs from ``port``."""
    if not cfg.enabled:
        return
    files = {"ssl.cert_path": cfg.cert_path, "ssl.key_path": cfg.key_path}
    if cfg.ca_path:
        files["ssl.ca_path"] = cfg.ca_path
    contents = {key: _read(key, path) for key, path in files.items()}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for key in ("ssl.cert_path", "ssl.ca_path"):
        if key in files:
            try:
                context.load_verify_locations(cafile=files[key])
            except ssl.SSLError:
                raise TlsError(f"{key}: {files[key]!r} holds no PEM certificate") from None
    try:
        passphrase = (cfg.passphrase or "").encode()  # never None: OpenSSL would prompt for it
        context.load_cert_chain(cfg.cert_path, cfg.key_path, password=lambda: passphrase)
    except ssl.SSLError as exc:
        raise TlsError(_key_problem(cfg, contents["ssl.key_path"], exc)) from None
    if cfg.redirect_http and cfg.http_port == port:
        raise TlsError(f"ssl.http_port: {port} is the TLS port itself; pick another one")


def uvicorn_tls_options(cfg: SslConfig) -> dict[str, Any]:
    """uvicorn's ``ssl_*`` keyword arguments for ``cfg`` (none when TLS is off)."""
    if not cfg.enabled:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": cfg.cert_path,
        "ssl_keyfile": cfg.key_path,
        # check_tls made sure an encrypted key has a passphrase that opens it: without one,
        # OpenSSL would prompt for it on the terminal
        "ssl_keyfile_password": cfg.passphrase,
    }
    if cfg.ca_path:
        options["ssl_ca_certs"] = cfg.ca_path
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options


async def abort_stalled_closes(connections: Iterable[Any], every: float = 0.5) -> None:
    """Until cancelled, every ``every`` seconds: abort the connections whose transport was
    closing already at the previous look. With TLS, an idle keep-alive client does not answer
    ``close_notify``, so its closed connection would only end at the TLS shutdown timeout
    (30 s), holding uvicorn's shutdown all that time."""
    closing: set[Any] = set()
    while True:
        await asyncio.sleep(every)
        transports = {getattr(connection, "transport", None) for connection in connections}
        for transport in closing & transports:
            transport.abort()
        closing = {t for t in transports if t is not None and t.is_closing()}


def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise TlsError(f"{key}: cannot read {path!r}: {exc.strerror or exc}") from None


def _key_problem(cfg: SslConfig, key_pem: bytes, exc: ssl.SSLError) -> str:
    path = cfg.key_path
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"ssl.key_path: {path!r} is not the key of the certificate in ssl.cert_path"
    if b"ENCRYPTED" in key_pem:
        if cfg.passphrase is None:
            return f"ssl.key_path: {path!r} is encrypted: set ssl.passphrase"
        return f"ssl.passphrase: does not decrypt ssl.key_path {path!r}"
    return f"ssl.key_path: {path!r} holds no PEM private key"


# --------------------------------------------------------------------------- HTTP -> HTTPS


class HttpsRedirect:
    """ASGI app: ``308`` to ``https://<Host without port>:<https_port><path>?<query>``; a
    request without a usable ``Host`` header gets ``400``."""

    def __init__(self, https_port: int) -> None:
        self.port_suffix = "" if https_port == 443 else f":{https_port}"

    def location(self, scope: dict[str, Any]) -> str | None:
        host = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
        match = _HOST.fullmatch(host)
        if match is None:
            return None
        target: bytes = scope["raw_path"]
        query: bytes = scope["query_string"]
        if query:
            target += b"?" + query
        return f"https://{match[1]}{self.port_suffix}{target.decode('latin-1')}"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        location = self.location(scope)
        status, body = (308, b"") if location else (400, b"Host header required\n")
        headers = [
            (b"content-type", b"text/plain"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if location:
            headers.append((b"location", location.encode("latin-1")))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _RedirectProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol without WebSocket support, quiet about upgrade requests:
    on the redirect port they are answered like any request."""

    def _unsupported_upgrade_warning(self) -> None:
        pass


async def start_https_redirect(server: uvicorn.Server, cfg: SslConfig) -> asyncio.Server:
    """Listen on ``server.config.host`` : ``cfg.http_port`` with ``HttpsRedirect``. Its
    connections join ``server``'s, so uvicorn's shutdown closes them too; the caller adds the
    returned listener to ``server.servers``. Raises OSError when the port cannot be bound."""
    main = server.config
    config = uvicorn.Config(
        HttpsRedirect(main.port),
        host=main.host,
        port=cfg.http_port,
        http=_RedirectProtocol,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=main.access_log,
        proxy_headers=False,
    )
    config.load()

    def protocol() -> asyncio.Protocol:
        return config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=server.server_state, app_state={}
        )

    listener = await asyncio.get_running_loop().create_server(
        protocol, host=config.host, port=config.port, backlog=config.backlog
    )
    log.info("redirecting http://%s:%s to https on port %s", main.host, cfg.http_port, main.port)
    return listener
