"""The asyncio processes around the sans-IO cores (ARCHITECTURE.md, ``mrkm/runtime/``).

UDP unicast and multicast sockets (:mod:`~mrkm.runtime.transport`), the
driver loop (:mod:`~mrkm.runtime.node`), the shared clock
(:mod:`~mrkm.runtime.clock`), the JSON-lines event log
(:mod:`~mrkm.runtime.eventlog`), GCKS state persistence
(:mod:`~mrkm.runtime.persistence`), signals and the control socket
(:mod:`~mrkm.runtime.daemon`, :mod:`~mrkm.runtime.control`). No protocol
logic lives here: every decision is the core's.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mrkm.runtime.clock import Clock, wall_clock
    from mrkm.runtime.control import ControlError, ControlServer, request
    from mrkm.runtime.eventlog import EventLog
    from mrkm.runtime.gcks_process import GcksProcess
    from mrkm.runtime.gm_process import GmProcess
    from mrkm.runtime.node import Node
    from mrkm.runtime.persistence import StateError, StateFile, atomic_write
    from mrkm.runtime.transport import TransportError

# Loaded on first use (PEP 562): a GM process does not import the GCKS's modules
# (mrkm.protocol.gcks, X.509), about 4 MiB of private memory per router.
_NAMES = {
    "Clock": "clock",
    "wall_clock": "clock",
    "ControlError": "control",
    "ControlServer": "control",
    "request": "control",
    "EventLog": "eventlog",
    "GcksProcess": "gcks_process",
    "GmProcess": "gm_process",
    "Node": "node",
    "StateError": "persistence",
    "StateFile": "persistence",
    "atomic_write": "persistence",
    "TransportError": "transport",
}


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'mrkm.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mrkm.runtime.{module}"), name)


__all__ = [
    "Clock",
    "ControlError",
    "ControlServer",
    "EventLog",
    "GcksProcess",
    "GmProcess",
    "Node",
    "StateError",
    "StateFile",
    "TransportError",
    "atomic_write",
    "request",
    "wall_clock",
]
