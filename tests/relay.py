"""A TCP relay that a test can cut: the network between a replica and its database.

``Relay(host, port)`` listens on a free loopback port and copies bytes both ways to
``host:port``. ``cut()`` stops listening and resets every connection it carries (what
a replica sees when its database restarts, fails over or drops off the network: its
connections break and new ones are refused); ``mend()`` listens again on the same
port. Nothing of the client or of the server is replaced: they talk through a real
socket that goes away. ``tamper``, when a test sets it, rewrites what the server sends
(a faulty middlebox on a link without TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable


class Relay:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.tamper: Callable[[bytes], bytes] = lambda data: data  # the server's bytes

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        server = self._server
        self.sever()
        if server is not None:
            await server.wait_closed()

    def sever(self) -> None:
        """``cut`` at once, from code that cannot await (inside a signature, say): no
        new connection is accepted and the open ones are reset before this returns."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:  # RST, not FIN: the connection is lost, not closed
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.clear()

    async def mend(self) -> None:
        """Listen again, on the same port."""
        await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            far_reader, far_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, far_writer))
        await asyncio.gather(_copy(reader, far_writer),
                             _copy(far_reader, writer, lambda data: self.tamper(data)))
        self._writers.difference_update((writer, far_writer))


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                rewrite: Callable[[bytes], bytes] = lambda data: data) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(rewrite(data))
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()
