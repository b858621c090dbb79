"""Scenario files: a question, a topology, MRKM groups, a timeline and assertions.

A scenario is a YAML file in ``scenarios/`` (or any path)::

    name: baseline
    question: How long does a rekey take to reach every router, and does any
      adjacency drop while keys roll?
    topology: baseline          # a name topologies.registry knows, or a YAML path
    seed: 1
    groups:                     # GCKS groups (mrkm/config.py GroupConfig fields)
      - {name: ospfv2-area0, protocol: ospfv2, algorithm: md5, atd: 3, dtd: 6}
      - {name: ospfv3-area0, protocol: ospfv3, algorithm: hmac-sha-256, atd: 3, dtd: 6}
    timeline:                   # seconds after every GM registered
      - {at: 5, do: rekey, group: ospfv2-area0}
      - {at: 15, do: rekey, group: ospfv3-area0}
      - {at: 20, do: link-down, link: [r1, r2]}
      - {at: 25, do: link-up, link: [r1, r2]}
      - {at: 30, do: restart-gm, router: r3}
      - {at: 40, do: rekey, group: ospfv2-area0, every: 5, count: 20}  # 20 rekeys, 5 s apart
    duration: 45                # seconds after registration until the run ends
    assertions:                 # checked against summary.json; a miss fails the run
      - {metric: adjacency_flaps, max: 0}
      - {metric: key_convergence_max_s, max: 5}

Actions (played by :mod:`testbed.faults`, which documents each): ``rekey``,
``evict``, ``link-down`` / ``link-up``, ``loss`` (per link, optionally one
direction with ``from``), ``access-loss`` (each router's access to the rekey
tree), ``rate``, ``partition`` / ``heal``, and ``kill-`` / ``start-`` /
``restart-`` of a ``gm``, the ``gcks`` or a routing ``daemon``, and ``attack``
(``kind`` one of :data:`ATTACK_KINDS`, played by :mod:`testbed.attacks`). Errors name
the entry, e.g. ``timeline[2].do: 'reboot' is not one of ...``;
:func:`check_topology` checks router and link names against the topology
before anything is built.

Parameters: a scenario may declare ``params:`` (name: default) and use
``${name}`` in any value; :func:`substitute` fills them (a campaign passes
its grid point, a plain run the defaults).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mrkm.config import ConfigError, parse_group
from topologies.model import Topology

__all__ = [
    "ACTIONS",
    "ATTACK_KINDS",
    "DAEMONS",
    "Action",
    "Assertion",
    "Scenario",
    "ScenarioError",
    "check_topology",
    "load_scenario",
    "param_text",
    "substitute",
]

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

# action -> required fields (beyond "at" and "do"); testbed/faults.py plays them
ACTIONS: dict[str, tuple[str, ...]] = {
    "rekey": ("group",),
    "evict": ("router", "group"),
    "link-down": ("link",),
    "link-up": ("link",),
    "loss": ("link", "percent"),
    "access-loss": ("percent",),
    "rate": ("link", "kbit"),
    "partition": ("routers",),
    "heal": (),
    "kill-gm": ("router",),
    "start-gm": ("router",),
    "restart-gm": ("router",),
    "kill-gcks": (),
    "start-gcks": (),
    "restart-gcks": (),
    "kill-daemon": ("router", "daemon"),
    "start-daemon": ("router", "daemon"),
    "restart-daemon": ("router", "daemon"),
    "attack": ("kind",),
}
#: ``attack`` kinds (testbed.attacks.KINDS, repeated to keep scenario loading light)
ATTACK_KINDS = (
    "replay-rekey",
    "forged-signature",
    "foreign-signer",
    "truncated",
    "oversized",
    "registration-flood",
    "unauthorized-identity",
    "evicted-member",
)
# attack kind -> fields it needs beyond "kind"
_ATTACK_NEEDS: dict[str, tuple[str, ...]] = {"evicted-member": ("router", "group")}
DAEMONS = ("zebra", "ospfd", "ospf6d", "pimd", "bird")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
OVERRIDABLE = ("topology", "duration")  # top-level fields a campaign grid key may replace


class ScenarioError(ValueError):
    """A scenario that cannot run; the message names the entry."""


@dataclass(frozen=True)
class Action:
    """One timeline step, ``at`` seconds after every GM registered."""

    at: float
    do: str
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short human description for progress lines."""
        details = " ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.do} {details}".strip()


@dataclass(frozen=True)
class Assertion:
    """A bound on one summary metric."""

    metric: str
    max: float | None = None
    min: float | None = None

    def check(self, summary: dict[str, Any]) -> str | None:
        """None if the summary satisfies it, else a message naming metric and miss."""
        value = summary.get(self.metric)
        if not isinstance(value, int | float):
            return f"{self.metric}: no numeric value in the summary ({value!r})"
        if self.max is not None and value > self.max:
            return f"{self.metric} = {value} exceeds {self.max} by {value - self.max:.3g}"
        if self.min is not None and value < self.min:
            return f"{self.metric} = {value} is below {self.min} by {self.min - value:.3g}"
        return None


@dataclass(frozen=True)
class Scenario:
    """A loaded, checked scenario."""

    name: str
    question: str
    topology: str
    seed: int
    groups: tuple[dict[str, Any], ...]
    timeline: tuple[Action, ...]
    duration: float
    assertions: tuple[Assertion, ...] = ()


def _need(cond: bool, where: str, reason: str) -> None:
    if not cond:
        raise ScenarioError(f"{where}: {reason}")


def _actions(raw: Any, where: str) -> list[Action]:
    """One timeline entry; ``every: S`` with ``count: N`` repeats it N times, S seconds apart."""
    _need(isinstance(raw, dict), where, "expected a mapping with 'at' and 'do'")
    if "every" not in raw and "count" not in raw:
        return [_action(raw, where)]
    every, count = raw.get("every"), raw.get("count")
    _need(isinstance(every, int | float) and every > 0, f"{where}.every", "expected seconds > 0")
    _need(isinstance(count, int) and count >= 1, f"{where}.count", "expected a whole number >= 1")
    first = _action({k: v for k, v in raw.items() if k not in ("every", "count")}, where)
    return [Action(first.at + i * float(every), first.do, first.args) for i in range(int(count))]


def _action(raw: Any, where: str) -> Action:
    _need(isinstance(raw, dict), where, "expected a mapping with 'at' and 'do'")
    _need(
        "at" in raw and isinstance(raw["at"], int | float) and raw["at"] >= 0,
        f"{where}.at",
        "needs a number of seconds >= 0",
    )
    do = raw.get("do")
    _need(do in ACTIONS, f"{where}.do", f"{do!r} is not one of {', '.join(ACTIONS)}")
    args = {k: v for k, v in raw.items() if k not in ("at", "do")}
    for name in ACTIONS[str(do)]:
        _need(name in args, f"{where}.{name}", f"'{do}' needs it")
    if "link" in args:
        link = args["link"]
        _need(
            (isinstance(link, list) and len(link) == 2) or (link == "all" and do == "loss"),
            f"{where}.link",
            "expected two router names, e.g. [r1, r2] ('all' only for loss)",
        )
    if "kbit" in args:
        _need(
            isinstance(args["kbit"], int | float) and args["kbit"] >= 0,
            f"{where}.kbit",
            "expected kbit/s >= 0 (0 removes the limit)",
        )
    if "daemon" in args:
        _need(
            args["daemon"] in DAEMONS,
            f"{where}.daemon",
            f"{args['daemon']!r} is not one of {', '.join(DAEMONS)}",
        )
    if "routers" in args:
        routers = args["routers"]
        _need(
            routers == "all" or (isinstance(routers, list) and bool(routers)),
            f"{where}.routers",
            "expected a list of router names (or 'all' for access-loss)",
        )
    if do == "attack":
        _check_attack(args, where)
    if "percent" in args:
        percent = args["percent"]
        _need(
            isinstance(percent, int | float) and 0 <= percent <= 100,
            f"{where}.percent",
            "expected 0 to 100",
        )
    return Action(float(raw["at"]), str(do), args)


def _check_attack(args: dict[str, Any], where: str) -> None:
    """The fields of an ``attack`` action (testbed/attacks.py)."""
    kind = args["kind"]
    _need(
        kind in ATTACK_KINDS, f"{where}.kind", f"{kind!r} is not one of {', '.join(ATTACK_KINDS)}"
    )
    for name in _ATTACK_NEEDS.get(str(kind), ()):
        _need(name in args, f"{where}.{name}", f"attack '{kind}' needs it")
    for name in ("packets", "size"):
        if name in args:
            value = args[name]
            _need(
                isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 60000,
                f"{where}.{name}",
                "expected a whole number from 1 to 60000",
            )
    if "rate" in args:
        _need(
            isinstance(args["rate"], int | float) and 0 < args["rate"] <= 10000,
            f"{where}.rate",
            "expected packets/s, more than 0 and at most 10000",
        )
    if "identity" in args:
        _need(
            isinstance(args["identity"], str)
            and args["identity"].isascii()
            and bool(args["identity"]),
            f"{where}.identity",
            "expected an ASCII name (ID_FQDN)",
        )


def parse_scenario(data: Any, where: str) -> Scenario:
    """Check a parsed YAML document."""
    _need(isinstance(data, dict), where, "expected a mapping")
    known = {"name", "question", "topology", "seed", "groups", "timeline", "duration", "assertions"}
    extra = sorted(set(data) - known)
    _need(not extra, where, f"unknown field(s) {', '.join(extra)}")
    for key in ("name", "question", "topology"):
        _need(
            isinstance(data.get(key), str) and bool(data[key]),
            f"{where}: {key}",
            "missing or not text",
        )
    groups = data.get("groups") or []
    _need(isinstance(groups, list) and bool(groups), f"{where}: groups", "at least one group")
    for i, group in enumerate(groups):
        _need(
            isinstance(group, dict) and "name" in group,
            f"{where}: groups[{i}]",
            "expected a mapping with a name",
        )
        try:  # the GCKS's own checks, before any network is built
            parse_group(group, f"{where}: groups[{i}]")
        except ConfigError as exc:
            raise ScenarioError(str(exc)) from None
    names = {g["name"] for g in groups}
    timeline = tuple(
        action
        for i, raw in enumerate(data.get("timeline") or [])
        for action in _actions(raw, f"{where}: timeline[{i}]")
    )
    for i, action in enumerate(timeline):
        if action.do in ("rekey", "evict") or (action.do == "attack" and "group" in action.args):
            _need(
                action.args["group"] in names,
                f"{where}: timeline[{i}].group",
                f"no group named {action.args['group']!r}",
            )
    duration = data.get("duration", 30)
    _need(
        isinstance(duration, int | float) and duration > 0,
        f"{where}: duration",
        "expected seconds > 0",
    )
    _need(
        all(a.at <= duration for a in timeline), f"{where}: duration", "shorter than the timeline"
    )
    assertions = []
    for i, raw in enumerate(data.get("assertions") or []):
        _need(
            isinstance(raw, dict) and "metric" in raw and ("max" in raw or "min" in raw),
            f"{where}: assertions[{i}]",
            "expected {metric, max and/or min}",
        )
        assertions.append(Assertion(str(raw["metric"]), raw.get("max"), raw.get("min")))
    return Scenario(
        str(data["name"]),
        " ".join(str(data["question"]).split()),
        str(data["topology"]),
        int(data.get("seed", 1)),
        tuple(groups),
        tuple(sorted(timeline, key=lambda a: a.at)),
        float(duration),
        tuple(assertions),
    )


def substitute(raw: Mapping[str, Any], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The scenario dict ``raw`` with its ``params`` applied: defaults, then ``values``.

    Returns a dict without ``params`` that :func:`parse_scenario` accepts.
    A key of ``values`` that is neither a declared parameter nor one of
    ``topology``/``duration``, and a placeholder naming no parameter, are
    errors naming the field.
    """
    _need(isinstance(raw, Mapping), where, "expected a mapping")
    declared = raw.get("params") or {}
    _need(isinstance(declared, Mapping), f"{where}: params", "expected name: default pairs")
    data = {k: v for k, v in raw.items() if k != "params"}
    params = dict(declared)
    for name, value in values.items():
        if name in declared:
            params[name] = value
        elif name in OVERRIDABLE:
            data[name] = value
        else:
            known = ", ".join([*declared, *OVERRIDABLE])
            raise ScenarioError(f"{where}: grid.{name}: not a parameter of the scenario ({known})")

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        for name in _PLACEHOLDER.findall(value):
            _need(
                name in params,
                f"{where}: {path}",
                f"${{{name}}} is not a declared parameter ({', '.join(params) or 'none declared'})",
            )
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return params[whole[1]]
        return _PLACEHOLDER.sub(lambda m: param_text(params[m[1]]), value)

    return dict(walk(data, ""))


def param_text(value: Any) -> str:
    """A parameter value as it appears inside text and folder names."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_topology(scenario: Scenario, topology: Topology) -> None:
    """ScenarioError naming the timeline entry whose router or link ``topology`` lacks."""
    routers = {r.name for r in topology.routers}
    links = {frozenset((lk.a, lk.b)) for lk in topology.links}
    for i, action in enumerate(scenario.timeline):
        where = f"{scenario.name}: timeline[{i}]"
        args = action.args
        named = [args["router"]] if "router" in args else []
        if isinstance(args.get("routers"), list):
            named += args["routers"]
        if isinstance(args.get("link"), list):
            named += args["link"]
            _need(
                frozenset(str(x) for x in args["link"]) in links
                or not set(args["link"]) <= routers,
                f"{where}.link",
                f"{topology.name} has no link between {args['link'][0]} and {args['link'][1]}",
            )
        if "from" in args:
            _need(
                "link" in args and args["from"] in args["link"],
                f"{where}.from",
                "must name one end of the link",
            )
        unknown = sorted({str(n) for n in named} - routers)
        _need(
            not unknown,
            f"{where}",
            f"{topology.name} has no router {', '.join(unknown)} "
            f"(it has {', '.join(sorted(routers)[:12])}{'...' if len(routers) > 12 else ''})",
        )


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by name (``scenarios/<name>.yaml``) or by path."""
    path = Path(name_or_path)
    if not path.exists():
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
        raise ScenarioError(f"unknown scenario {name_or_path!r}; known: {', '.join(known)}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and "params" in data:
        data = substitute(data, {}, str(path))
    return parse_scenario(data, str(path))
