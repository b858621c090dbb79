"""The numbers of one run, computed from the files of its run folder (ARCHITECTURE.md,
"Measurements").

Inputs, all written before this module runs (STYLE.md item 15):
``events.jsonl`` (every process log merged, :mod:`testbed.bundle`),
``wire/wire.jsonl`` (:func:`testbed.collectors.parse_captures`),
``samples/neighbors-<router>.jsonl``, ``samples/cpu-gcks.jsonl`` and
``samples/routers.json`` (:mod:`testbed.collectors`). Every function below takes plain records, so
tests feed synthetic logs and check the numbers exactly.

Definitions (times on the shared host clock; "rekey" = a GCKS ``rekey_sent``
whose reason is not ``heartbeat``; a GM's events are matched to it on
``(sa, message_id)``, since Message IDs restart with every Rekey SA):

* ``t_send``: the ``rekey_sent`` time (the first copy).
* expected members: the GCKS's members of the group when it sent the rekey:
  ``member_registered`` minus ``member_evicted`` / ``member_left``, in the
  order of the GCKS's log.
* ``accept`` latency of GM i: its first ``rekey_accepted`` − ``t_send``.
* ``install`` latency: for each router sink of GM i, its first successful
  ``router_install`` at or after ``t_send`` whose ``key_ids`` hold every key
  id of the rekey; the latest of those sinks − ``t_send`` (a rekey without
  key ids, such as an eviction's new Rekey SA, has none).
* ``wire`` latency: the first ``wire_key`` record of router i (matched on its
  GM identity ``node``) at or after ``t_send`` with one of the rekey's key
  ids, in the group's protocol when the GMs' ``keys_installed`` rows name it,
  − ``t_send``.
* a rekey is complete when every expected member accepted it or installed
  its key ids (a member that missed every copy and repaired by registering
  again has an install time but no accept time).
* key convergence of a rekey = the maximum over members (``*_max_ms``), with
  the median and p95 over members; p95 is the nearest-rank percentile (the
  ceil(0.95 n)-th smallest value), so it is always a measured value.
  For PIM under AH the wire is the router's shim: its ``pim_ah_send_switch``
  event (the first PIM packet it protected with a new SPI, logged by router
  name and mapped to the GM through ``routers.json``) is a ``wire_key``
  record of protocol ``pim-ah`` with the SPI as key id (:func:`pim_ah_wire`).
* switch-over skew = max − min of ``t_wire`` over the rekey's routers (two or more).
* bytes per rekey = ``copies`` × ``octets`` (GSA_REKEY octets, UDP payload);
  messages per rekey = ``copies``.
* registration convergence = the last GM's first ``registration_completed``
  − the first ``registration_started`` of any GM (None until every GM did).
* adjacency flap = an adjacency seen Full (OSPF) or Up (PIM) that a later
  answered poll shows in another state or absent; polls the daemon did not
  answer say nothing. Each router reports its own side, so one broken link
  counts twice.
* GCKS CPU (``/proc/<pid>/stat`` user + system, linearly interpolated
  between samples, held constant outside them): per registration = CPU used
  from the first ``registration_started`` until registration converged,
  divided by the registrations in that window; per rekey = CPU used from
  ``t_send`` for ``REKEY_CPU_WINDOW`` s (or until the next rekey), averaged
  over rekeys. The kernel counts CPU in 10 ms ticks: only averages mean much.
* PIM AH drops (:func:`pim_ah_counters`): per reason (``in:unprotected``,
  ``in:bad-icv``, ``in:unknown-spi``, ``out:no-send-sa``...) summed over the
  routers' shims, from each shim's final counters (``pim_ah_stopped``); a
  shim that logged no stop (killed) counts its ``pim_ah_drop`` events and
  their ``suppressed`` numbers instead. A shim drops PIM sent before its
  first key (``out:no-send-sa`` during bring-up) by design: it fails closed.
* host saturation: CPU busy > 90 % over a stretch of at least 5 s of host
  samples (taken during the timeline). A run without host samples falls back
  on the 1-minute load average: above 0.9 per CPU both before and after the
  run. The load average trails by a minute and includes the run's own
  bring-up and teardown, so it does not overrule the samples. Such a run is
  marked invalid (``manifest.json``).
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MEMBER_FIELDS",
    "REKEY_FIELDS",
    "Distribution",
    "MemberTimes",
    "RekeyResult",
    "RunMetrics",
    "adjacency_flaps",
    "compute_metrics",
    "cpu_at",
    "expected_members",
    "gcks_cpu",
    "host_saturation",
    "percentile",
    "pim_ah_counters",
    "pim_ah_wire",
    "read_jsonl",
    "registration",
    "rekey_results",
    "roles",
    "skipped_lines",
    "summarize",
    "write_csv",
]

REKEY_CPU_WINDOW = 1.0  # s of GCKS CPU charged to a rekey after t_send (copies go out within it)
UP_STATES = frozenset({"Full", "Up"})  # OSPF adjacency / PIM neighbor states that count as up
SATURATED_BUSY = 0.90  # fraction of all CPUs busy ...
SATURATED_FOR = 5.0  # ... for at least this many s makes a run invalid
SATURATED_LOAD_PER_CPU = 0.90  # 1-minute load average per CPU, before and after the run
GCKS_CPU = "cpu-gcks.jsonl"
ROUTERS = "routers.json"  # router name -> GM node, written by the collectors
PIM_AH = "pim-ah"  # the key table protocol of PIM AH keys (mrkm.sinks.pim_ah.PROTOCOL)

#: Columns of metrics.csv, one row per rekey.
REKEY_FIELDS = (
    "rekey",
    "group",
    "rekey_sa",
    "message_id",
    "reason",
    "key_ids",
    "t_send",
    "octets",
    "copies",
    "bytes",
    "wrapped_keys",
    "members_expected",
    "members_accepted",
    "members_installed",
    "members_on_wire",
    "accept_max_ms",
    "accept_median_ms",
    "accept_p95_ms",
    "install_max_ms",
    "install_median_ms",
    "install_p95_ms",
    "wire_first_ms",
    "wire_last_ms",
    "skew_ms",
    "gcks_cpu_ms",
)
#: Columns of members.csv, one row per (rekey, member).
MEMBER_FIELDS = (
    "rekey",
    "group",
    "rekey_sa",
    "message_id",
    "node",
    "accept_ms",
    "install_ms",
    "wire_ms",
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a missing file is empty.

    A line that is not a JSON object (cut by ``kill -9`` mid-write) is
    skipped; :func:`skipped_lines` counts them.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def skipped_lines(path: Path) -> int:
    """Lines of a JSON-lines file that :func:`read_jsonl` skipped."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return 0
    return len(lines) - len(read_jsonl(path))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: the ceil(q/100 · n)-th smallest value (None if empty)."""
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {q}")
    ordered = sorted(values)
    return ordered[math.ceil(q / 100 * len(ordered)) - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass(frozen=True)
class Distribution:
    """n, max, median and nearest-rank p95 of some latencies, in seconds."""

    n: int
    max: float | None
    median: float | None
    p95: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        """The distribution of ``values``."""
        vals = list(values)
        if not vals:
            return cls(0, None, None, None)
        return cls(len(vals), max(vals), statistics.median(vals), percentile(vals, 95))

    def ms(self) -> dict[str, Any]:
        """As ``{"n", "max", "median", "p95"}`` in milliseconds (3 decimals)."""
        return {"n": self.n, "max": _ms(self.max), "median": _ms(self.median), "p95": _ms(self.p95)}


# -- who is who ---------------------------------------------------------------------------------


def roles(events: Iterable[Mapping[str, Any]]) -> tuple[str | None, list[str]]:
    """(GCKS node, GM nodes) from ``process_started`` roles, or from what the nodes logged."""
    gcks: str | None = None
    gms: set[str] = set()
    sends: set[str] = set()
    for e in events:
        if e["event"] == "process_started":
            if e.get("role") == "gcks":
                gcks = gcks or e["node"]
            elif e.get("role") == "gm":
                gms.add(e["node"])
        elif e["event"] in ("rekey_sent", "member_registered"):
            sends.add(e["node"])
        elif e["event"] == "registration_started":
            gms.add(e["node"])
    if gcks is None and sends:
        gcks = sorted(sends)[0]
    return gcks, sorted(gms)


def _of(events: Iterable[Mapping[str, Any]], name: str, node: str | None = None) -> list[Any]:
    return [e for e in events if e["event"] == name and (node is None or e.get("node") == node)]


# -- rekeys ---------------------------------------------------------------------------------------


def expected_members(gcks_events: Sequence[Mapping[str, Any]]) -> list[frozenset[str]]:
    """For every ``rekey_sent`` of ``gcks_events`` (in order), the group's members then."""
    members: dict[str, set[str]] = {}
    out = []
    for e in gcks_events:
        group = members.setdefault(e.get("group", ""), set())
        if e["event"] == "member_registered":
            group.add(e["member"])
        elif e["event"] in ("member_evicted", "member_left"):
            group.discard(e["member"])
        elif e["event"] == "rekey_sent":
            out.append(frozenset(group))
    return out


@dataclass(frozen=True)
class MemberTimes:
    """One member's latencies for one rekey, in seconds after ``t_send`` (None: never)."""

    node: str
    accept: float | None
    install: float | None
    wire: float | None


@dataclass
class RekeyResult:
    """One rekey: what the GCKS logged, who was expected, and every member's latencies."""

    index: int
    sent: Mapping[str, Any]
    expected: frozenset[str]
    members: list[MemberTimes] = field(default_factory=list)
    cpu: float | None = None  # GCKS CPU seconds charged to this rekey

    def _times(self, kind: str) -> list[float]:
        values = (getattr(m, kind) for m in self.members)
        return [v for v in values if v is not None]

    def distribution(self, kind: str) -> Distribution:
        """``accept``, ``install`` or ``wire`` latencies over the members that have one."""
        return Distribution.of(self._times(kind))

    @property
    def skew(self) -> float | None:
        """Switch-over skew: spread of the members' first packets with the new key (≥ 2)."""
        wire = self._times("wire")
        return max(wire) - min(wire) if len(wire) >= 2 else None

    @property
    def complete(self) -> bool:
        """True when every expected member accepted the rekey or, having missed every
        copy, installed its keys anyway (a repair by registering again)."""
        done = {m.node for m in self.members if m.accept is not None or m.install is not None}
        return self.expected <= done

    def row(self) -> dict[str, Any]:
        """The metrics.csv row (milliseconds with 3 decimals; None for no value)."""
        s = self.sent
        accept, install, wire = (self.distribution(k) for k in ("accept", "install", "wire"))
        return {
            "rekey": self.index,
            "group": s.get("group", ""),
            "rekey_sa": str(s.get("sa", ""))[:8],
            "message_id": s["message_id"],
            "reason": s.get("reason", ""),
            "key_ids": " ".join(str(k) for k in s.get("key_ids", [])),
            "t_send": s["t"],
            "octets": s.get("octets", 0),
            "copies": s.get("copies", 1),
            "bytes": s.get("octets", 0) * s.get("copies", 1),
            "wrapped_keys": s.get("wrapped_keys", 0),
            "members_expected": len(self.expected),
            "members_accepted": accept.n,
            "members_installed": install.n,
            "members_on_wire": wire.n,
            "accept_max_ms": _ms(accept.max),
            "accept_median_ms": _ms(accept.median),
            "accept_p95_ms": _ms(accept.p95),
            "install_max_ms": _ms(install.max),
            "install_median_ms": _ms(install.median),
            "install_p95_ms": _ms(install.p95),
            "wire_first_ms": _ms(min(self._times("wire"), default=None)),
            "wire_last_ms": _ms(wire.max),
            "skew_ms": _ms(self.skew),
            "gcks_cpu_ms": _ms(self.cpu),
        }

    def member_rows(self) -> list[dict[str, Any]]:
        """The members.csv rows of this rekey."""
        s = self.sent
        return [
            {
                "rekey": self.index,
                "group": s.get("group", ""),
                "rekey_sa": str(s.get("sa", ""))[:8],
                "message_id": s["message_id"],
                "node": m.node,
                "accept_ms": _ms(m.accept),
                "install_ms": _ms(m.install),
                "wire_ms": _ms(m.wire),
            }
            for m in self.members
        ]


def _install_time(
    installs: Sequence[Mapping[str, Any]],
    keys: set[int],
    t_send: float,
    protocols: set[str] | None = None,
) -> float | None:
    """The latest, over sinks, of each sink's first ok install holding ``keys`` after ``t_send``.

    Key ids of different groups overlap (OSPFv2 and OSPFv3 both count 1, 2,
    ...), so an install that lists ``keys`` as ``protocol:id`` must hold them
    in one of ``protocols``; an older log without them is matched on the ids.
    A sink that installs none of the rekey's protocols is not waited for.
    """
    if not keys:
        return None
    first: dict[str, float] = {}
    for e in installs:
        if e["t"] < t_send or not e.get("ok"):
            continue
        qualified = e.get("keys")
        if qualified and protocols:
            held = {k for k in qualified if k.split(":", 1)[0] in protocols}
            if not any(k.split(":", 1)[0] in protocols for k in qualified) and e.get("sink"):
                continue  # this sink does not carry the rekey's protocol
            ok = all(any(f"{p}:{k}" in held for p in protocols) for k in keys)
        else:
            ok = keys <= set(e.get("key_ids", []))
        if ok:
            first.setdefault(e.get("sink", ""), e["t"])
    return max(first.values()) if first else None


def _protocols(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], str]:
    """(group, key id) -> routing protocol, from the GMs' ``keys_installed`` rows."""
    out: dict[tuple[str, int], str] = {}
    for e in _of(events, "keys_installed"):
        for row in e.get("rows", []):
            out[(row.get("group", e.get("group", "")), row["key_id"])] = row["protocol"]
    return out


def rekey_results(
    events: Sequence[Mapping[str, Any]],
    wire: Sequence[Mapping[str, Any]] = (),
    cpu: Sequence[Mapping[str, Any]] = (),
) -> list[RekeyResult]:
    """Every rekey of the run with its members' accept, install and wire latencies."""
    gcks, _ = roles(events)
    gcks_events = [e for e in events if e.get("node") == gcks]
    sent_all = _of(gcks_events, "rekey_sent")
    expected_all = expected_members(gcks_events)
    by_node: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for e in events:
        if e["event"] in ("rekey_accepted", "router_install"):
            by_node.setdefault(e["node"], {}).setdefault(e["event"], []).append(e)
    wire_by_node: dict[str, list[Mapping[str, Any]]] = {}
    for w in wire:
        wire_by_node.setdefault(w.get("node") or w["router"], []).append(w)
    protocols = _protocols(events)
    samples = _cpu_samples(cpu)

    results: list[RekeyResult] = []
    for sent, expected in zip(sent_all, expected_all, strict=True):
        if sent.get("reason") == "heartbeat":
            continue
        t_send, keys = sent["t"], set(sent.get("key_ids", []))
        match = (sent.get("sa", ""), sent["message_id"])
        group_protocols = {
            protocols[(sent["group"], k)] for k in keys if (sent["group"], k) in protocols
        }
        members = []
        accepted_by = {
            node
            for node, kinds in by_node.items()
            for e in kinds.get("rekey_accepted", [])
            if (e.get("sa", ""), e["message_id"]) == match
        }
        for node in sorted(expected | accepted_by):
            kinds = by_node.get(node, {})
            accepts = [
                e["t"]
                for e in kinds.get("rekey_accepted", [])
                if (e.get("sa", ""), e["message_id"]) == match
            ]
            installed = _install_time(
                kinds.get("router_install", []), keys, t_send, group_protocols or None
            )
            on_wire = [
                w["t"]
                for w in wire_by_node.get(node, [])
                if w["t"] >= t_send
                and w.get("key_id") in keys
                and (not group_protocols or w.get("proto") in group_protocols)
            ]
            members.append(
                MemberTimes(
                    node,
                    min(accepts) - t_send if accepts else None,
                    installed - t_send if installed is not None else None,
                    min(on_wire) - t_send if on_wire else None,
                )
            )
        results.append(RekeyResult(len(results) + 1, sent, expected, members))
    if samples:
        for i, result in enumerate(results):
            start = result.sent["t"]
            end = start + REKEY_CPU_WINDOW
            if i + 1 < len(results):
                end = min(end, results[i + 1].sent["t"])
            result.cpu = cpu_at(samples, end) - cpu_at(samples, start)
    return results


# -- PIM under AH ---------------------------------------------------------------------------------


def pim_ah_wire(
    events: Iterable[Mapping[str, Any]], routers: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """``wire_key`` records of the PIM AH shims' ``pim_ah_send_switch`` events.

    The shim logs by router name; ``routers`` maps it to the router's GM node
    (as ``samples/routers.json`` does), so the records match the members of
    a PIM rekey. ``key_id`` is the SPI, which is the key id of the rekey.
    """
    names = routers or {}
    return [
        {
            "t": e["t"],
            "event": "wire_key",
            "router": e["node"],
            "node": names.get(e["node"], e["node"]),
            "proto": PIM_AH,
            "key_id": e.get("spi"),
            "previous": e.get("previous"),
            "first": True,
        }
        for e in _of(events, "pim_ah_send_switch")
    ]


def pim_ah_counters(events: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The PIM AH shims' packet counts: ``{"drops": {reason: n}, "drops_by_router":
    {router: {reason: n}}, "protected": n, "accepted": n}`` (None when no shim logged).

    Per shim run (a ``pim_ah_started`` up to its ``pim_ah_stopped``) the final
    counters count; a run without a stop counts its ``pim_ah_drop`` events,
    each ``1 + suppressed`` packets (module docstring).
    """
    runs: dict[str, list[dict[str, int]]] = {}
    pending: dict[str, dict[str, int]] = {}
    seen = False
    for e in events:
        kind = e["event"]
        if not kind.startswith("pim_ah_"):
            continue
        seen = True
        node = str(e["node"])
        if kind == "pim_ah_started":
            if node in pending:  # the previous run of this shim logged no stop
                runs.setdefault(node, []).append(pending.pop(node))
            pending[node] = {}
        elif kind == "pim_ah_drop":
            name = f"{e.get('direction', 'in')}_dropped.{e.get('reason', '')}"
            counts = pending.setdefault(node, {})
            counts[name] = counts.get(name, 0) + 1 + int(e.get("suppressed") or 0)
        elif kind == "pim_ah_stopped":
            pending.pop(node, None)
            counters = e.get("counters") or {}
            runs.setdefault(node, []).append({str(k): int(v) for k, v in counters.items()})
    for node, counts in pending.items():
        runs.setdefault(node, []).append(counts)
    if not seen:
        return None
    totals: dict[str, int] = {}
    by_router: dict[str, dict[str, int]] = {}
    protected = accepted = 0
    for node, counted in sorted(runs.items()):
        mine: dict[str, int] = {}
        for counters in counted:
            protected += counters.get("out_protected", 0)
            accepted += counters.get("in_accepted", 0)
            for name, n in counters.items():
                direction, _, reason = name.partition("_dropped.")
                if reason:
                    key = f"{direction}:{reason}"
                    mine[key] = mine.get(key, 0) + n
                    totals[key] = totals.get(key, 0) + n
        by_router[node] = dict(sorted(mine.items()))
    return {
        "drops": dict(sorted(totals.items())),
        "drops_by_router": by_router,
        "protected": protected,
        "accepted": accepted,
    }


# -- registration ---------------------------------------------------------------------------------


def registration(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Registration convergence, and per-GM latency (``registration_completed.seconds``).

    ``t_start`` is the first ``registration_started``, ``t_done`` the moment
    the last GM completed its first registration (None while one has not).
    """
    _, gms = roles(events)
    starts = [e["t"] for e in _of(events, "registration_started") if e["node"] in gms]
    first: dict[tuple[str, str], Mapping[str, Any]] = {}
    for e in _of(events, "registration_completed"):
        first.setdefault((e["node"], e.get("group", "")), e)
    registered = {node for node, _ in first}
    t_start = min(starts) if starts else None
    t_done = max(e["t"] for e in first.values()) if first else None
    converged = bool(gms) and registered >= set(gms) and t_start is not None
    latency = Distribution.of(e.get("seconds", 0.0) for e in first.values())
    return {
        "members": len(gms),
        "registered": len(registered & set(gms)),
        "t_start": t_start,
        "t_done": t_done if converged else None,
        "convergence_s": round(t_done - t_start, 6)
        if converged and t_done is not None and t_start is not None
        else None,
        "latency_ms": latency.ms(),
    }


# -- adjacencies ----------------------------------------------------------------------------------


def adjacency_flaps(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every time an adjacency left Full/Up, with when it came back (None: never).

    ``records`` are ``neighbor_states`` lines of one or more routers, each
    router's in time order. Returns ``{"router", "proto", "neighbor", "t_down",
    "t_up", "state"}`` dicts sorted by ``t_down``; ``state`` is the first
    state seen after Full ("absent" when the neighbor vanished from the list).
    """
    up: dict[tuple[str, str, str], bool] = {}
    open_flaps: dict[tuple[str, str, str], dict[str, Any]] = {}
    flaps: list[dict[str, Any]] = []
    for record in records:
        if record.get("event") != "neighbor_states":
            continue
        router = record["router"]
        for proto, states in record.get("states", {}).items():
            if states is None:
                continue  # the daemon did not answer: no news about its neighbors
            known = {nbr for (r, p, nbr) in up if (r, p) == (router, proto)}
            for neighbor in sorted(known | set(states)):
                key = (router, proto, neighbor)
                state = states.get(neighbor, "absent")
                now_up = state in UP_STATES
                if up.get(key) and not now_up:
                    flap = {
                        "router": router,
                        "proto": proto,
                        "neighbor": neighbor,
                        "t_down": record["t"],
                        "t_up": None,
                        "state": state,
                    }
                    flaps.append(flap)
                    open_flaps[key] = flap
                elif now_up and key in open_flaps:
                    open_flaps.pop(key)["t_up"] = record["t"]
                up[key] = now_up
    return sorted(flaps, key=lambda f: (f["t_down"], f["router"], f["proto"], f["neighbor"]))


# -- CPU ------------------------------------------------------------------------------------------


def _cpu_samples(records: Iterable[Mapping[str, Any]]) -> list[tuple[float, float]]:
    return sorted((r["t"], r["cpu_s"]) for r in records if r.get("event") == "process_cpu")


def cpu_at(samples: Sequence[tuple[float, float]], t: float) -> float:
    """Cumulative CPU seconds at ``t``: linear between samples, held outside them."""
    if not samples:
        raise ValueError("no CPU samples")
    if t <= samples[0][0]:
        return samples[0][1]
    for (t0, c0), (t1, c1) in itertools.pairwise(samples):
        if t0 <= t <= t1:
            return c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)
    return samples[-1][1]


def gcks_cpu(
    events: Sequence[Mapping[str, Any]],
    cpu: Sequence[Mapping[str, Any]],
    rekeys: Sequence[RekeyResult] = (),
) -> dict[str, Any]:
    """GCKS CPU per registration and per rekey, in ms (module docstring); None without data."""
    samples = _cpu_samples(cpu)
    out: dict[str, Any] = {
        "total_s": None,
        "per_registration_ms": None,
        "registrations": 0,
        "per_rekey_ms": None,
        "rekeys": 0,
    }
    if not samples:
        return out
    out["total_s"] = round(samples[-1][1] - samples[0][1], 3)
    reg = registration(events)
    if reg["t_start"] is not None and reg["t_done"] is not None:
        start, done = reg["t_start"], reg["t_done"]
        gcks, _ = roles(events)
        count = sum(1 for e in _of(events, "member_registered", gcks) if start <= e["t"] <= done)
        if count:
            out["registrations"] = count
            out["per_registration_ms"] = _ms(
                (cpu_at(samples, done) - cpu_at(samples, start)) / count
            )
    charged = [r.cpu for r in rekeys if r.cpu is not None]
    if charged:
        out["rekeys"] = len(charged)
        out["per_rekey_ms"] = _ms(statistics.fmean(charged))
    return out


def host_saturation(
    samples: Sequence[Mapping[str, Any]],
    load_before: Sequence[float] | None = None,
    load_after: Sequence[float] | None = None,
    cpus: int = 1,
) -> dict[str, Any]:
    """Whether the host was saturated (module docstring), with the numbers that say so.

    A host sample's ``busy`` covers the time since the previous sample, so a
    stretch of busy samples lasts from the sample before the first to the last.
    """
    reasons: list[str] = []
    ordered = sorted(
        (s for s in samples if s.get("event", "host_load") == "host_load"), key=lambda s: s["t"]
    )
    longest, stretch_start, prev_t = 0.0, None, None
    busy_values = []
    for s in ordered:
        busy = s.get("busy")
        if busy is not None:
            busy_values.append(busy)
        if busy is not None and busy > SATURATED_BUSY and prev_t is not None:
            stretch_start = prev_t if stretch_start is None else stretch_start
            longest = max(longest, s["t"] - stretch_start)
        else:
            stretch_start = None
        prev_t = s["t"]
    if longest >= SATURATED_FOR:
        reasons.append(
            f"CPU busy > {SATURATED_BUSY:.0%} for {longest:.1f} s (limit {SATURATED_FOR:g} s)"
        )
    if load_before and load_after and not busy_values:  # no samples: the lagging fallback
        per_cpu = (load_before[0] / cpus, load_after[0] / cpus)
        if min(per_cpu) > SATURATED_LOAD_PER_CPU:
            reasons.append(
                f"1-min load average per CPU {per_cpu[0]:.2f} before and {per_cpu[1]:.2f} after "
                f"the run (limit {SATURATED_LOAD_PER_CPU:g})"
            )
    return {
        "saturated": bool(reasons),
        "reasons": reasons,
        "busy_max": max(busy_values) if busy_values else None,
        "busy_mean": round(statistics.fmean(busy_values), 4) if busy_values else None,
        "busy_over_limit_s": round(longest, 3),
        "load1_max": max((s["load1"] for s in ordered if "load1" in s), default=None),
    }


# -- the whole run --------------------------------------------------------------------------------


@dataclass
class RunMetrics:
    """metrics.csv rows, members.csv rows and the summary dict of one run."""

    rows: list[dict[str, Any]]
    member_rows: list[dict[str, Any]]
    summary: dict[str, Any]


def summarize(
    events: Sequence[Mapping[str, Any]],
    wire: Sequence[Mapping[str, Any]] = (),
    neighbors: Sequence[Mapping[str, Any]] = (),
    cpu: Sequence[Mapping[str, Any]] = (),
    routers: Mapping[str, str] | None = None,
) -> RunMetrics:
    """Every metric of the module docstring from the run's records; ``routers`` maps
    router names to GM nodes (for the PIM AH shims' events)."""
    gcks, gms = roles(events)
    results = rekey_results(events, [*wire, *pim_ah_wire(events, routers)], cpu)
    rows = [r.row() for r in results]
    heartbeats = [e for e in _of(events, "rekey_sent", gcks) if e.get("reason") == "heartbeat"]
    flaps = adjacency_flaps(neighbors)
    reg = registration(events)
    skews = [r.skew for r in results if r.skew is not None]

    def per_rekey(kind: str) -> dict[str, Any]:
        maxima = [r.distribution(kind).max for r in results]
        return Distribution.of(m for m in maxima if m is not None).ms()

    def pairs(kind: str) -> dict[str, Any]:
        return Distribution.of(t for r in results for t in r._times(kind)).ms()

    summary: dict[str, Any] = {
        "gcks": gcks,
        "members": gms,
        "registration": reg,
        "registration_convergence_s": reg["convergence_s"],
        "rekey_count": len(results),
        "rekeys": rows,
        "incomplete_rekeys": [r.index for r in results if not r.complete],
        "key_convergence_ms": {"accept": per_rekey("accept"), "install": per_rekey("install")},
        "member_latency_ms": {k: pairs(k) for k in ("accept", "install", "wire")},
        "switch_over_skew_ms": Distribution.of(skews).ms(),
        "adjacency_flaps": len(flaps),
        "flaps": flaps,
        "bytes_per_rekey": round(statistics.fmean(r["bytes"] for r in rows), 1) if rows else None,
        "messages_per_rekey": round(statistics.fmean(r["copies"] for r in rows), 2)
        if rows
        else None,
        "heartbeats": {
            "count": len(heartbeats),
            "bytes": sum(e.get("octets", 0) * e.get("copies", 1) for e in heartbeats),
        },
        "gcks_cpu": gcks_cpu(events, cpu, results),
        "copies_dropped_as_duplicates": len(_of(events, "rekey_duplicate")),
        "pim_ah": pim_ah_counters(events),
        "excluded": sorted(
            {
                e["node"]
                for e in _of(events, "rekey_rejected")
                if str(e.get("reason", "")).startswith("excluded")
            }
        ),
    }
    return RunMetrics(rows, [m for r in results for m in r.member_rows()], summary)


def compute_metrics(folder: Path) -> RunMetrics:
    """The metrics of the run in ``folder``: its ``events.jsonl``, ``wire/`` and ``samples/``."""
    events = read_jsonl(folder / "events.jsonl")
    wire = read_jsonl(folder / "wire" / "wire.jsonl")
    neighbors = [
        r
        for path in sorted((folder / "samples").glob("neighbors-*.jsonl"))
        for r in read_jsonl(path)
    ]
    cpu = read_jsonl(folder / "samples" / GCKS_CPU)
    try:
        taps = json.loads((folder / "samples" / ROUTERS).read_text(encoding="utf-8"))
        routers = {str(t["name"]): str(t["node"]) for t in taps if t.get("node")}
    except (OSError, ValueError, TypeError, KeyError):
        routers = {}
    metrics = summarize(events, wire, neighbors, cpu, routers)
    metrics.summary["skipped_lines"] = skipped_lines(folder / "events.jsonl")
    return metrics


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    """``rows`` as CSV with a header; None becomes an empty cell."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
