"""permessage-deflate (RFC 7692) as ``websocket.compression`` asks for it (Sockudo's values).

| value | server window | compressor kept per socket | zlib ``memLevel`` |
|---|---|---|---|
| ``disabled`` (default) | - | - | - |
| ``dedicated`` | 15 bits (32 KB) | yes (context takeover) | 8 |
| ``shared`` | 15 bits | no: each message is compressed alone | 8 |
| ``window256b`` ... ``window32kb`` | 9 ... 15 bits | yes | window bits - 7 |

``window256b`` gets 9 bits: zlib cannot compress with an 8-bit window (Sockudo dropped it
for the same reason). A kept compressor costs about ``2**(bits+2) + 2**(memLevel+9)`` bytes per
socket (256 KB for ``dedicated``, 32 KB for ``window4kb``). The client's window is bounded the
same way when it offers ``client_max_window_bits``, which bounds our decompressor too.
Compression is negotiated only with clients that offer it; the others get plain frames.
"""

from __future__ import annotations

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

WINDOW_BITS = {
    "dedicated": 15, "shared": 15, "window256b": 9, "window1kb": 10, "window2kb": 11,
    "window4kb": 12, "window8kb": 13, "window16kb": 14, "window32kb": 15,
}  # fmt: skip


def deflate_factory(compression: str) -> ServerPerMessageDeflateFactory | None:
    """The permessage-deflate offer answer for a ``websocket.compression`` value (``None``:
    not negotiated)."""
    bits = WINDOW_BITS.get(compression.lower())
    if bits is None:
        return None
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=compression.lower() == "shared",
        server_max_window_bits=bits,
        client_max_window_bits=bits,
        compress_settings={"memLevel": bits - 7},
    )
