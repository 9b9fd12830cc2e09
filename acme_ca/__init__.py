"""acme-ca: a private certificate authority with an ACME (RFC 8555) front door."""

__version__ = "0.1.0"
