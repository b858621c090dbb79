"""Router sinks: install a GM's key table rows into routing daemons (ARCHITECTURE.md).

``file`` writes JSON; ``frr`` drives vtysh; ``bird`` rewrites an included
password file and runs ``birdc configure``; ``pim_ah`` hands PIM's AH SAs to
the userspace AH shim (``python -m mrkm.sinks.pim_ah``) on NFQUEUE. Each module documents its
rollover semantics. :func:`~mrkm.sinks.base.build_sinks` builds them from
``gm.sinks``.
"""

from __future__ import annotations

import importlib

from mrkm.sinks.base import InstallResult, Sink, SinkError, build_sinks, register_sink

__all__ = ["InstallResult", "Sink", "SinkError", "build_sinks", "load_all", "register_sink"]

_MODULES = ("mrkm.sinks.file", "mrkm.sinks.frr", "mrkm.sinks.bird", "mrkm.sinks.pim_ah")


def load_all() -> None:
    """Import every sink module present, so that each registers its ``type``."""
    for module in _MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
