"""What every router sink does, and how a GM's sinks are configured.

A sink turns the GM's key table (:mod:`mrkm.keytable`) into a router's
configuration. The GM runtime calls :meth:`Sink.install` with every row of
the table whenever a row changes, whenever :meth:`Sink.next_change` comes
due (routers that cannot schedule a key switch themselves), and whenever the
routing daemon restarted (:meth:`Sink.router_epoch` changed). ``install``
makes the router hold exactly the desired state for ``now``: it is
idempotent, makes one router call, and never decides policy (ARCHITECTURE.md,
``mrkm/sinks/``).

Sinks are configured in the GM's YAML under ``gm.sinks``, a list of mappings
with a ``type`` (``file``, ``frr``, ``bird``, ``pim_ah``) and that sink's fields; every
error names the field, e.g. ``gm.sinks[1].vty_socket``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mrkm.config import ConfigError
from mrkm.errors import MrkmError
from mrkm.keytable import KeyRow

__all__ = [
    "InstallResult",
    "Sink",
    "SinkError",
    "build_sinks",
    "register_sink",
]


class SinkError(MrkmError):
    """A key the router cannot use, or a router call that failed; the message says which."""


@dataclass(frozen=True)
class InstallResult:
    """One install: which sink, whether the router took it, how long the router call took."""

    sink: str
    ok: bool
    seconds: float
    calls: int
    key_ids: tuple[int, ...]
    detail: str = ""
    #: What the router confirmed, per protocol: ``"ospfv2:3"``, ``"ospfv3:3"``. Key ids
    #: of different groups overlap, so metrics match on these when they are given.
    keys: tuple[str, ...] = ()


class Sink(ABC):
    """Install key table rows into one router's daemon."""

    #: ``type`` in the configuration.
    kind: str = ""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def check(self, row: KeyRow) -> None:
        """Raise :class:`SinkError` naming why if this router cannot use ``row``."""

    @abstractmethod
    def install(self, rows: Sequence[KeyRow], now: float) -> InstallResult:
        """Make the router hold the state ``rows`` call for at ``now``; one router call."""

    def next_change(self, rows: Sequence[KeyRow], now: float) -> float | None:
        """When the router's configuration must change next without a new row.

        None (the default) for routers that take absolute lifetimes and switch
        keys themselves (BIRD ``generate from``, FRR key chains).
        """
        return None

    def router_epoch(self) -> str | None:
        """Something that changes when the routing daemon restarts (None: unknown)."""
        return None

    def relevant(self, rows: Sequence[KeyRow]) -> list[KeyRow]:
        """The rows this sink installs (default: all)."""
        return list(rows)


Factory = Callable[[str, Mapping[str, Any], str], Sink]
_FACTORIES: dict[str, Factory] = {}


def register_sink(kind: str) -> Callable[[Factory], Factory]:
    """Class or function decorator: make ``kind`` available under ``gm.sinks``."""

    def register(factory: Factory) -> Factory:
        _FACTORIES[kind] = factory
        return factory

    return register


def build_sinks(raw: Sequence[Mapping[str, Any]]) -> list[Sink]:
    """Sinks from the ``gm.sinks`` list; ConfigError names the bad entry."""
    from mrkm.sinks import load_all, load_kind  # the concrete sinks register themselves

    sinks: list[Sink] = []
    for i, entry in enumerate(raw):
        where = f"gm.sinks[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping with a 'type'")
        kind = entry.get("type")
        load_kind(str(kind))  # only the sinks this GM uses: each costs memory per router
        factory = _FACTORIES.get(str(kind))
        if factory is None:
            load_all()  # to name every type there is
            known = ", ".join(sorted(_FACTORIES))
            raise ConfigError(f"{where}.type: {kind!r} is not one of {known}")
        name = str(entry.get("name", f"{kind}{i}"))
        sinks.append(factory(name, entry, where))
    return sinks
