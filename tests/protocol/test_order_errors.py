"""The error an order carries when it becomes invalid (RFC 8555 7.1.3 "error", 7.1.6):
its type comes from what happened, never from the words of a message."""

from __future__ import annotations

from datetime import timedelta

from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import ready_order, registered

NAME = "web.bluerobin.local"


async def test_expired_authorization_is_unauthorized_expired_order_malformed(
        server: AcmeServer) -> None:
    """RFC 8555 7.1.6: either expiry makes the order invalid; its error is chosen from
    what expired, as Boulder does: an authorization that expired no longer authorizes
    (unauthorized, ra.checkOrderAuthorizations), an expired order is malformed
    (wfe2 FinalizeOrder: "Order ... is expired")."""
    client = await registered(server)
    _, stale_url = await ready_order(server, client, NAME)
    server.clock.advance(timedelta(days=2))  # valid authorizations last 1 day
    client.nonce = None
    stale = (await client.post(stale_url)).json()
    assert stale["status"] == "invalid"
    assert stale["error"]["type"].endswith(":unauthorized"), stale["error"]
    created = await client.new_order("db.bluerobin.local")
    server.clock.advance(timedelta(days=8))  # orders last 7 days
    client.nonce = None
    expired = (await client.post(created.headers["Location"])).json()
    assert expired["status"] == "invalid"
    assert expired["error"]["type"].endswith(":malformed"), expired["error"]
