"""Synthetic topologies: line, ring, grid, star and seeded random graphs.

Every generator names its routers ``r1`` … ``rN``, returns a connected,
validated but unaddressed :class:`~topologies.model.Topology` (pass it to
:func:`topologies.addressing.assign`, or use
:func:`topologies.registry.get_topology`), and is deterministic: the same
arguments give the same routers and links in the same order. Links are
listed with ``a`` the lower-numbered router, sorted by ``(a, b)``.
"""

from __future__ import annotations

import random as _random

from topologies.model import Link, Router, Topology, TopologyError
from topologies.validate import MAX_LINKS, validate

__all__ = ["MAX_GENERATED", "grid", "line", "random", "ring", "star"]

MAX_GENERATED = 2000  # routers; larger emulations do not fit one host anyway


def _size(kind: str, field: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TopologyError(f"{kind}: {field} must be an integer, got {value!r}")
    if not minimum <= value <= MAX_GENERATED:
        raise TopologyError(f"{kind}: {field} = {value} is outside {minimum}–{MAX_GENERATED}")


def _build(name: str, n: int, pairs: list[tuple[int, int]], description: str) -> Topology:
    ordered = sorted({(min(a, b), max(a, b)) for a, b in pairs})
    topology = Topology(
        name=name,
        routers=[Router(name=f"r{i}") for i in range(1, n + 1)],
        links=[Link(a=f"r{a}", b=f"r{b}") for a, b in ordered],
        description=description,
    )
    validate(topology)
    return topology


def line(n: int) -> Topology:
    """``n`` routers in a chain: r1 – r2 – … – rN (``n`` ≥ 2)."""
    _size("line", "n", n, 2)
    pairs = [(i, i + 1) for i in range(1, n)]
    return _build(f"line{n}", n, pairs, f"{n} routers in a line")


def ring(n: int) -> Topology:
    """``n`` routers in a cycle: a line plus the link rN – r1 (``n`` ≥ 3)."""
    _size("ring", "n", n, 3)
    pairs = [(i, i % n + 1) for i in range(1, n + 1)]
    return _build(f"ring{n}", n, pairs, f"{n} routers in a ring")


def grid(rows: int, cols: int) -> Topology:
    """A ``rows`` × ``cols`` mesh, numbered row by row; each router links right and down."""
    _size("grid", "rows", rows, 1)
    _size("grid", "cols", cols, 1)
    n = rows * cols
    if n < 2:
        raise TopologyError("grid: needs at least 2 routers")
    _size("grid", "rows × cols", n, 2)
    pairs: list[tuple[int, int]] = []
    for row in range(rows):
        for col in range(cols):
            i = row * cols + col + 1
            if col + 1 < cols:
                pairs.append((i, i + 1))
            if row + 1 < rows:
                pairs.append((i, i + cols))
    topology = _build(f"grid{rows}x{cols}", n, pairs, f"{rows} × {cols} grid")
    for router in topology.routers:
        row, col = divmod(int(router.name[1:]) - 1, cols)
        router.label = f"row {row + 1}, column {col + 1}"
    return topology


def star(n: int) -> Topology:
    """``n`` routers in all: the hub r1 linked to each of r2 … rN (``n`` ≥ 2)."""
    _size("star", "n", n, 2)
    pairs = [(1, i) for i in range(2, n + 1)]
    topology = _build(f"star{n}", n, pairs, f"hub r1 and {n - 1} spokes")
    topology.routers[0].label = "hub"
    return topology


def random(
    n: int,
    *,
    degree: float | None = None,
    edges: int | None = None,
    seed: int = 0,
) -> Topology:
    """A connected random graph on ``n`` routers, fixed by ``seed``.

    Give the size as ``edges`` (links, from ``n - 1`` to ``n(n-1)/2``) or as
    the mean ``degree`` (``edges = round(n * degree / 2)``); with neither, the
    mean degree is 3 (capped to what ``n`` allows). The graph is a uniformly
    random recursive tree (each router, in a shuffled order, joins a random
    earlier one), which makes it connected, plus extra links drawn uniformly
    from the missing pairs. Uses :class:`random.Random` (``seed``) only, so
    the result is the same on every Python 3 version and machine.
    """
    _size("random", "n", n, 2)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TopologyError(f"random: seed must be an integer, got {seed!r}")
    most = n * (n - 1) // 2
    if degree is not None and edges is not None:
        raise TopologyError("random: give degree or edges, not both")
    if edges is None:
        mean = 3.0 if degree is None else degree
        if isinstance(mean, bool) or not isinstance(mean, int | float) or mean <= 0:
            raise TopologyError(f"random: degree must be a number > 0, got {degree!r}")
        wanted = round(n * mean / 2)
        target = min(max(wanted, n - 1), most) if degree is None else wanted
    else:
        target = edges
    if isinstance(target, bool) or not isinstance(target, int):
        raise TopologyError(f"random: edges must be an integer, got {edges!r}")
    if not n - 1 <= target <= min(most, MAX_LINKS):
        raise TopologyError(
            f"random: {target} links for {n} routers is outside {n - 1}–{min(most, MAX_LINKS)} "
            "(connected, no duplicate links)"
        )
    rng = _random.Random(seed)
    order = list(range(1, n + 1))
    rng.shuffle(order)
    chosen: set[tuple[int, int]] = set()
    for k in range(1, n):
        a, b = order[k], order[rng.randrange(k)]
        chosen.add((min(a, b), max(a, b)))
    extra = target - len(chosen)
    if extra > 0:
        if most <= 50_000:
            missing = [
                (a, b) for a in range(1, n + 1) for b in range(a + 1, n + 1) if (a, b) not in chosen
            ]
            chosen.update(rng.sample(missing, extra))
        else:  # sparse and large: rejection sampling is cheap and still seeded
            while len(chosen) < target:
                a, b = rng.randrange(1, n + 1), rng.randrange(1, n + 1)
                if a != b:
                    chosen.add((min(a, b), max(a, b)))
    name = f"random{n}-s{seed}"
    if edges is not None:
        name = f"random{n}-e{edges}-s{seed}"
    elif degree is not None:
        name = f"random{n}-d{degree:g}-s{seed}"
    return _build(name, n, sorted(chosen), f"random connected graph, {target} links, seed {seed}")
