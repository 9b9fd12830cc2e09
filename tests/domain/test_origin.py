"""Who acts and from where (acme_ca/domain/origin.py): the audit log's actor, the
request's id, address and route, as every log line of a request names them."""

from __future__ import annotations

import contextvars
from dataclasses import fields

from acme_ca.domain.origin import Origin, current_origin, set_actor, set_origin


def test_set_actor_keeps_every_other_field_of_the_origin() -> None:
    """``set_actor`` builds the new Origin field by field (dataclasses.replace cost twice
    as much per request): every field but the actor stays as the request set it, the
    ones added after this test too, or this test fails."""
    given = Origin(**{f.name: f"{f.name}-value" for f in fields(Origin)})

    def act() -> Origin:
        set_origin(given)
        set_actor("account:a1")
        return current_origin()

    now = contextvars.copy_context().run(act)
    assert now.actor == "account:a1"
    for f in fields(Origin):
        if f.name != "actor":
            assert getattr(now, f.name) == getattr(given, f.name), f.name
