"""An in-process ACME server (the same `build_app` that `serve` runs) and a test client.

The validation authority is replaced by `ServedValidator`, which answers from a table
of what the test "serves" (token -> body): the protocol is under test here, the real
http-01 validator has its own tests in tests/validation and runs in integration/.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from acme_ca.authority.settings import Settings
from acme_ca.cli.serve import IssuerHolder, checked_reload
from acme_ca.cli.wiring import SUPERVISOR, build_app
from acme_ca.clock import FakeClock
from acme_ca.config import Config, load_config
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.store import open_store
from acme_ca.store.base import Store
from acme_ca.validation.base import ValidationResult
from tests.acme_client import BASE, AcmeTestClient
from tests.store.pg import fresh_database


@dataclass
class ServedValidator:
    """http-01 as if the client's web server answered from `served`."""

    served: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    hold: asyncio.Event | None = None  # when set here, validations wait for it

    async def validate(self, identifier: Identifier, token: str,
                       key_authorization: str) -> ValidationResult:
        self.calls.append(identifier.value)
        if self.hold is not None:
            await self.hold.wait()
        body = self.served.get(token)
        if body == key_authorization:
            return ValidationResult(problem=None, records=())
        problem = AcmeProblem(ProblemType.INCORRECT_RESPONSE,
                              f"expected {key_authorization!r}, got {body!r}",
                              identifier=identifier)
        return ValidationResult(problem=problem, records=())


@dataclass
class AcmeServer:
    http: TestClient
    store: Store
    clock: FakeClock
    validator: ServedValidator
    issuers: IssuerHolder  # what serve holds; reload(): SIGHUP after `intermediate renew`
    app: Any
    config: Config
    settings: Settings  # what serve holds; swap(): SIGHUP with a changed file

    @property
    def issuer(self) -> Any:
        return self.issuers.current

    async def reload(self) -> bool:
        """What SIGHUP does (``checked_reload``); whether the intermediate changed."""
        return await checked_reload(self.issuers, self.store, self.clock.now())

    def client(self, **kwargs: Any) -> AcmeTestClient:
        return AcmeTestClient(self.http, **kwargs)

    async def settle(self) -> None:
        """Wait until background validations are done."""
        await self.app[SUPERVISOR].wait_idle()


@pytest.fixture
def server_factory(tmp_path: Path, make_hierarchy: Callable[..., Any], aiohttp_client: Any
                   ) -> Callable[..., Any]:
    async def start(hierarchy: Any = None, challenge_types: tuple[str, ...] = ("http-01",),
                    **overrides: Any) -> AcmeServer:
        hierarchy = hierarchy or make_hierarchy("pki")
        config = load_config(None, {"server.external_url": BASE,
                                    "server.data_dir": str(tmp_path / "data"),
                                    "storage.url": f"sqlite:///{tmp_path / 'acme.db'}",
                                    **overrides})
        config = replace(config, ca=replace(
            config.ca, intermediate_cert=hierarchy.paths.intermediate_cert,
            intermediate_key=hierarchy.paths.intermediate_key, chain=hierarchy.paths.chain,
            root_cert=hierarchy.paths.root_cert))
        clock = FakeClock(datetime.now(UTC))
        issuers = IssuerHolder(config, clock)
        store = await open_store(config.storage.url, clock=clock)
        validator = ServedValidator()
        settings = Settings(config)
        app = build_app(config, store, issuers, clock,
                        dict.fromkeys(challenge_types, validator), settings=settings)
        http = await aiohttp_client(app)
        return AcmeServer(http, store, clock, validator, issuers, app, config, settings)

    return start


@pytest.fixture
async def server(server_factory: Callable[..., Any]) -> AsyncIterator[AcmeServer]:
    acme = await server_factory()
    yield acme
    await acme.store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def each_backend(request: pytest.FixtureRequest, server_factory: Callable[..., Any]
                       ) -> AsyncIterator[AcmeServer]:
    """The in-process server on each backend: SQLite, and PostgreSQL in a database of
    its own (tests/store/pg.py; skipped without a server, failed under CI)."""
    if request.param == "sqlite":
        acme = await server_factory()
        yield acme
        await acme.store.close()
        return
    async with fresh_database() as url:
        acme = await server_factory(**{"storage.url": url})
        yield acme
        await acme.http.close()
        await acme.store.close()
