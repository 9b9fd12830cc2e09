"""http-01 responders' handlers, the validator and its check, shared by the validation
tests (test_http01, test_hostile, test_targets, test_no_probe); the responders
themselves are the fixtures ``serve`` and ``raw_serve`` in conftest.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from acme_ca.domain.models import Identifier
from acme_ca.validation import Http01Validator, Resolver, ValidationResult, key_authorization
from acme_ca.validation.network import AddressPolicy
from bench.http01 import free_port as free_port  # one way to ask the OS for a port

NAME = "web.bluerobin.local"
IDENT = Identifier("dns", NAME)
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
THUMBPRINT = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
KEY_AUTH = key_authorization(TOKEN, THUMBPRINT)
PATH = f"/.well-known/acme-challenge/{TOKEN}"
FIFTY_MB = 50 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[dict[str, Handler]], Awaitable[int]]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
RawServe = Callable[[RawHandler], Awaitable[int]]


def validator(port: int, hosts: dict[str, str] | None = None, **kwargs: Any) -> Http01Validator:
    """A validator whose first request goes to `port`, NAME resolving to 127.0.0.1.

    The policy is the configuration's default (private ranges and loopback) unless a
    test passes ``policy=``; a ``resolver=`` replaces the hosts table and DNS.
    """
    resolver = kwargs.pop("resolver", None) or Resolver(
        {NAME: "127.0.0.1"} if hosts is None else hosts, kwargs.pop("dns", [])
    )
    kwargs.setdefault("total_timeout", 5)
    kwargs.setdefault("policy", AddressPolicy())
    return Http01Validator(resolver, port=port, **kwargs)


def reply(body: str | bytes = KEY_AUTH, status: int = 200) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        data = body.encode() if isinstance(body, str) else body
        return web.Response(body=data, status=status)

    return handler


def redirect(location: str, status: int = 302) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    return handler


async def check(v: Http01Validator, ident: Identifier = IDENT) -> ValidationResult:
    return await v.validate(ident, TOKEN, KEY_AUTH)
