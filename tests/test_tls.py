"""TLS (``ssl.*``): wss:// and https:// on one port, with a CA and certificates made here.

pusher-js (``forceTLS``, trusting the test CA through ``NODE_EXTRA_CA_CERTS``) receives an event
that the PyPI ``pusher`` SDK publishes over https (verifying against the test CA); plain
ws:// and http:// to the TLS port fail; the server key is encrypted (``ssl.passphrase``);
``ssl.redirect_http`` answers 308 on its own port;
``ssl.ca_path`` requires client certificates; bad files stop start-up with exit 2 and one line.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pusher
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from interop_server import HOST, NodeProcess, RunningServer, ServerFactory, free_port
from pusher.requests import RequestsBackend
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "open sesame"
SOCKETS = ("node", "browser")  # pusher-js's Node transport; the WHATWG WebSocket
# the Python SDK wants an id of digits
APP = {"id": "4430", "key": "tls-key", "secret": "tls-secret", "enabled": True}

# --------------------------------------------------------------------------- a throwaway PKI


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    encrypted_key: Path
    """The server key again, encrypted with ``PASSPHRASE``."""

    def client_context(self, with_certificate: bool = False) -> ssl.SSLContext:
        """Trusts the test CA; optionally presents the client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if with_certificate:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path, passphrase: str = "") -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    usage: x509.ObjectIdentifier,
    path: Path,
    san: list[x509.GeneralName] | None = None,
) -> ec.EllipticCurvePrivateKey:
    """Write a certificate for a new key, signed by the CA; return the key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("sockudo-py test CA"))
        .issuer_name(_name("sockudo-py test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca = directory / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    san: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address(HOST)),
    ]
    cert, client_cert = directory / "server.pem", directory / "client.pem"
    key = _issue(ca_key, ca_cert, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, cert, san)
    client_key = _issue(ca_key, ca_cert, "client", ExtendedKeyUsageOID.CLIENT_AUTH, client_cert)
    return Pki(
        ca, cert, _write_key(key, directory / "server-key.pem"),
        client_cert, _write_key(client_key, directory / "client-key.pem"),
        _write_key(key, directory / "server-key-encrypted.pem", PASSPHRASE),
    )  # fmt: skip


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def ssl_section(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {"ssl": {"enabled": True, "cert_path": str(pki.cert), "key_path": str(pki.key),
                    **extra}}  # fmt: skip


@pytest.fixture(scope="module")
def tls_server(sockudo_server_factory_module: ServerFactory, pki: Pki) -> RunningServer:
    """TLS on its port (with the encrypted key and its ``passphrase``), and the HTTP -> HTTPS
    redirect on ``config["ssl"]["http_port"]``."""
    section = ssl_section(pki, key_path=str(pki.encrypted_key), passphrase=PASSPHRASE,
                          redirect_http=True, http_port=free_port())  # fmt: skip
    return sockudo_server_factory_module(section, apps=[APP], tls=pki.client_context())


class CaBundleBackend(RequestsBackend):  # type: ignore[misc]
    """The SDK's requests backend verifying against ``verify``. With ``ssl=True`` the SDK pins
    its own bundled ``cacert.pem`` (so ``REQUESTS_CA_BUNDLE`` is ignored): this replaces it."""

    def __init__(self, client: Any, verify: str, **options: Any) -> None:
        super().__init__(client, **options)
        self.options["verify"] = verify


def sdk(server: RunningServer, pki: Pki) -> pusher.Pusher:
    app = server.app
    return pusher.Pusher(
        app_id=app["id"], key=app["key"], secret=app["secret"], ssl=True, host=server.host,
        port=server.port, backend=CaBundleBackend, verify=str(pki.ca),
    )  # fmt: skip


# --------------------------------------------------------------------------- tests


def test_pusher_js_over_wss_receives_event_published_over_https(
    tls_server: RunningServer, pki: Pki
) -> None:
    """pusher-js with forceTLS (its Node transport and the WHATWG WebSocket) subscribes over
    wss://; the Python SDK publishes over https://, verifying the certificate."""
    channel = f"tls-{time.monotonic_ns()}"
    payload = "over TLS " * 50
    env = {"NODE_EXTRA_CA_CERTS": str(pki.ca), "NODE_OPTIONS": "--experimental-websocket"}
    params = {"host": tls_server.host, "port": tls_server.port, "key": tls_server.app["key"],
              "channel": channel, "tls": True}  # fmt: skip
    procs = [NodeProcess("subscriber.mjs", {**params, "socket": s}, env) for s in SOCKETS]
    client = sdk(tls_server, pki)
    try:
        deadline = time.monotonic() + 10
        while client.channel_info(channel, ["subscription_count"]).get("subscription_count") != 2:
            assert time.monotonic() < deadline, "the pusher-js clients did not subscribe in 10 s"
            time.sleep(0.1)
        assert client.trigger(channel, "payload", payload) == {}
    finally:
        results = [proc.result(timeout=20) for proc in procs]
    digest = hashlib.sha256(payload.encode()).hexdigest()
    for result in results:
        assert result["ok"], result
        assert result["url"].startswith(f"wss://{tls_server.host}:{tls_server.port}/app/")
        assert result["events"] == [{"length": len(payload), "sha256": digest}]


async def test_plain_ws_and_http_to_the_tls_port_fail(tls_server: RunningServer) -> None:
    with pytest.raises(Exception) as caught:  # any failure: the server speaks only TLS
        await connect(f"ws://{tls_server.host}:{tls_server.port}/app/{APP['key']}",
                      open_timeout=3, proxy=None)  # fmt: skip
    assert not isinstance(caught.value, TimeoutError), "the server kept the plain socket open"
    conn = http.client.HTTPConnection(tls_server.host, tls_server.port, timeout=3)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/up")
        conn.getresponse()
    conn.close()
    # and the TLS side is unharmed
    async with connect(f"{tls_server.ws_url}/app/{APP['key']}?protocol=7",
                       ssl=tls_server.tls, proxy=None) as ws:  # fmt: skip
        assert json.loads(await ws.recv())["event"] == "pusher:connection_established"
    assert "Traceback" not in tls_server.output()


@pytest.mark.parametrize("upgrade", [False, True])
def test_redirect_http_answers_308_to_https(tls_server: RunningServer, upgrade: bool) -> None:
    """Every request on ``ssl.http_port`` (a WebSocket upgrade too) gets 308 to the same
    path and query on the TLS port."""
    http_port = tls_server.config["ssl"]["http_port"]
    conn = http.client.HTTPConnection(tls_server.host, http_port, timeout=3)
    headers = {"Host": f"localhost:{http_port}"}
    if upgrade:
        headers.update({"Connection": "Upgrade", "Upgrade": "websocket",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})  # fmt: skip
    conn.request("GET", "/app/tls-key?protocol=7", headers=headers)
    response = conn.getresponse()
    conn.close()
    assert response.status == 308
    assert response.getheader("location") == (
        f"https://localhost:{tls_server.port}/app/tls-key?protocol=7"
    )
    assert "Unsupported upgrade" not in tls_server.output()


def test_ca_path_requires_a_client_certificate(
    sockudo_server_factory: ServerFactory, pki: Pki
) -> None:
    section = ssl_section(pki, ca_path=str(pki.ca))
    server = sockudo_server_factory(section, tls=pki.client_context(with_certificate=True))
    url = f"{server.http_url}/up"
    with urllib.request.urlopen(url, timeout=3, context=server.tls) as response:
        assert response.status == 200
    with pytest.raises(OSError):  # the handshake (TLS 1.3: the first read) fails
        urllib.request.urlopen(url, timeout=3, context=pki.client_context()).close()


@pytest.mark.parametrize(
    ("ssl_keys", "key", "words"),
    [
        ({"cert_path": "/nonexistent/server.pem"}, "ssl.cert_path",
         ["/nonexistent/server.pem", "No such file"]),
        ({"key_path": "CLIENT_KEY"}, "ssl.key_path", ["is not the key of the certificate"]),
        ({"cert_path": "KEY"}, "ssl.cert_path", ["holds no PEM certificate"]),
        ({"key_path": "ENCRYPTED_KEY"}, "ssl.key_path", ["is encrypted: set ssl.passphrase"]),
        ({"key_path": "ENCRYPTED_KEY", "passphrase": "wrong"}, "ssl.passphrase",
         ["does not decrypt"]),
    ],
)  # fmt: skip
def test_bad_tls_files_stop_start_up_with_exit_2(
    tmp_path: Path, pki: Pki, ssl_keys: dict[str, str], key: str, words: list[str]
) -> None:
    names = {"CLIENT_KEY": str(pki.client_key), "KEY": str(pki.key),
             "ENCRYPTED_KEY": str(pki.encrypted_key)}  # fmt: skip
    section = ssl_section(pki, **{k: names.get(v, v) for k, v in ssl_keys.items()})
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"host": HOST, "port": free_port(),
                                  "metrics": {"enabled": False}, **section}))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "sockudo_py", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"sockudo-py: cannot start: {key}: "), lines[0]
    assert all(word in lines[0] for word in words), lines[0]


def test_sigterm_ends_an_idle_keep_alive_tls_client_and_the_redirect(
    sockudo_server_factory: ServerFactory, pki: Pki
) -> None:
    """An idle keep-alive https client never answers the TLS close_notify: shutdown must not
    wait for it (here up to the 30 s grace period, so ``stop`` would have to SIGKILL)."""
    http_port = free_port()
    config = {**ssl_section(pki, redirect_http=True, http_port=http_port),
              "shutdown_grace_period": 30}  # fmt: skip
    server = sockudo_server_factory(config, tls=pki.client_context())
    idle = http.client.HTTPSConnection(HOST, server.port, timeout=3, context=server.tls)
    idle.request("GET", "/up")
    assert idle.getresponse().read() == b"OK"
    try:
        server.stop(timeout=10)
    finally:
        idle.close()
    assert server.process.returncode == -signal.SIGTERM, server.output()
    with pytest.raises(OSError):
        socket.create_connection((HOST, http_port), timeout=1).close()
