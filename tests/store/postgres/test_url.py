"""A storage URL asyncpg would misread is refused before any connection, in one line
that repeats no part of the URL's user name or password (the message may reach a log).

The usual cause: a generated password holding a character URLs reserve, written raw
(``/`` ends the host part, so the password becomes the port, and asyncpg's message
quoted it: ``invalid literal for int() ... 'S3cr3t'``)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from acme_ca.errors import ConfigError
from acme_ca.store import open_store

SECRET = "S3cr3tPW"
MALFORMED = [
    f"postgresql://acme:{SECRET}/x@127.0.0.1:5432/acme",  # a raw "/" in the password
    f"postgresql://acme:{SECRET}@x@127.0.0.1:5432/acme",  # a raw "@"
    f"postgresql://acme:{SECRET}?x@127.0.0.1/acme",  # a raw "?"
    f"postgresql://acme:5432#{SECRET}@127.0.0.1/acme",  # a raw "#"
    f"postgresql://acme:{SECRET}]@127.0.0.1:5432/acme",  # a raw "]"
    f"postgresql://acme:{SECRET}@127.0.0.1:notaport/acme",
    f"postgresql://acme:{SECRET}@127.0.0.1:99999/acme",
    f"postgresql://acme:{SECRET}@127.0.0.1:0/acme",
    f"postgresql://acme:{SECRET}@[::1/acme",
    f"postgresql://acme:{SECRET}@[::1]x/acme",
    f"postgresql://acme:{SECRET}@db1,,db2/acme",
    f"postgresql://acme:{SECRET}@127.0.0.1,127.0.0.1:x/acme",
    f"postgresql://acme:{SECRET}@127.0.0.1:5432/acme?{SECRET}",  # a query asyncpg refuses
]


def assert_secret_free(message: str) -> None:
    """One line, and not three characters in a row of the password, nor the user name."""
    assert "\n" not in message
    assert "acme:" not in message
    assert not any(SECRET[i:i + 3] in message for i in range(len(SECRET) - 2)), message


@pytest.mark.parametrize("url", MALFORMED)
async def test_a_malformed_url_is_a_config_error_that_quotes_none_of_it(url: str):
    with pytest.raises(ConfigError, match=r"^storage\.url is not a") as caught:
        await open_store(url)
    assert_secret_free(str(caught.value))
    error = caught.value  # and no exception chained to it that would quote the URL
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


async def test_a_password_with_reserved_characters_percent_encoded_is_read_as_written(
    pg_url: str,
):
    """What the message advises works: the server is reached (trust authentication here
    ignores the password, so the store opens)."""
    parts = urlsplit(pg_url)
    password = quote(f"{SECRET}/@?#[]:%", safe="")
    url = parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port}")
    store = await open_store(url.geturl())
    await store.close()
