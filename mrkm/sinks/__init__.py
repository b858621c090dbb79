"""Router sinks: install a GM's key table rows into routing daemons (ARCHITECTURE.md).

``file`` writes JSON; ``frr`` drives vtysh or the daemons' vty sockets;
``bird`` rewrites an included password file and runs ``birdc configure``;
``pim_ah`` hands PIM's AH SAs to the userspace AH shim (``python -m
mrkm.sinks.pim_ah``) on NFQUEUE. Each module documents its rollover
semantics. :func:`~mrkm.sinks.base.build_sinks` builds them from
``gm.sinks``.
"""

from __future__ import annotations

import importlib

from mrkm.sinks.base import InstallResult, Sink, SinkError, build_sinks, register_sink

__all__ = [
    "InstallResult",
    "Sink",
    "SinkError",
    "build_sinks",
    "load_all",
    "load_kind",
    "register_sink",
]

#: The module that registers each sink ``type``; a GM imports only those it uses.
_MODULE_OF = {
    "file": "mrkm.sinks.file",
    "frr": "mrkm.sinks.frr",
    "bird": "mrkm.sinks.bird",
    "pim_ah": "mrkm.sinks.pim_ah",
}


def _load(module: str) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise


def load_kind(kind: str) -> bool:
    """Import the module of sink ``type`` ``kind``; False if no module is known for it."""
    module = _MODULE_OF.get(kind)
    if module is not None:
        _load(module)
    return module is not None


def load_all() -> None:
    """Import every sink module present, so that each registers its ``type``."""
    for module in _MODULE_OF.values():
        _load(module)
