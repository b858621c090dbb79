"""Topology names → factories, so a Makefile, a scenario or a CLI can name a network.

:func:`get_topology` resolves a name, in this order:

1. a path to a YAML file (ends in ``.yaml`` / ``.yml``);
2. a YAML file shipped in ``topologies/``, by stem: ``baseline``,
   ``lan-example``, ``line5``;
3. a generator pattern: ``line<N>``, ``ring<N>``, ``grid<R>x<C>``,
   ``star<N>``, ``random<N>-s<seed>``, ``random<N>-d<degree>-s<seed>``,
   ``random<N>-e<links>-s<seed>``;
4. a Topology Zoo / SNDlib network (:mod:`topologies.zoo`): ``geant``,
   ``abilene``, ``nobel-eu``, ``topozoo/Abilene``, ...

Names are case-insensitive. The result has its addresses assigned
(:func:`topologies.addressing.assign`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path

from topologies import generators, zoo
from topologies.addressing import assign
from topologies.loader import load_topology
from topologies.model import Topology, TopologyError

__all__ = ["DATA_DIR", "PATTERNS", "get_topology", "known_names", "resolve", "yaml_names"]

DATA_DIR = Path(__file__).resolve().parent

Factory = Callable[[], Topology]

_GENERATORS: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], Topology]]] = [
    ("line<N>", re.compile(r"line(\d+)"), lambda m: generators.line(int(m[1]))),
    ("ring<N>", re.compile(r"ring(\d+)"), lambda m: generators.ring(int(m[1]))),
    (
        "grid<R>x<C>",
        re.compile(r"grid(\d+)x(\d+)"),
        lambda m: generators.grid(int(m[1]), int(m[2])),
    ),
    ("star<N>", re.compile(r"star(\d+)"), lambda m: generators.star(int(m[1]))),
    (
        "random<N>-s<seed>",
        re.compile(r"random(\d+)-s(\d+)"),
        lambda m: generators.random(int(m[1]), seed=int(m[2])),
    ),
    (
        "random<N>-d<degree>-s<seed>",
        re.compile(r"random(\d+)-d(\d+(?:\.\d+)?)-s(\d+)"),
        lambda m: generators.random(int(m[1]), degree=float(m[2]), seed=int(m[3])),
    ),
    (
        "random<N>-e<links>-s<seed>",
        re.compile(r"random(\d+)-e(\d+)-s(\d+)"),
        lambda m: generators.random(int(m[1]), edges=int(m[2]), seed=int(m[3])),
    ),
]

PATTERNS = tuple(pattern for pattern, _, _ in _GENERATORS)


def yaml_names() -> dict[str, Path]:
    """The YAML topologies shipped in ``topologies/``: ``stem -> path``."""
    files = sorted([*DATA_DIR.glob("*.yaml"), *DATA_DIR.glob("*.yml")])
    return {path.stem.lower(): path for path in files}


def known_names() -> list[str]:
    """Every concrete name (YAML stems, then zoo names); see :data:`PATTERNS` for the rest."""
    return [*yaml_names(), *zoo.zoo_names()]


def resolve(name: str) -> Factory:
    """The factory for ``name`` (unaddressed topology); :class:`TopologyError` if unknown."""
    if name.endswith((".yaml", ".yml")):
        return lambda: load_topology(name)
    lowered = name.strip().lower()
    files = yaml_names()
    if lowered in files:
        path = files[lowered]
        return lambda: load_topology(path)
    for _, pattern, build in _GENERATORS:
        match = pattern.fullmatch(lowered)
        if match is not None:
            found = match
            return lambda: build(found)
    if zoo.topohub_key(lowered) is not None:
        return lambda: zoo.zoo_topology(lowered)
    raise TopologyError(_unknown(name))


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), known_names(), n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (
        f"unknown topology {name!r}.{hint} Known: YAML files {', '.join(yaml_names())}; "
        f"generators {', '.join(PATTERNS)}; {len(zoo.zoo_names())} Topology Zoo / SNDlib "
        "networks such as abilene, geant, nobel-eu, germany50, or any topohub key "
        "group/name (python -m topologies --list shows them all)"
    )


def get_topology(name: str) -> Topology:
    """The topology called ``name``, validated and with every address assigned."""
    return assign(resolve(name)())
