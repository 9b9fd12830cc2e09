"""Certificate serial numbers (RFC 5280 4.1.2.2; CA/B BR 7.1: at least 64 random bits)."""

import secrets

SERIAL_BITS = 128


def random_serial() -> int:
    """A positive serial with 128 bits from the CSPRNG: at most 17 octets in DER, never 0."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial >= 1 << 64:  # keep at least 64 significant bits; 2^-64 odds of a retry
            return serial
