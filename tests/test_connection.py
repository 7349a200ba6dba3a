"""``Connection``'s outbound frames: what one event-loop iteration queues goes out in one
write, in order, then the close frame; slow consumers are cut off or, with
``drop_when_full``, skipped until they catch up. The sink is a recorder standing in for the
transport (the socket protocol is tested end to end in test_ws_protocol.py)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from sockudo_py.config import App
from sockudo_py.ws.connection import Connection, Flusher
from sockudo_py.ws.wire import OP_CLOSE, OP_TEXT, parse_close


class RecordingSink:
    """Keeps every write; ``held`` is what it reports as still buffered."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.held = 0
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        return self.held

    def buffered(self) -> int:
        return self.held

    def close_sent(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each short, unmasked, final frame in ``data``."""
    frames = []
    while data:
        first, size = data[0], data[1]
        assert first & 0x80 and size < 126
        frames.append((first & 0x0F, data[2 : 2 + size]))
        data = data[2 + size :]
    return frames


def texts(data: bytes) -> list[str]:
    return [payload.decode() for opcode, payload in server_frames(data) if opcode == OP_TEXT]


def connection(
    sink: RecordingSink, max_messages: int = 10, drop_when_full: bool = False
) -> Connection:
    app = App(id="1", key="k", secret="s")
    return Connection("1.1", app, sink, Flusher(), max_messages, None, drop_when_full)


async def next_iteration() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


@pytest.mark.parametrize("count", [1, 2, 5])
async def test_frames_of_one_iteration_go_out_in_one_write(count: int) -> None:
    sink = RecordingSink()
    conn = connection(sink)
    for i in range(count):
        assert conn.push(f'{{"n":{i}}}')
    assert sink.writes == []
    await next_iteration()
    assert len(sink.writes) == 1
    assert texts(sink.writes[0]) == [f'{{"n":{i}}}' for i in range(count)]
    conn.push('{"n":"later"}')
    await next_iteration()
    assert len(sink.writes) == 2 and texts(sink.writes[1]) == ['{"n":"later"}']


async def test_one_pending_frame_allocates_nothing_the_gc_tracks() -> None:
    sink = RecordingSink()
    conn = connection(sink)
    conn.push('{"n":1}')
    assert not gc.is_tracked(conn._pending)  # bytes, not a list: fan-outs stay GC-free


async def test_close_follows_what_was_queued() -> None:
    sink = RecordingSink()
    conn = connection(sink)
    conn.push('{"n":1}')
    conn.close(4200, "bye")
    assert not conn.push('{"n":2}')
    await next_iteration()
    assert sink.closed
    (text, payload), (close, reason) = server_frames(sink.writes[0])
    assert (text, payload) == (OP_TEXT, b'{"n":1}')
    assert close == OP_CLOSE and parse_close(reason) == (4200, "bye")


@pytest.mark.parametrize("per_iteration", [1, 3])
async def test_slow_consumer_is_closed_when_frames_pile_up(per_iteration: int) -> None:
    sink = RecordingSink()
    sink.held = 100  # the peer reads nothing
    conn = connection(sink, max_messages=5)
    sent = 0
    while not sink.aborted and sent < 50:
        for _ in range(per_iteration):
            conn.push('{"n":1}')
            sent += 1
        await next_iteration()
    assert sink.aborted and conn.close_code == 4100
    assert 5 < sent <= 5 + per_iteration


async def test_drop_when_full_skips_frames_until_the_peer_catches_up() -> None:
    sink = RecordingSink()
    sink.held = 100
    conn = connection(sink, max_messages=2, drop_when_full=True)
    for _ in range(3):
        conn.push('{"n":1}')
        await next_iteration()
    assert not conn.push('{"n":"dropped"}')
    sink.held = 0
    assert conn.push('{"n":"taken"}')
    await next_iteration()
    assert not sink.aborted and texts(sink.writes[-1]) == ['{"n":"taken"}']
