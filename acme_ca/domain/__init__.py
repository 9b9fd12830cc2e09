"""Entities and their states, free of HTTP, SQL and cryptography."""
