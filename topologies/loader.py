"""Topology files: a small YAML format and :func:`load_topology`.

The format (every key but ``routers`` is optional; unknown keys are errors)::

    name: lan-example          # default: the file's stem
    description: free text
    defaults:                  # apply to every router / link that does not say
      flavor: frr              # routing daemon: frr | bird
      loss: 0                  # % packet loss on each link, 0–100
      rate: null               # Mbit/s; null or absent = unlimited
      cost: 10                 # OSPF cost, both directions, 1–65535
    routers:                   # declaration order = router number (addresses)
      - r1                     # a bare name: 1–6 characters of [a-z0-9]
      - {name: r2, flavor: bird, label: Chicago}
    links:                     # point-to-point links
      - [r1, r2]               # a bare pair takes the defaults
      - {a: r2, b: r3, loss: 1.5, rate: 100, cost: 20}
    lans:                      # LAN segments (one Linux bridge each)
      - {name: lan1, routers: [r1, r2, r3]}   # name: 1–8 characters of [a-z0-9]
    gcks: oob                  # oob (default): the GCKS sits on the management
                               # network; or a router name: it shares that router's LAN
    rp: r1                     # PIM rendezvous point (default: the first router)

Every error is a :class:`~topologies.model.TopologyError` that starts with
the file and the entry at fault, e.g. ``baseline.yaml: links[3].b: no
router named 'r9'`` (indices are 0-based). Besides the structural rules of
:func:`topologies.validate.validate` (names, self-links, duplicate links,
loss 0–100 %, connectivity, ...), the loader rejects unknown keys, missing
keys and values of the wrong type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from topologies.model import Lan, Link, Router, Topology, TopologyError
from topologies.validate import MAX_COST, validate

__all__ = ["OOB", "load_topology", "parse_topology"]

OOB = "oob"  # the `gcks:` value for the out-of-band management network (the default)

_TOP_KEYS = ("name", "description", "defaults", "routers", "links", "lans", "gcks", "rp")
_DEFAULT_KEYS = ("flavor", "loss", "rate", "cost")
_ROUTER_KEYS = ("name", "flavor", "label")
_LINK_KEYS = ("a", "b", "loss", "rate", "cost")
_LAN_KEYS = ("name", "routers")


def _known(where: str, entry: dict[Any, Any], keys: tuple[str, ...]) -> None:
    for key in entry:
        if key not in keys:
            prefix = f"{where}: " if where else ""
            raise TopologyError(f"{prefix}unknown field {key!r} (known: {', '.join(keys)})")


def _mapping(where: str, value: object) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise TopologyError(f"{where}: expected a mapping, got {value!r}")
    return value


def _list(where: str, value: object) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TopologyError(f"{where}: expected a list, got {value!r}")
    return value


def _text(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise TopologyError(f"{where}: expected text, got {value!r}")
    return value


def _number(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TopologyError(f"{where}: expected a number, got {value!r}")
    return value


def _integer(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TopologyError(f"{where}: expected an integer, got {value!r}")
    return value


def _rate(where: str, value: object) -> float | None:
    return None if value is None else _number(where, value)


def _router(i: int, entry: object, flavor: str) -> Router:
    where = f"routers[{i}]"
    if isinstance(entry, str):
        return Router(name=entry, flavor=flavor)
    data = _mapping(where, entry)
    _known(where, data, _ROUTER_KEYS)
    if "name" not in data:
        raise TopologyError(f"{where}.name: missing")
    return Router(
        name=_text(f"{where}.name", data["name"]),
        flavor=_text(f"{where}.flavor", data.get("flavor", flavor)),
        label=_text(f"{where}.label", data.get("label", "")),
    )


def _link(i: int, entry: object, defaults: dict[str, Any]) -> Link:
    where = f"links[{i}]"
    if isinstance(entry, list):
        if len(entry) != 2:
            raise TopologyError(f"{where}: a bare link is a pair [a, b], got {entry!r}")
        data: dict[Any, Any] = {"a": entry[0], "b": entry[1]}
    else:
        data = _mapping(where, entry)
        _known(where, data, _LINK_KEYS)
    for end in ("a", "b"):
        if end not in data:
            raise TopologyError(f"{where}.{end}: missing")
    merged = {**defaults, **data}
    return Link(
        a=_text(f"{where}.a", data["a"]),
        b=_text(f"{where}.b", data["b"]),
        loss=_number(f"{where}.loss", merged["loss"]),
        rate=_rate(f"{where}.rate", merged["rate"]),
        cost=_integer(f"{where}.cost", merged["cost"]),
    )


def _lan(i: int, entry: object) -> Lan:
    where = f"lans[{i}]"
    data = _mapping(where, entry)
    _known(where, data, _LAN_KEYS)
    for key in _LAN_KEYS:
        if key not in data:
            raise TopologyError(f"{where}.{key}: missing")
    members = _list(f"{where}.routers", data["routers"])
    return Lan(
        name=_text(f"{where}.name", data["name"]),
        routers=[_text(f"{where}.routers[{j}]", m) for j, m in enumerate(members)],
    )


def parse_topology(data: object, default_name: str) -> Topology:
    """Build and validate a topology from parsed YAML (see the module docstring)."""
    top = _mapping("topology file", data)
    _known("", top, _TOP_KEYS)
    defaults: dict[str, Any] = {"flavor": "frr", "loss": 0.0, "rate": None, "cost": 10}
    given = _mapping("defaults", top["defaults"]) if "defaults" in top else {}
    _known("defaults", given, _DEFAULT_KEYS)
    defaults.update(given)
    flavor = _text("defaults.flavor", defaults["flavor"])
    if not 0 <= _number("defaults.loss", defaults["loss"]) <= 100:
        raise TopologyError(f"defaults.loss: {defaults['loss']!r} is outside 0–100 %")
    rate = _rate("defaults.rate", defaults["rate"])
    if rate is not None and rate <= 0:
        raise TopologyError(f"defaults.rate: {rate!r} is not a rate > 0 Mbit/s")
    if not 1 <= _integer("defaults.cost", defaults["cost"]) <= MAX_COST:
        raise TopologyError(f"defaults.cost: {defaults['cost']!r} is outside 1–{MAX_COST}")
    if "routers" not in top:
        raise TopologyError("routers: missing")
    gcks = top.get("gcks")
    gcks_router = None if gcks in (None, OOB) else _text("gcks", gcks)
    rp = top.get("rp")
    topology = Topology(
        name=_text("name", top.get("name", default_name)),
        description=_text("description", top.get("description", "")),
        routers=[_router(i, e, flavor) for i, e in enumerate(_list("routers", top["routers"]))],
        links=[_link(i, e, defaults) for i, e in enumerate(_list("links", top.get("links")))],
        lans=[_lan(i, e) for i, e in enumerate(_list("lans", top.get("lans")))],
        gcks_router=gcks_router,
        rp=None if rp is None else _text("rp", rp),
    )
    validate(topology)
    return topology


def load_topology(path: str | Path) -> Topology:
    """Read, check and return the topology in the YAML file ``path`` (addresses not assigned).

    Raises :class:`TopologyError` prefixed with the file name for a missing
    file, invalid YAML or a bad entry.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise TopologyError(f"{path}: cannot read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
        return parse_topology(data, default_name=path.stem)
    except yaml.YAMLError as err:
        raise TopologyError(f"{path}: not valid YAML: {err}") from None
    except TopologyError as err:
        raise TopologyError(f"{path}: {err}") from None
