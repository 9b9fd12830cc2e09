"""A load generator for ACME (RFC 8555) servers, after Boulder's test/load-generator.

``python -m bench run ...`` drives one server; ``python -m bench compare ...`` starts
acme-ca and Pebble and drives both. See docs/performance.md.
"""
