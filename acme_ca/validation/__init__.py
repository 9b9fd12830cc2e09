"""Challenge validation (the VA): fetches and compares, returns results, writes nothing.

One module per challenge type; all share ``base`` (result, protocol, key
authorization) and ``resolver`` (hosts table, then DNS).
"""

from acme_ca.validation.base import ValidationResult, Validator, key_authorization
from acme_ca.validation.http01 import Http01Validator
from acme_ca.validation.resolver import Resolver

__all__ = ["Http01Validator", "Resolver", "ValidationResult", "Validator", "key_authorization"]
