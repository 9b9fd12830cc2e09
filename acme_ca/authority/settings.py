"""The configuration in force, and what the services build from it: one holder, swapped whole.

``serve`` makes one ``Settings`` from the configuration it started with. Every object
whose behaviour follows a setting that may change at run time (the front end's
``Services``: policy, profiles, limits, [acme], ARI; the validators and CAA; the CRL
publisher's lifetime) is declared with ``derive(build)``: built from the
configuration now, and built again from the new one by ``swap``. A request reads the
value of the moment through the callable ``derive`` returns, so it sees the old
settings or the new ones, never a mixture; a request in flight finishes with what it
started with.

``swap`` builds every derived value first and assigns nothing until all are built:
one that fails to build leaves everything as it was (the reload is refused, the
server goes on). Then ``on_swap`` callbacks apply the new values to the long-lived
objects that keep state (the validation supervisor's in-flight work). No global: the
holder is passed to what needs it (``cli/wiring.py``). Which settings need a restart
instead is ``cli/reload.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from acme_ca.config import Config

T = TypeVar("T")


class Derived(Generic[T]):
    """A value built from the configuration in force; call it for the current one."""

    def __init__(self, build: Callable[[Config], T], config: Config) -> None:
        self.build = build
        self.value = build(config)

    def __call__(self) -> T:
        return self.value


class Settings:
    """The configuration in force and the values derived from it (module docstring)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._derived: list[Derived[Any]] = []
        self._listeners: list[Callable[[Config], None]] = []

    @property
    def current(self) -> Config:
        return self._config

    def derive(self, build: Callable[[Config], T]) -> Derived[T]:
        """``build(config)`` now, and again from each configuration swapped in."""
        derived = Derived(build, self._config)
        self._derived.append(derived)
        return derived

    def on_swap(self, apply: Callable[[Config], None]) -> None:
        """Call ``apply(new)`` after each swap (it must not fail)."""
        self._listeners.append(apply)

    def swap(self, new: Config) -> None:
        """Serve with ``new``: every derived value rebuilt, then all swapped at once; on
        an exception from a build, nothing has changed."""
        values = [derived.build(new) for derived in self._derived]
        self._config = new
        for derived, value in zip(self._derived, values, strict=True):
            derived.value = value
        for apply in self._listeners:
            apply(new)
