"""sockudo_py.protocol.channels: name validation and classification (PROTOCOL.md, Channels)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pusher.util import validate_channel as sdk_validate_channel

from sockudo_py.protocol import ErrorCode, ProtocolError
from sockudo_py.protocol.channels import (
    SERVER_TO_USER_PREFIX,
    ChannelKind,
    ChannelType,
    channel_type,
    server_to_user_id,
    validate_channel_name,
)

# The rule as PROTOCOL.md writes it; fullmatch, so that "$" does not let a trailing "\n" in.
CHARS = r"[A-Za-z0-9_\-=@,.;]"
SPEC = re.compile(rf"{CHARS}+|#server-to-user-{CHARS}+")

valid_bodies = st.from_regex(rf"{CHARS}{{1,200}}", fullmatch=True)
name_alphabet = st.sampled_from("abcXYZ0189_-=@,.;#:/ \n\t\x00é😀\u0660" + SERVER_TO_USER_PREFIX)
nameish = st.text(name_alphabet, max_size=40) | st.text(
    st.characters(exclude_categories=()), max_size=40
)


def _accepted(name: Any, max_length: int = 200) -> bool:
    try:
        assert validate_channel_name(name, max_length) == name
    except ProtocolError as exc:
        assert exc.code == ErrorCode.CHANNEL_ERROR
        return False
    return True


@given(valid_bodies)
def test_valid_names_accepted(name: str) -> None:
    assert _accepted(name)


@given(st.from_regex(rf"{CHARS}{{1,184}}", fullmatch=True))
def test_server_to_user_names_accepted(user_id: str) -> None:
    name = SERVER_TO_USER_PREFIX + user_id
    assert _accepted(name)
    assert server_to_user_id(name) == user_id


@given(nameish | valid_bodies | st.builds(lambda a, b: a + b, valid_bodies, nameish))
def test_accepts_exactly_the_spec(name: str) -> None:
    expected = SPEC.fullmatch(name) is not None and len(name) <= 200
    assert _accepted(name) is expected


@given(nameish | valid_bodies)
def test_agrees_with_pusher_sdk(name: str) -> None:
    """The Pusher server SDK's own name check (same rule, same 200 limit)."""
    try:
        sdk_validate_channel(name)
        sdk_ok = True
    except ValueError:
        sdk_ok = False
    assert _accepted(name) is sdk_ok


@given(valid_bodies, st.integers(min_value=1, max_value=300))
def test_max_length(name: str, max_length: int) -> None:
    assert _accepted(name, max_length) is (len(name) <= max_length)


def test_length_boundary() -> None:
    assert _accepted("a" * 200)
    assert not _accepted("a" * 201)
    assert _accepted("a" * 300, max_length=300)
    prefixed = SERVER_TO_USER_PREFIX + "u" * (200 - len(SERVER_TO_USER_PREFIX))
    assert _accepted(prefixed)
    assert not _accepted(prefixed + "u")


@pytest.mark.parametrize(
    "name",
    [
        None,
        1,
        b"abc",
        ["a"],
        "",
        " ",
        "a b",
        "a\n",
        "\na",
        "a/b",
        "a:b",
        "a#b",
        "é",
        "#server-to-user-",
        "#server-to-user-a b",
        "#server-to-user-#server-to-user-a",
        "#server-to-userx",
        "#private-a",
        "a\x00",
    ],
)
def test_invalid_names(name: Any) -> None:
    assert not _accepted(name)


@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text()), st.floats()))
def test_non_strings_rejected(name: Any) -> None:
    assert not _accepted(name)


P, PR, E, PS, S2U = (
    ChannelKind.PUBLIC,
    ChannelKind.PRIVATE,
    ChannelKind.ENCRYPTED,
    ChannelKind.PRESENCE,
    ChannelKind.SERVER_TO_USER,
)


@pytest.mark.parametrize(
    ("name", "kind", "is_cache"),
    [
        ("my-channel", P, False),
        ("private", P, False),  # no dash: public
        ("presence", P, False),
        ("privatex-a", P, False),
        ("x-private-a", P, False),
        ("private-a", PR, False),
        ("private-encrypted-a", E, False),
        ("private-encryptedx", PR, False),
        ("presence-a", PS, False),
        ("cache-a", P, True),
        ("private-cache-a", PR, True),
        ("private-encrypted-cache-a", E, True),
        ("presence-cache-a", PS, True),
        ("#server-to-user-42", S2U, False),
        # anchored prefixes: "cache-" inside the name does not make a cache channel
        ("mycache-x", P, False),
        ("x-cache-y", P, False),
        ("private-mycache-x", PR, False),
        ("presence-x-cache-y", PS, False),
        ("public-cache-x", P, False),
        ("cache", P, False),
    ],
)
def test_channel_type_table(name: str, kind: ChannelKind, is_cache: bool) -> None:
    assert channel_type(name) == ChannelType(kind, is_cache)


@pytest.mark.parametrize(
    ("kind", "requires_auth", "allows_client_events"),
    [(P, False, False), (PR, True, True), (E, True, False), (PS, True, True), (S2U, False, False)],
)
def test_kind_properties(
    kind: ChannelKind, requires_auth: bool, allows_client_events: bool
) -> None:
    for is_cache in (False, True):
        t = ChannelType(kind, is_cache)
        assert t.requires_auth is requires_auth
        assert t.allows_client_events is allows_client_events


@given(nameish | valid_bodies)
def test_channel_type_total_and_consistent(name: str) -> None:
    t = channel_type(name)  # never raises, on any text
    assert t.is_cache == name.startswith(
        ("cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-")
    )
    if name.startswith("private-encrypted-"):
        assert t.kind is E
    elif name.startswith("private-"):
        assert t.kind is PR
    elif name.startswith("presence-"):
        assert t.kind is PS
    elif name.startswith(SERVER_TO_USER_PREFIX):
        assert t.kind is S2U
    else:
        assert t.kind is P
