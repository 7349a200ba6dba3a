"""sockudo_py.ws.wire: the RFC 6455 wire format without I/O.

``FrameReader`` is checked against a client-side encoder written here (masking, fragments,
interleaved control frames, the three length encodings, any chunking of the byte stream) and
fuzzed (nothing but ``WireError`` with a close code the server may send); the handshake and
the server's own frames are checked against the RFC and a parser written here."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate

from sockudo_py.ws import wire
from sockudo_py.ws.socket_protocol import _inflater
from sockudo_py.ws.wire import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    WireError,
)

BIG = 1 << 20  # max_size for tests that are not about max_size
READER_CODES = {wire.PROTOCOL_ERROR, wire.INVALID_DATA, wire.TOO_BIG}
ZERO_KEY = b"\0\0\0\0"

fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the client side, written here ---------------------------------------------------------


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key repeated (independent of websockets' apply_mask)."""
    if not payload:
        return b""
    size = len(payload)
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")


def client_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = ZERO_KEY,
    length: int | None = None,
) -> bytes:
    """One frame as a client sends it: masked with ``key`` (``None``: unmasked), ``rsv`` the
    three reserved bits (0b100 is rsv1), ``length`` the declared payload length."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload) if length is None else length
    mask_bit = 0x80 if key is not None else 0
    if size < 126:
        head = bytes((first, mask_bit | size))
    elif size < 65536:
        head = bytes((first, mask_bit | 126)) + struct.pack("!H", size)
    else:
        head = bytes((first, mask_bit | 127)) + struct.pack("!Q", size)
    if key is None:
        return head + payload
    return head + key + mask(payload, key)


def parse_server_frame(data: bytes) -> tuple[bool, bool, int, bytes]:
    """(fin, rsv1, opcode, payload) of exactly one unmasked frame; checks the minimal length
    encoding and that nothing is left over."""
    first, second = data[0], data[1]
    assert not second & 0x80, "server frames are never masked"
    assert not first & 0x30, "rsv2/rsv3 never set"
    size, pos = second & 0x7F, 2
    if size == 126:
        (size,) = struct.unpack_from("!H", data, 2)
        pos = 4
        assert 126 <= size < 65536, "minimal length encoding"
    elif size == 127:
        (size,) = struct.unpack_from("!Q", data, 2)
        pos = 10
        assert size >= 65536, "minimal length encoding"
    assert len(data) == pos + size
    return bool(first & 0x80), bool(first & 0x40), first & 0x0F, data[pos:]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the ``cuts`` (any positions, duplicates and ends ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def feed_all(reader: FrameReader, chunks: list[bytes]) -> list[tuple[int, bytes | str]]:
    out: list[tuple[int, bytes | str]] = []
    for chunk in chunks:
        out += reader.feed(chunk)
    return out


def read(data: bytes, max_size: int = BIG, inflate: wire.Inflate | None = None) -> list:
    return FrameReader(max_size, inflate).feed(data)


def read_bytewise(data: bytes, max_size: int = BIG, inflate: wire.Inflate | None = None) -> list:
    reader = FrameReader(max_size, inflate)
    return feed_all(reader, [data[i : i + 1] for i in range(len(data))])


def error_code(action: Callable[[], object]) -> int:
    with pytest.raises(WireError) as info:
        action()
    return info.value.code


# --- strategies ----------------------------------------------------------------------------

keys = st.just(ZERO_KEY) | st.binary(min_size=4, max_size=4)


@st.composite
def payload_bytes(draw: st.DrawFn) -> bytes:
    """Mostly short, sometimes in the 16-bit or the 64-bit length range (a drawn pattern
    repeated, so large payloads stay cheap to generate)."""
    kind = draw(st.sampled_from(["small"] * 6 + ["medium"] * 2 + ["large"]))
    if kind == "small":
        return draw(st.binary(max_size=200))
    size = draw(st.integers(126, 65535) if kind == "medium" else st.integers(65536, 70000))
    pattern = draw(st.binary(min_size=1, max_size=16))
    return (pattern * (size // len(pattern) + 1))[:size]


@st.composite
def payload_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["small"] * 6 + ["medium"] * 2 + ["large"]))
    if kind == "small":
        return draw(st.text(max_size=60))
    target = draw(st.integers(126, 65535) if kind == "medium" else st.integers(65536, 70000))
    pattern = draw(st.text(min_size=1, max_size=8))
    return pattern * (target // len(pattern.encode()) + 1)


messages = st.lists(
    st.tuples(st.just(OP_TEXT), payload_text()) | st.tuples(st.just(OP_BINARY), payload_bytes()),
    max_size=6,
)
controls = st.lists(
    st.tuples(st.sampled_from([OP_PING, OP_PONG]), st.binary(max_size=125), keys), max_size=2
)


# --- FrameReader: whole messages out --------------------------------------------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages, st.data())
def test_reader_yields_the_messages_and_control_frames_sent(
    sent: list[tuple[int, str | bytes]], data: st.DataObject
) -> None:
    stream = bytearray()
    expected: list[tuple[int, bytes | str]] = []

    def interleave() -> None:
        for opcode, payload, key in data.draw(controls):
            stream.extend(client_frame(opcode, payload, key=key))
            expected.append((opcode, payload))

    for opcode, message in sent:
        raw = message.encode() if isinstance(message, str) else message
        # fragments cut anywhere, so a UTF-8 character may span two of them
        cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=4))
        fragments = chunked(raw, cuts) if raw else [b""]
        if data.draw(st.booleans()) and raw:
            fragments.append(b"")  # an empty final continuation frame
        interleave()
        for index, fragment in enumerate(fragments):
            if index:
                interleave()
            stream.extend(
                client_frame(
                    opcode if index == 0 else OP_CONT,
                    fragment,
                    fin=index == len(fragments) - 1,
                    key=data.draw(keys),
                )
            )
        expected.append((opcode, message))
    interleave()

    whole = bytes(stream)
    if len(whole) <= 3000 and data.draw(st.booleans()):
        chunks = [whole[i : i + 1] for i in range(len(whole))]  # one byte at a time
    else:
        chunks = chunked(whole, data.draw(st.lists(st.integers(0, len(whole)), max_size=20)))
    reader = FrameReader(BIG)
    got = feed_all(reader, chunks)
    assert [(op, type(p)) for op, p in got] == [(op, type(p)) for op, p in expected]
    assert got == expected
    assert reader.feed(b"") == []


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_reader_reads_each_length_encoding(size: int, opcode: int) -> None:
    payload = bytes(range(97, 123)) * (size // 26 + 1)
    payload = payload[:size]
    frame = client_frame(opcode, payload, key=b"\x12\x34\x56\x78")
    expected = payload.decode() if opcode == OP_TEXT else payload
    assert read(frame) == [(opcode, expected)]
    # split inside the extended length and the mask key, then the rest
    reader = FrameReader(BIG)
    assert feed_all(reader, [frame[:1], frame[1:3], frame[3:7], frame[7:]]) == [(opcode, expected)]


def test_reader_joins_a_character_split_across_fragments() -> None:
    raw = "é😀".encode()  # c3 a9 f0 9f 98 80
    stream = (
        client_frame(OP_TEXT, raw[:1], fin=False)
        + client_frame(OP_PING, b"p", key=b"abcd")
        + client_frame(OP_CONT, raw[1:4], fin=False, key=b"\xff\xff\xff\xff")
        + client_frame(OP_CONT, raw[4:])
    )
    assert read_bytewise(stream) == [(OP_PING, b"p"), (OP_TEXT, "é😀")]


def test_reader_keeps_an_incomplete_frame_for_the_next_feed() -> None:
    reader = FrameReader(BIG)
    frame = client_frame(OP_TEXT, b"hello", key=b"k3y!")
    assert reader.feed(frame + frame[:3]) == [(OP_TEXT, "hello")]
    assert reader.feed(frame[3:] + frame) == [(OP_TEXT, "hello"), (OP_TEXT, "hello")]


def test_reader_passes_close_frames_through() -> None:
    payload = struct.pack("!H", 1000) + b"bye"
    assert read(client_frame(OP_CLOSE, payload, key=b"wxyz")) == [(OP_CLOSE, payload)]


# --- FrameReader: violations -------------------------------------------------------------


def test_unmasked_frame_is_a_protocol_error() -> None:
    assert error_code(lambda: read(client_frame(OP_TEXT, b"hi", key=None))) == 1002
    # noticed with the header alone, before the payload arrives
    head = client_frame(OP_BINARY, b"x" * 300, key=None)[:4]
    assert error_code(lambda: read(head)) == 1002


@pytest.mark.parametrize("rsv", [0b100, 0b010, 0b001, 0b111])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING])
def test_reserved_bits_are_a_protocol_error(rsv: int, opcode: int) -> None:
    assert error_code(lambda: read(client_frame(opcode, b"x", rsv=rsv))) == 1002


@pytest.mark.parametrize("rsv", [0b010, 0b001])
def test_rsv2_and_rsv3_are_a_protocol_error_with_compression(rsv: int) -> None:
    frame = client_frame(OP_TEXT, b"x", rsv=rsv)
    assert error_code(lambda: read(frame, inflate=_inflater(new_deflate(), BIG))) == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
@pytest.mark.parametrize("fin", [True, False])
def test_reserved_opcodes_are_a_protocol_error(opcode: int, fin: bool) -> None:
    assert error_code(lambda: read(client_frame(opcode, b"", fin=fin))) == 1002


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frame_is_a_protocol_error(opcode: int) -> None:
    assert error_code(lambda: read(client_frame(opcode, b"x", fin=False))) == 1002


@pytest.mark.parametrize("size", [126, 200, 65536])
@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_oversized_control_frame_is_a_protocol_error(size: int, opcode: int) -> None:
    frame = client_frame(opcode, b"\x03\xe8" + b"x" * (size - 2))
    assert error_code(lambda: read(frame)) == 1002
    assert read(client_frame(opcode, b"\x03\xe8" + b"x" * 123)) != []  # 125 bytes is fine


def test_control_frame_with_rsv1_is_a_protocol_error_even_with_compression() -> None:
    frame = client_frame(OP_PING, b"x", rsv=0b100)
    assert error_code(lambda: read(frame, inflate=_inflater(new_deflate(), BIG))) == 1002


@pytest.mark.parametrize(
    "frames",
    [
        [client_frame(OP_CONT, b"x")],  # continuation with nothing to continue
        [client_frame(OP_CONT, b"x", fin=False)],
        [client_frame(OP_TEXT, b"a"), client_frame(OP_CONT, b"b")],  # after a whole message
        [client_frame(OP_TEXT, b"a", fin=False), client_frame(OP_TEXT, b"b")],  # not continued
        [client_frame(OP_TEXT, b"a", fin=False), client_frame(OP_BINARY, b"b")],
        [client_frame(OP_BINARY, b"a", fin=False), client_frame(OP_BINARY, b"b", fin=False)],
        [
            client_frame(OP_BINARY, b"a", fin=False),
            client_frame(OP_PING, b""),
            client_frame(OP_TEXT, b"b"),
        ],
    ],
)
def test_bad_continuation_state_is_a_protocol_error(frames: list[bytes]) -> None:
    assert error_code(lambda: read(b"".join(frames))) == 1002


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
@pytest.mark.parametrize("max_size", [0, 10, 125, 126, 65536])
def test_a_frame_over_max_size_is_too_big(opcode: int, max_size: int) -> None:
    assert read(client_frame(opcode, b"a" * max_size), max_size) != []  # at the limit: fine
    over = client_frame(opcode, b"a" * (max_size + 1))
    assert error_code(lambda: read(over, max_size)) == 1009


def test_a_frame_over_max_size_is_refused_from_its_header() -> None:
    # a declared 2**40-byte frame: refused before any payload arrives
    head = client_frame(OP_BINARY, b"", length=2**40)
    assert error_code(lambda: read(head, 1000)) == 1009
    head = client_frame(OP_BINARY, b"", length=70000)
    assert error_code(lambda: read(head, 65536)) == 1009


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_a_fragmented_message_over_max_size_is_too_big(opcode: int) -> None:
    max_size = 100
    at_limit = (
        client_frame(opcode, b"a" * 40, fin=False)
        + client_frame(OP_CONT, b"a" * 40, fin=False)
        + client_frame(OP_PING, b"p" * 50)  # control frames do not count
        + client_frame(OP_CONT, b"a" * 20)
    )
    assert len(read(at_limit, max_size)) == 2
    over = (
        client_frame(opcode, b"a" * 40, fin=False)
        + client_frame(OP_CONT, b"a" * 40, fin=False)
        + client_frame(OP_CONT, b"a" * 21, fin=False)  # every frame is under max_size
    )
    assert error_code(lambda: read(over, max_size)) == 1009
    assert error_code(lambda: read_bytewise(over, max_size)) == 1009


@pytest.mark.parametrize(
    "raw",
    [b"\xff", b"\xc3", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xc0\xaf", b"\xe2\x82"],
)
def test_invalid_utf8_text_is_invalid_data(raw: bytes) -> None:
    assert error_code(lambda: read(client_frame(OP_TEXT, raw))) == 1007
    fragmented = client_frame(OP_TEXT, raw[:1], fin=False) + client_frame(OP_CONT, raw[1:])
    assert error_code(lambda: read(fragmented)) == 1007
    assert read(client_frame(OP_BINARY, raw)) == [(OP_BINARY, raw)]  # binary: any bytes


# --- FrameReader: fuzz -------------------------------------------------------------------


def check_output(messages: list[tuple[int, bytes | str]]) -> None:
    for opcode, payload in messages:
        if opcode == OP_TEXT:
            assert isinstance(payload, str)
        else:
            assert opcode in {OP_BINARY, OP_CLOSE, OP_PING, OP_PONG}
            assert isinstance(payload, bytes)


def feed_fuzz(reader: FrameReader, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            check_output(reader.feed(chunk))
    except WireError as exc:
        assert exc.code in READER_CODES, exc


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=400),
    st.lists(st.integers(0, 400), max_size=12),
    st.integers(0, 300),
    st.booleans(),
)
def test_arbitrary_bytes_raise_nothing_but_wire_error(
    data: bytes, cuts: list[int], max_size: int, compressed: bool
) -> None:
    inflate = _inflater(new_deflate(), max_size) if compressed else None
    feed_fuzz(FrameReader(max_size, inflate), chunked(data, cuts))


@st.composite
def frame_soup(draw: st.DrawFn) -> bytes:
    """Frames with random header bits (mostly masked, opcodes 0-15, any reserved bits)."""
    frames = []
    for _ in range(draw(st.integers(1, 6))):
        payload = draw(st.binary(max_size=140))
        frames.append(
            client_frame(
                draw(st.sampled_from([0, 1, 2, 8, 9, 10]) | st.integers(0, 15)),
                payload,
                fin=draw(st.booleans()),
                rsv=draw(st.sampled_from([0, 0, 0, 4]) | st.integers(0, 7)),
                key=draw(st.none() | keys) if draw(st.integers(0, 9)) == 0 else draw(keys),
            )
        )
    return b"".join(frames)


@settings(max_examples=80, deadline=None)
@given(frame_soup(), st.lists(st.integers(0, 1000), max_size=8), st.integers(0, 200), st.booleans())
def test_random_frames_raise_nothing_but_wire_error(
    data: bytes, cuts: list[int], max_size: int, compressed: bool
) -> None:
    inflate = _inflater(new_deflate(), max_size) if compressed else None
    feed_fuzz(FrameReader(max_size, inflate), chunked(data, cuts))


# --- permessage-deflate through the inflate hook ------------------------------------------


def new_deflate() -> PerMessageDeflate:
    return PerMessageDeflate(False, False, 15, 15)


def compress(compressor: zlib._Compress, data: bytes) -> bytes:
    """A message as permessage-deflate sends it: sync-flushed, the 00 00 ff ff tail cut."""
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def test_inflate_hook_round_trip() -> None:
    compressor = zlib.compressobj(wbits=-15)
    reader = FrameReader(BIG, _inflater(new_deflate(), BIG))
    texts = ["hello " * 50, "héllo wörld 😀", "hello " * 50, ""]  # context takeover
    for text in texts:
        frame = client_frame(OP_TEXT, compress(compressor, text.encode()), rsv=0b100, key=b"abcd")
        assert reader.feed(frame) == [(OP_TEXT, text)]
    # an uncompressed message (rsv1 clear) goes through unchanged
    assert reader.feed(client_frame(OP_BINARY, b"\x00raw", key=b"wxyz")) == [
        (OP_BINARY, b"\x00raw")
    ]
    # a large one, fragmented, rsv1 on the first frame only, fed a byte at a time
    text = "".join(f"{i}:ü " for i in range(20000))
    body = compress(compressor, text.encode())
    third = len(body) // 3
    stream = (
        client_frame(OP_TEXT, body[:third], fin=False, rsv=0b100, key=b"\x01\x02\x03\x04")
        + client_frame(OP_PING, b"ping")
        + client_frame(OP_CONT, body[third : 2 * third], fin=False)
        + client_frame(OP_CONT, body[2 * third :], key=b"k3y!")
    )
    chunks = chunked(stream, list(range(0, len(stream), 7)))
    assert feed_all(reader, chunks) == [(OP_PING, b"ping"), (OP_TEXT, text)]


@fast
@given(st.lists(st.text(max_size=300), min_size=1, max_size=5), st.data())
def test_inflate_hook_round_trip_property(texts: list[str], data: st.DataObject) -> None:
    compressor = zlib.compressobj(wbits=-15)
    reader = FrameReader(BIG, _inflater(new_deflate(), BIG))
    for text in texts:
        body = compress(compressor, text.encode())
        cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=3))
        parts = chunked(body, cuts) or [b""]
        stream = b"".join(
            client_frame(
                OP_TEXT if i == 0 else OP_CONT,
                part,
                fin=i == len(parts) - 1,
                rsv=0b100 if i == 0 else 0,
                key=data.draw(keys),
            )
            for i, part in enumerate(parts)
        )
        assert reader.feed(stream) == [(OP_TEXT, text)]


def test_rsv1_without_an_inflate_hook_is_a_protocol_error() -> None:
    body = compress(zlib.compressobj(wbits=-15), b"hello")
    assert error_code(lambda: read(client_frame(OP_TEXT, body, rsv=0b100))) == 1002


def test_inflating_past_max_size_is_too_big() -> None:
    body = compress(zlib.compressobj(wbits=-15), b"a" * 10_000)
    assert len(body) < 100
    frame = client_frame(OP_TEXT, body, rsv=0b100)
    assert error_code(lambda: read(frame, 1000, _inflater(new_deflate(), 1000))) == 1009


def test_compressed_garbage_is_a_protocol_error() -> None:
    frame = client_frame(OP_TEXT, b"\xff\xff\xff\xff", rsv=0b100)
    assert error_code(lambda: read(frame, BIG, _inflater(new_deflate(), BIG))) == 1002


def test_rsv1_on_a_continuation_of_a_compressed_message_is_a_protocol_error() -> None:
    body = compress(zlib.compressobj(wbits=-15), b"hello world")
    stream = client_frame(OP_TEXT, body[:3], fin=False, rsv=0b100) + client_frame(
        OP_CONT, body[3:], rsv=0b100
    )
    assert error_code(lambda: read(stream, BIG, _inflater(new_deflate(), BIG))) == 1002


def test_rsv1_on_a_continuation_of_an_uncompressed_message_is_a_protocol_error() -> None:
    stream = client_frame(OP_TEXT, b"hello ", fin=False) + client_frame(
        OP_CONT, b"world", rsv=0b100
    )
    assert error_code(lambda: read(stream, BIG, _inflater(new_deflate(), BIG))) == 1002


# --- the opening handshake -----------------------------------------------------------------

RFC_KEY, RFC_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

PUSHER_JS_HEAD = (
    "GET /app/app-key?protocol=7&client=js&version=8.4.0&flash=false HTTP/1.1\r\n"
    "Host: localhost:6001\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://localhost:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    f"Sec-WebSocket-Key: {RFC_KEY}\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "X-Forwarded-For: 203.0.113.7\r\n"
    "x-forwarded-for:198.51.100.2  "
)


def test_parse_request_reads_a_pusher_js_upgrade() -> None:
    request = wire.parse_request(PUSHER_JS_HEAD.encode())
    assert request is not None
    assert request.method == "GET"
    assert request.path == "/app/app-key"
    assert request.query == "protocol=7&client=js&version=8.4.0&flash=false"
    assert request.headers == {
        "host": "localhost:6001",
        "connection": "Upgrade",
        "pragma": "no-cache",
        "cache-control": "no-cache",
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        "upgrade": "websocket",
        "origin": "http://localhost:8080",
        "sec-websocket-version": "13",
        "accept-encoding": "gzip, deflate, br",
        "accept-language": "en-US,en;q=0.9",
        "sec-websocket-key": RFC_KEY,
        "sec-websocket-extensions": "permessage-deflate; client_max_window_bits",
        "x-forwarded-for": "203.0.113.7, 198.51.100.2",
    }
    assert request.header("Sec-WebSocket-Key".lower()) == RFC_KEY
    assert request.header("missing") == ""
    assert wire.handshake_problem(request) is None


def test_parse_request_path_and_query() -> None:
    request = wire.parse_request(b"GET /app/a%20b%2Fc?x=%20y&z HTTP/1.0")
    assert request is not None
    assert (request.path, request.query, request.headers) == ("/app/a b/c", "x=%20y&z", {})
    request = wire.parse_request(b"GET /app/key HTTP/1.1\r\nHost: h")
    assert request is not None
    assert (request.path, request.query) == ("/app/key", "")


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"GET",
        b"GET /app/key",
        b"GET /app/key HTTP/1.1 extra",
        b"GET  /app/key HTTP/1.1",
        b"GET /app/key HTTP/2\r\nHost: h",
        b"GET /app/key http/1.1",
        b"GET /app/key HTTP/1.1\r\nHost h",  # no colon
        b"GET /app/key HTTP/1.1\r\n: value",  # no name
        b"GET /app/key HTTP/1.1\r\n folded: value",  # obsolete line folding
        b"GET /app/key HTTP/1.1\r\nHost : h",  # space before the colon
        b"GET /app/key HTTP/1.1\r\nHost: h\r\n",  # an empty header line
        b"GET /app/key HTTP/1.1\r\nHost: h\r\n\r\nUpgrade: websocket",
    ],
)
def test_parse_request_refuses_malformed_heads(head: bytes) -> None:
    assert wire.parse_request(head) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode()))
def test_parse_request_never_raises(head: bytes) -> None:
    request = wire.parse_request(head)
    if request is not None:
        assert all(name == name.lower() for name in request.headers)
        wire.handshake_problem(request)  # nor does this


def handshake(**changes: str | None) -> wire.Request:
    headers = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": RFC_KEY,
    }
    method = changes.pop("method", None) or "GET"
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    lines = [f"{method} /app/key?protocol=7 HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    request = wire.parse_request("\r\n".join(lines).encode("latin-1"))
    assert request is not None
    return request


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"Upgrade": "WebSocket"},
        {"Upgrade": "h2c, websocket"},
        {"Connection": "keep-alive, Upgrade"},
        {"Connection": "upgrade"},
        {"Sec_WebSocket_Key": base64.b64encode(bytes(range(16))).decode()},
    ],
)
def test_handshake_problem_accepts_valid_upgrades(changes: dict[str, str]) -> None:
    assert wire.handshake_problem(handshake(**changes)) is None


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"method": "POST"}, 405),
        ({"method": "HEAD"}, 405),
        ({"method": "get"}, 405),
        ({"Upgrade": None}, 426),
        ({"Upgrade": "h2c"}, 426),
        ({"Upgrade": "websockets"}, 426),
        ({"Connection": None}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Sec_WebSocket_Version": None}, 426),
        ({"Sec_WebSocket_Version": "8"}, 426),
        ({"Sec_WebSocket_Version": "13, 8"}, 426),
        ({"Sec_WebSocket_Key": None}, 400),
        ({"Sec_WebSocket_Key": ""}, 400),
        ({"Sec_WebSocket_Key": "not base64!"}, 400),
        ({"Sec_WebSocket_Key": base64.b64encode(b"x" * 15).decode()}, 400),
        ({"Sec_WebSocket_Key": base64.b64encode(b"x" * 17).decode()}, 400),
        ({"Sec_WebSocket_Key": "dGhlIHNhbXBsZSBub25jZQ"}, 400),  # padding missing
        ({"Sec_WebSocket_Key": "dGhlIHNhbXBsZSBub25jZQ==\xe9"}, 400),  # not ASCII
    ],
)
def test_handshake_problem_reports_status(changes: dict[str, str | None], status: int) -> None:
    problem = wire.handshake_problem(handshake(**changes))
    assert problem is not None
    assert problem[0] == status
    assert problem[1]


def parse_response(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, sep, body = response.partition(b"\r\n\r\n")
    assert sep
    status, *lines = head.decode().split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(": ")
        assert name.lower() not in headers
        headers[name.lower()] = value
    return status, headers, body


def test_accept_answers_with_the_rfc_example_value() -> None:
    status, headers, body = parse_response(wire.accept(handshake()))
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert headers == {
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-accept": RFC_ACCEPT,
    }
    assert body == b""


def test_accept_includes_the_extensions_header_when_given() -> None:
    extensions = "permessage-deflate; server_no_context_takeover"
    status, headers, body = parse_response(wire.accept(handshake(), extensions))
    assert status == "HTTP/1.1 101 Switching Protocols"
    assert headers["sec-websocket-accept"] == RFC_ACCEPT
    assert headers["sec-websocket-extensions"] == extensions
    assert body == b""


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (400, "Bad Request"),
        (403, "Forbidden"),
        (405, "Method Not Allowed"),
        (426, "Upgrade Required"),
        (431, "Request Header Fields Too Large"),
        (503, "Service Unavailable"),
        (418, "Error"),
    ],
)
def test_http_response_status_line_length_and_connection_close(status: int, text: str) -> None:
    status_line, headers, body = parse_response(wire.http_response(status, "Nope: é ✓"))
    assert status_line == f"HTTP/1.1 {status} {text}"
    assert body == "Nope: é ✓".encode()
    assert headers["content-length"] == str(len(body))
    assert headers["connection"] == "close"
    assert headers["content-type"].startswith("text/plain")


def test_http_response_extra_headers_and_connection_always_close() -> None:
    response = wire.http_response(
        426, "Sec-WebSocket-Version 13 expected", {"Sec-WebSocket-Version": "13"}
    )
    _, headers, body = parse_response(response)
    assert headers["sec-websocket-version"] == "13"
    assert headers["content-length"] == str(len(body))
    _, headers, _ = parse_response(wire.http_response(503, "", {"Connection": "keep-alive"}))
    assert headers["connection"] == "close"
    assert headers["content-length"] == "0"


@fast
@given(st.sampled_from([400, 405, 426, 503]), st.text(max_size=100).filter(lambda t: "\r" not in t))
def test_http_response_content_length_matches_any_body(status: int, reason: str) -> None:
    _, headers, body = parse_response(wire.http_response(status, reason))
    assert body == reason.encode()
    assert int(headers["content-length"]) == len(body)


# --- frames out ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING])
@pytest.mark.parametrize("rsv1", [False, True])
def test_encode_frame_round_trip(size: int, opcode: int, rsv1: bool) -> None:
    payload = bytes(i % 251 for i in range(size))
    assert parse_server_frame(wire.encode_frame(opcode, payload, rsv1)) == (
        True,
        rsv1,
        opcode,
        payload,
    )


@fast
@given(st.sampled_from([OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]), payload_bytes())
def test_encode_frame_round_trip_property(opcode: int, payload: bytes) -> None:
    assert parse_server_frame(wire.encode_frame(opcode, payload)) == (True, False, opcode, payload)


def test_text_frame_is_cached_for_the_same_str_object() -> None:
    text = "".join(["channel-event ", "x" * 200])  # built at run time: a fresh object
    first = wire.text_frame(text)
    assert wire.text_frame(text) is first
    assert parse_server_frame(first) == (True, False, OP_TEXT, text.encode())
    equal = "".join(["channel-event ", "x" * 200])
    assert equal is not text
    assert wire.text_frame(equal) == first  # re-encoded, same bytes


def test_text_frame_encodes_different_strings_correctly() -> None:
    texts = ["a", "bé", "a", "", "😀" * 40_000, "a"]
    for text in texts:
        assert parse_server_frame(wire.text_frame(text)) == (True, False, OP_TEXT, text.encode())


@fast
@given(st.lists(st.text(max_size=200), min_size=1, max_size=5))
def test_text_frame_property(texts: list[str]) -> None:
    for text in texts:
        frame = wire.text_frame(text)
        assert frame == wire.encode_frame(OP_TEXT, text.encode())
        assert wire.text_frame(text) is frame


VALID_CLOSE_CODES = st.sampled_from(
    [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
) | st.integers(3000, 4999)


@fast
@given(VALID_CLOSE_CODES, st.text(max_size=123).filter(lambda t: len(t.encode()) <= 123))
def test_close_frame_parse_close_round_trip(code: int, reason: str) -> None:
    fin, rsv1, opcode, payload = parse_server_frame(wire.close_frame(code, reason))
    assert (fin, rsv1, opcode) == (True, False, OP_CLOSE)
    assert wire.parse_close(payload) == (code, reason)
    # and the reader passes a client's close frame on unchanged
    assert read(client_frame(OP_CLOSE, payload, key=b"m4sk")) == [(OP_CLOSE, payload)]


def test_close_frame_default_reason_is_empty() -> None:
    _, _, _, payload = parse_server_frame(wire.close_frame(1000))
    assert payload == b"\x03\xe8"
    assert wire.parse_close(payload) == (1000, "")


def test_close_frame_truncates_a_long_reason_to_fit_a_control_frame() -> None:
    reason = "r" * 300
    _, _, _, payload = parse_server_frame(wire.close_frame(1001, reason))
    assert len(payload) == 125
    assert wire.parse_close(payload) == (1001, "r" * 123)


@pytest.mark.parametrize(
    "reason", ["é" * 100, "😀" * 40, "a" + "€" * 50], ids=["2-byte", "4-byte", "3-byte"]
)
def test_close_frame_truncation_keeps_the_reason_utf8(reason: str) -> None:
    _, _, _, payload = parse_server_frame(wire.close_frame(1000, reason))
    assert len(payload) <= 125
    code, parsed = wire.parse_close(payload)
    assert code == 1000
    assert reason.startswith(parsed)
    assert len(parsed.encode()) > 123 - 4  # cut at a character boundary, not shorter


def test_parse_close_without_a_payload_is_no_status() -> None:
    assert wire.parse_close(b"") == (1005, "")


def test_parse_close_one_byte_payload_is_a_protocol_error() -> None:
    assert error_code(lambda: wire.parse_close(b"\x03")) == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 5000, 65535])
def test_parse_close_invalid_codes_are_a_protocol_error(code: int) -> None:
    assert error_code(lambda: wire.parse_close(struct.pack("!H", code))) == 1002
    assert error_code(lambda: wire.parse_close(struct.pack("!H", code) + b"why")) == 1002


@pytest.mark.parametrize("reason", [b"\xff", b"ab\xc3", b"\xed\xa0\x80"])
def test_parse_close_invalid_utf8_reason_is_invalid_data(reason: bytes) -> None:
    assert error_code(lambda: wire.parse_close(b"\x03\xe8" + reason)) == 1007


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=125))
def test_parse_close_raises_nothing_but_wire_error(payload: bytes) -> None:
    try:
        code, reason = wire.parse_close(payload)
    except WireError as exc:
        assert exc.code in {1002, 1007}
    else:
        assert 1000 <= code < 5000
        assert isinstance(reason, str)
