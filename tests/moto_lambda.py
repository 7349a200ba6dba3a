"""AWS Lambda in the test moto server (tests/moto_server.py), without Docker.

How moto (5.x, server mode) is made to run Lambda here, and how a test sees invocations:

* :func:`lambda_backend` (a context manager) picks moto's Lambda backend with
  ``POST /moto-api/config {"lambda": {"use_docker": false}}`` and puts the previous setting
  back at exit. ``simple=True`` is moto's Docker-free "simple" backend: ``Invoke`` of *any*
  function name (created or not) answers 200/202 and echoes the payload, without running
  code. ``simple=False`` is moto's default backend: functions are looked up (an unknown one
  answers 404 ``ResourceNotFoundException``), but running one needs a Docker engine, which
  the tests don't have. The two backends keep separate functions.
* :func:`create_function` makes an IAM role and a function (a zip with a tiny Python
  handler) in the current backend, with the dummy :data:`MOTO_CREDENTIALS`.
* :func:`record_lambda_invocations` (a context manager) switches on moto's request recorder
  (``/moto-api/recorder/reset-recording`` + ``start-recording``; ``stop-recording`` at exit).
  Every request moto receives meanwhile is appended to its recording, which
  ``/moto-api/recorder/download-recording`` returns (JSON lines: method, url, headers,
  base64 body). :class:`LambdaRecording` keeps the ``POST /2015-03-31/functions/<name>/
  invocations`` ones as :class:`LambdaInvocation` (function, ``X-Amz-Invocation-Type``, the
  exact payload bytes, region and access key id of the SigV4 signature, session token).
  ``await recording.wait_for(n, function_name=...)`` polls until ``n`` arrived (for
  deliveries made by a server process or a background task). Read it inside the block:
  the recording is stopped and emptied at exit.

The recorder is one per moto process: only one block may record at a time, and it records
every service's requests (filtered here).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
from moto_server import MOTO_CREDENTIALS, REGION, MotoServer

ROLE_NAME = "sockudo-webhook-lambda"
HANDLER_SOURCE = "def handler(event, context):\n    return event\n"
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_SCOPE = re.compile(r"Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/lambda/aws4_request")


def moto_api(server: MotoServer, path: str, body: Any = None, method: str = "POST") -> bytes:
    """One request to moto's own API (``/moto-api/...``); the answer's body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: bytes = answer.read()
        return result


def _uses_docker(server: MotoServer) -> bool:
    config = json.loads(moto_api(server, "/moto-api/config", method="GET"))
    return bool(config.get("lambda", {}).get("use_docker", True))


@contextlib.contextmanager
def lambda_backend(server: MotoServer, *, simple: bool = True) -> Iterator[None]:
    """moto's Docker-free Lambda backend (``simple``) or its default one for the block."""
    before = _uses_docker(server)
    moto_api(server, "/moto-api/config", {"lambda": {"use_docker": not simple}})
    try:
        yield
    finally:
        moto_api(server, "/moto-api/config", {"lambda": {"use_docker": before}})


def boto_client(server: MotoServer, service: str, region: str = REGION) -> Any:
    """A (sync) boto3 client of the moto server with the dummy credentials."""
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=MOTO_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=MOTO_CREDENTIALS["aws_secret_access_key"],
    )


def handler_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", HANDLER_SOURCE)
    return buffer.getvalue()


def create_function(server: MotoServer, name: str, *, region: str = REGION) -> str:
    """An IAM role (made once) and a Python function ``name`` in ``region``; its ARN."""
    iam = boto_client(server, "iam", region)
    try:
        role = iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(policy))[
            "Role"
        ]["Arn"]
    answer = boto_client(server, "lambda", region).create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": handler_zip()},
    )
    arn: str = answer["FunctionArn"]
    return arn


@dataclass(frozen=True)
class LambdaInvocation:
    """One ``Invoke`` request as moto received it."""

    function_name: str
    invocation_type: str
    payload: bytes
    region: str | None
    access_key_id: str | None
    session_token: str | None
    qualifier: str | None


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _invocation(entry: dict[str, Any]) -> LambdaInvocation | None:
    if entry.get("method") != "POST":
        return None
    url = urlsplit(entry.get("url", ""))
    match = _INVOKE_PATH.match(url.path)
    if match is None:
        return None
    headers = entry.get("headers") or {}
    raw = entry.get("body") or ""
    payload = base64.b64decode(raw) if entry.get("body_encoded") else raw.encode()
    scope = _SCOPE.search(_header(headers, "authorization") or "")
    qualifier = None
    for part in url.query.split("&"):
        if part.startswith("Qualifier="):
            qualifier = unquote(part.partition("=")[2])
    return LambdaInvocation(
        function_name=unquote(match["name"]),
        invocation_type=_header(headers, "x-amz-invocation-type") or "RequestResponse",
        payload=payload,
        region=scope["region"] if scope else None,
        access_key_id=scope["key"] if scope else None,
        session_token=_header(headers, "x-amz-security-token"),
        qualifier=qualifier,
    )


class LambdaRecording:
    """The Lambda invocations moto received since :func:`record_lambda_invocations` began."""

    def __init__(self, server: MotoServer) -> None:
        self.server = server

    def invocations(self, function_name: str | None = None) -> list[LambdaInvocation]:
        """Those received so far, oldest first; of one function (name or ARN) if given."""
        text = moto_api(self.server, "/moto-api/recorder/download-recording", method="GET")
        found = []
        for line in text.decode().splitlines():
            if not line.strip():
                continue
            invocation = _invocation(json.loads(line))
            if invocation is None:
                continue
            if function_name is None or function_name in (
                invocation.function_name,
                invocation.function_name.rsplit(":", 1)[-1],
            ):
                found.append(invocation)
        return found

    async def wait_for(
        self, count: int, *, function_name: str | None = None, timeout: float = 10.0
    ) -> list[LambdaInvocation]:
        """Poll until at least ``count`` invocations arrived (AssertionError after
        ``timeout`` s); all of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = await asyncio.to_thread(self.invocations, function_name)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(found)} Lambda invocation(s) of {function_name or 'any function'} "
                    f"after {timeout} s, expected {count}: {found}"
                )
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def record_lambda_invocations(server: MotoServer) -> Iterator[LambdaRecording]:
    """Record what moto receives for the block; see the module doc."""
    moto_api(server, "/moto-api/recorder/reset-recording")
    moto_api(server, "/moto-api/recorder/start-recording")
    try:
        yield LambdaRecording(server)
    finally:
        moto_api(server, "/moto-api/recorder/stop-recording")
        moto_api(server, "/moto-api/recorder/reset-recording")
