"""sockudo_py.protocol.signatures against the PyPI ``pusher`` SDK's own signing and the worked
examples in Pusher's documentation."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pusher
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sockudo_py.protocol import ErrorCode, ProtocolError
from sockudo_py.protocol import frames as f
from sockudo_py.protocol import signatures as sig

CHARS = r"[A-Za-z0-9_\-=@,.;]"
socket_ids = st.from_regex(r"[0-9]{1,12}\.[0-9]{1,12}", fullmatch=True)
channel_names = st.from_regex(rf"{CHARS}{{1,100}}", fullmatch=True)
user_ids = st.from_regex(rf"{CHARS}{{1,50}}", fullmatch=True)
keys = st.from_regex(r"[0-9a-f]{20}", fullmatch=True)
secrets = st.text(min_size=1, max_size=40)  # any text (no lone surrogates: the SDK needs UTF-8)
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=10,
)


def _client(key: str, secret: str) -> pusher.Pusher:
    return pusher.Pusher(app_id="3", key=key, secret=secret)


def _tamper_hex(auth: str) -> str:
    """Flip the last hex digit of ``<key>:<hex>``."""
    last = auth[-1]
    return auth[:-1] + ("0" if last != "0" else "1")


# --- Pusher's documented worked examples ------------------------------------------------------
# https://pusher.com/docs/channels/library_auth_reference/auth-signatures/ and
# https://pusher.com/docs/channels/library_auth_reference/rest-api/#worked-authentication-example
# (the same vectors are asserted by Pusher's SDKs' own test suites).

DOC_KEY = "278d425bdf160c739803"
DOC_SECRET = "7ad3773142a6692b25b8"


def test_doc_private_channel_example() -> None:
    auth = f"{DOC_KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    assert sig.sign_channel(DOC_KEY, DOC_SECRET, "1234.1234", "private-foobar") == auth
    assert sig.verify_channel_auth(auth, DOC_KEY, DOC_SECRET, "1234.1234", "private-foobar")


def test_doc_presence_channel_example() -> None:
    channel_data = '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}'
    auth = f"{DOC_KEY}:afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
    assert sig.verify_channel_auth(
        auth, DOC_KEY, DOC_SECRET, "1234.1234", "presence-foobar", channel_data
    )
    assert not sig.verify_channel_auth(auth, DOC_KEY, DOC_SECRET, "1234.1234", "presence-foobar")
    assert f.parse_channel_data(channel_data).user_id == 10


DOC_BODY = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
DOC_PARAMS = {
    "auth_key": DOC_KEY,
    "auth_timestamp": "1353088179",
    "auth_version": "1.0",
    "body_md5": "ec365a775a4cd0599faeb73354201b6f",
}
DOC_STRING_TO_SIGN = (
    "POST\n/apps/3/events\n"
    "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
    "&body_md5=ec365a775a4cd0599faeb73354201b6f"
)
DOC_SIGNATURE = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"


def test_doc_http_api_example() -> None:
    assert hashlib.md5(DOC_BODY).hexdigest() == DOC_PARAMS["body_md5"]
    assert sig.api_string_to_sign("POST", "/apps/3/events", DOC_PARAMS) == DOC_STRING_TO_SIGN
    signed = {**DOC_PARAMS, "auth_signature": DOC_SIGNATURE}
    # auth_signature itself is left out of the string to sign
    assert sig.api_string_to_sign("post", "/apps/3/events", signed) == DOC_STRING_TO_SIGN
    assert sig.sign_api_request(DOC_SECRET, "POST", "/apps/3/events", DOC_PARAMS) == DOC_SIGNATURE
    sig.verify_api_request(DOC_SECRET, "POST", "/apps/3/events", signed, DOC_BODY, 1353088179.0)
    sig.verify_api_request(DOC_SECRET, "POST", "/apps/3/events", signed, DOC_BODY, 1353088779.0)
    with pytest.raises(ProtocolError):
        sig.verify_api_request(DOC_SECRET, "POST", "/apps/3/events", signed, DOC_BODY, 1353088780.0)


def test_api_string_to_sign_lowercases_and_sorts_keys() -> None:
    params = {"b": "2", "A": "1", "Auth_Signature": "x", "c": "3"}
    assert sig.api_string_to_sign("get", "/p", params) == "GET\n/p\na=1&b=2&c=3"


# --- channel auth, signed by the SDK ------------------------------------------------------------


@given(keys, secrets, socket_ids, channel_names.map(lambda c: "private-" + c))
def test_private_channel_auth_from_sdk(key: str, secret: str, socket_id: str, channel: str) -> None:
    response = _client(key, secret).authenticate(channel, socket_id)
    auth = response["auth"]
    assert sig.verify_channel_auth(auth, key, secret, socket_id, channel)
    assert sig.sign_channel(key, secret, socket_id, channel) == auth
    assert not sig.verify_channel_auth(_tamper_hex(auth), key, secret, socket_id, channel)
    assert not sig.verify_channel_auth(auth, key, secret + "x", socket_id, channel)
    assert not sig.verify_channel_auth(auth, key, secret, socket_id + "1", channel)
    assert not sig.verify_channel_auth(auth, key, secret, socket_id, channel + "x")
    assert not sig.verify_channel_auth(auth, key, secret, socket_id, channel, "{}")
    assert not sig.verify_channel_auth(None, key, secret, socket_id, channel)
    assert not sig.verify_channel_auth("", key, secret, socket_id, channel)


@given(
    keys,
    secrets,
    socket_ids,
    channel_names.map(lambda c: "presence-" + c),
    user_ids | st.integers(min_value=-(2**53), max_value=2**53),
    json_values,
)
def test_presence_channel_auth_from_sdk(
    key: str, secret: str, socket_id: str, channel: str, user_id: str | int, info: Any
) -> None:
    custom = {"user_id": user_id, "user_info": info}
    response = _client(key, secret).authenticate(channel, socket_id, custom)
    auth, channel_data = response["auth"], response["channel_data"]
    assert sig.verify_channel_auth(auth, key, secret, socket_id, channel, channel_data)
    assert not sig.verify_channel_auth(auth, key, secret, socket_id, channel)
    assert not sig.verify_channel_auth(auth, key, secret, socket_id, channel, channel_data + " ")
    assert not sig.verify_channel_auth(
        _tamper_hex(auth), key, secret, socket_id, channel, channel_data
    )
    member = f.parse_channel_data(channel_data)
    assert member.user_id == user_id


@given(any_text | st.none(), keys, secrets, any_text, any_text, any_text | st.none())
@example("k:\udc80", "k", "s", "1.1", "private-a", None)
@example("k:x", "k", "s", "1.\ud800", "private-a", "\udfff")
def test_verify_channel_auth_never_raises(
    auth: str | None, key: str, secret: str, socket_id: str, channel: str, data: str | None
) -> None:
    assert sig.verify_channel_auth(auth, key, secret, socket_id, channel, data) in (True, False)


# --- user sign-in, signed by the SDK ------------------------------------------------------------


@given(keys, secrets, socket_ids, user_ids, st.lists(user_ids, max_size=3), json_values)
def test_user_auth_from_sdk(
    key: str, secret: str, socket_id: str, user_id: str, watchlist: list[str], info: Any
) -> None:
    user = {"id": user_id, "watchlist": watchlist, "user_info": info}
    response = _client(key, secret).authenticate_user(socket_id, user)
    auth, user_data = response["auth"], response["user_data"]
    assert sig.verify_user_auth(auth, key, secret, socket_id, user_data)
    assert sig.sign_user(key, secret, socket_id, user_data) == auth
    assert not sig.verify_user_auth(_tamper_hex(auth), key, secret, socket_id, user_data)
    assert not sig.verify_user_auth(auth, key, secret + "x", socket_id, user_data)
    assert not sig.verify_user_auth(auth, key, secret, socket_id, user_data + " ")
    # a channel signature for the same socket is not a user signature
    assert not sig.verify_user_auth(
        sig.sign_channel(key, secret, socket_id, user_data), key, secret, socket_id, user_data
    )
    assert f.parse_user_data(user_data) == f.UserData(user_id, watchlist)


@given(any_text, keys, secrets, any_text, any_text)
@example("\ud800", "k", "s", "1.1", "{}")
def test_verify_user_auth_never_raises(
    auth: str, key: str, secret: str, socket_id: str, user_data: str
) -> None:
    assert sig.verify_user_auth(auth, key, secret, socket_id, user_data) in (True, False)


# --- HTTP API requests, signed by the SDK ---------------------------------------------------------


def _sdk_trigger(key: str, secret: str, channels: list[str], event: str, data: Any) -> Any:
    """The ``pusher.http.Request`` the SDK would send for a trigger (nothing is sent)."""
    return _client(key, secret)._pusher_client.trigger.make_request(channels, event, data)


def _sdk_channels_info(key: str, secret: str, prefix: str | None, attrs: list[str]) -> Any:
    return _client(key, secret)._pusher_client.channels_info.make_request(prefix, attrs)


def _verify(secret: str, request: Any, now: float | None = None, **changes: Any) -> None:
    params = dict(request.query_params)
    if now is None:
        now = float(params["auth_timestamp"])
    body = changes.pop("body", request.body)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    sig.verify_api_request(secret, request.method, request.path, params, body, now)


def _rejected(secret: str, request: Any, now: float | None = None, **changes: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        _verify(secret, request, now, **changes)
    assert info.value.code == ErrorCode.UNAUTHORIZED


@given(
    keys,
    secrets,
    st.lists(channel_names, min_size=1, max_size=3),
    st.text(min_size=1, max_size=30),
    st.text(max_size=200) | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
)
def test_api_post_signed_by_sdk(
    key: str, secret: str, channels: list[str], event: str, data: Any
) -> None:
    request = _sdk_trigger(key, secret, channels, event, data)
    assert request.method == "POST" and request.body
    ts = int(request.query_params["auth_timestamp"])
    _verify(secret, request)
    _verify(secret, request, now=ts + 600)
    _verify(secret, request, now=ts - 600)
    _rejected(secret + "x", request)  # wrong secret
    _rejected(secret, request, body=request.body + b" ")  # body_md5 mismatch
    _rejected(secret, request, body_md5=None)  # body but no body_md5
    _rejected(secret, request, now=ts + 601)  # timestamp older than 600 s
    _rejected(secret, request, now=ts - 601)  # ... or too far in the future
    _rejected(secret, request, auth_signature=None)  # missing signature
    _rejected(secret, request, auth_signature="")
    _rejected(secret, request, auth_timestamp=None)
    _rejected(secret, request, auth_timestamp=f"{ts}.5")  # non-integer timestamp
    _rejected(secret, request, auth_timestamp="abc")
    _rejected(secret, request, auth_timestamp=str(ts + 1))  # signed value changed
    _rejected(secret, request, auth_key=key[::-1] + "0")
    _rejected(secret, request, extra="1")  # unsigned param added


@given(
    keys,
    secrets,
    st.none() | st.from_regex(rf"{CHARS}{{1,20}}", fullmatch=True),
    st.lists(st.sampled_from(["user_count", "subscription_count"]), max_size=2, unique=True),
)
def test_api_get_signed_by_sdk(key: str, secret: str, prefix: str | None, attrs: list[str]) -> None:
    request = _sdk_channels_info(key, secret, prefix, attrs)
    assert request.method == "GET" and request.body == b""
    # the SDK sends body_md5 = md5("") on GET too; it must verify with or without it
    _verify(secret, request)
    _rejected(secret, request, body=b"x")
    _rejected(secret, request, body_md5=hashlib.md5(b"x").hexdigest())
    _rejected(secret + "x", request)
    _rejected(secret, request, auth_signature=None)
    if attrs:
        _rejected(secret, request, info="x")


def test_api_get_without_body_md5() -> None:
    params = {"auth_key": "k", "auth_timestamp": "1000", "auth_version": "1.0"}
    params["auth_signature"] = sig.sign_api_request("s", "GET", "/apps/1/channels", params)
    sig.verify_api_request("s", "GET", "/apps/1/channels", params, b"", 1000.0)


@pytest.mark.parametrize(
    "timestamp", ["", " ", "1e3", "0x10", "1.0", "nan", "inf", "9" * 5000, "1" + "0" * 400, "-1"]
)
def test_api_bad_timestamps_are_protocol_errors(timestamp: str) -> None:
    params = {"auth_key": "k", "auth_timestamp": timestamp, "auth_version": "1.0"}
    params["auth_signature"] = sig.sign_api_request("s", "GET", "/p", params)
    with pytest.raises(ProtocolError) as info:
        sig.verify_api_request("s", "GET", "/p", params, b"", time.time())
    assert info.value.code == ErrorCode.UNAUTHORIZED


@given(
    any_text,
    st.sampled_from(["GET", "POST"]) | any_text,
    any_text,
    st.dictionaries(
        st.sampled_from(
            ["auth_key", "auth_timestamp", "auth_version", "body_md5", "auth_signature", "info"]
        )
        | any_text,
        any_text | st.integers().map(str) | st.just(str(int(time.time()))),
        max_size=6,
    ),
    st.binary(max_size=50),
    st.floats(min_value=0, max_value=2e10),
)
def test_verify_api_request_only_raises_protocol_error(
    secret: str, method: str, path: str, params: dict[str, str], body: bytes, now: float
) -> None:
    try:
        sig.verify_api_request(secret, method, path, params, body, now)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.UNAUTHORIZED


@given(secrets, socket_ids, any_text)
@example("s", "1.1", "\udc80")
def test_lone_surrogates_in_signed_values_do_not_crash(
    secret: str, socket_id: str, junk: str
) -> None:
    params = {"auth_key": junk, "auth_timestamp": "1000", "auth_signature": junk}
    with pytest.raises(ProtocolError):
        sig.verify_api_request(secret, "GET", "/p" + junk, params, b"", 1000.0)


# --- webhooks ---------------------------------------------------------------------------------


@given(secrets, st.binary())
def test_sign_webhook_is_hmac_sha256_hex(secret: str, body: bytes) -> None:
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    assert sig.sign_webhook(secret, body) == expected


@given(keys, secrets, st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=5))))
def test_sdk_validates_our_webhooks(key: str, secret: str, events: list[dict[str, str]]) -> None:
    body = json.dumps({"time_ms": int(time.time() * 1000), "events": events}).encode()
    signature = sig.sign_webhook(secret, body)
    client = _client(key, secret)
    assert client.validate_webhook(key, signature, body) is not None
    assert client.validate_webhook(key, _tamper_hex(signature), body) is None
