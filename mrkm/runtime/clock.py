"""The clock the runtime injects into the protocol cores.

The cores never read a clock (STYLE.md item 1): every ``receive``,
``handle_timer`` and ``datagrams_to_send`` call gets ``now`` from here, and
every event they return is stamped with it.

``now`` is the host's wall clock, :func:`time.time`, in seconds since the
epoch. All nodes of one emulation run on one host and so share that clock,
which is what makes times from different processes comparable (key
convergence = a GM's ``t_accept`` minus the GCKS's ``t_send``; ARCHITECTURE.md,
"Measurements"). Across machines the clocks must be synchronized (NTP/PTP)
for those numbers to mean anything.

The wall clock can step (NTP, an operator). Timers are therefore re-armed
from ``next_timer() - now`` after every step of the core, so a step delays
or hurries the next timer but never loses it; a core whose deadline has
already passed simply runs at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "wall_clock"]

#: A source of ``now``: seconds on the clock shared by every node of a run.
Clock = Callable[[], float]


def wall_clock() -> float:
    """The shared host clock, seconds since the epoch (:func:`time.time`)."""
    return time.time()
