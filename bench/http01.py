"""The generator's own http-01 responder (RFC 8555 8.3).

An aiohttp server on 127.0.0.1:<port> that answers
``GET /.well-known/acme-challenge/<token>`` with the key authorization registered for
that token, and 404 for anything else. It runs in the generator's event loop; the
servers under test are configured to connect to this port for every name.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from aiohttp import web

PATH = "/.well-known/acme-challenge/{token}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` different TCP ports on ``host`` that were free a moment ago (all held at
    once while choosing: one at a time, the OS may hand out the same port twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


class Http01Responder:
    """Serves a dict of token -> key authorization; counts what it answered."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.tokens: dict[str, str] = {}
        self.served = 0
        self.missed = 0
        # how long a request for an unknown token waits for it to be added: a client in
        # another process tells its tokens through a pipe (bench/acmelib.py)
        self.wait_s = 0.0
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._runner: web.AppRunner | None = None

    def add(self, token: str, key_authorization: str) -> None:
        self.tokens[token] = key_authorization
        waiter = self._waiting.pop(token, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def remove(self, token: str) -> None:
        self.tokens.pop(token, None)

    async def _answer(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        value = self.tokens.get(token)
        if value is None and self.wait_s > 0:
            waiter = self._waiting.setdefault(token, asyncio.get_running_loop().create_future())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), self.wait_s)
            if not waiter.done():  # never added: nothing is left waiting for it
                self._waiting.pop(token, None)
            value = self.tokens.get(token)
        if value is None:
            self.missed += 1
            raise web.HTTPNotFound()
        self.served += 1
        return web.Response(text=value, content_type="text/plain")

    async def start(self) -> Http01Responder:
        app = web.Application()
        app.router.add_get(PATH, self._answer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:  # the OS chose the port: read it back
            self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Http01Responder:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
