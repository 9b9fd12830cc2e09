"""HTTP caching headers of the plain-HTTP listener (``api/publication.py``, ``api/ocsp.py``)
and the Retry-After of a 503, in one place.

A cache between a relying party and the CA may keep a CRL or an OCSP response until its
nextUpdate, and at most ``MAX_AGE``: the CA publishes a new CRL within seconds of a
revocation and signs OCSP from the store each time, so no cache should hide a
revocation for long (RFC 9111 5.2.2.1 max-age; RFC 5019 6.2).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from acme_ca.clock import Clock

CLOCK = web.AppKey("clock", Clock)  # what max-age counts from
MAX_AGE = timedelta(minutes=5)
RETRY_UNAVAILABLE = "5"  # seconds: a database restart, or a failover to its standby


def max_age_seconds(next_update: datetime, now: datetime) -> int:
    """Cache-Control max-age for what is good until ``next_update``: never past it, at
    most ``MAX_AGE``, 0 once it has passed."""
    return int(max(timedelta(0), min(next_update - now, MAX_AGE)).total_seconds())
