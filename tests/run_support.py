"""A small synthetic run whose metrics are worked out by hand (tests of testbed/).

One GCKS (``gcks.mrkm``) and three GMs (``r1.mrkm`` .. ``r3.mrkm``) in group
``g`` (OSPFv2). Times are seconds on the shared clock, from ``T = 1000``:

* registration: the first ``registration_started`` at +0.2, the last
  ``registration_completed`` at +0.61 → convergence 0.41 s; per-GM latency
  (``seconds``) 210, 260, 310 ms;
* rekey 1 (SA aa…, Message ID 0, key 2, 472 octets × 4 copies) at +10:
  accepts after 4, 10, 2 ms; installs after 40 (r1: sinks frr 30 ms and file
  40 ms → the later), 50 and 1000 ms (r3's first install failed); first
  packets with key 2 after 2.0, 2.5, 3.0 s → skew 1000 ms;
* a heartbeat (SA aa…, Message ID 1, 137 octets) at +15, which r2 accepts:
  it must not match rekey 3, which also has Message ID 1;
* rekey 2 (eviction of r3, SA aa…, Message ID 2, no key, 497 × 4) at +20:
  accepts of r1, r2 after 6, 8 ms; r3 rejects it (excluded);
* rekey 3 (new SA bb…, Message ID 1, key 3, 472 × 4) at +21: accepts after
  3, 5 ms; installs after 20, 30 ms; packets with key 3 after 2.0, 2.25 s
  (r2's OSPFv3 packet with SA ID 3 at +1.0 s is another protocol: ignored);
* GCKS CPU: 0.5 s up to +0.2, 0.6 s at +0.7 → 82 ms over the registration
  window, 27.333 ms per registration; rekey windows [+10, +11], [+20, +21],
  [+21, +22] use 30, 10, 40 ms → 26.667 ms per rekey.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

T = 1000.0
GCKS = "gcks.mrkm"
GMS = ("r1.mrkm", "r2.mrkm", "r3.mrkm")
SA1 = "aa" * 16
SA2 = "bb" * 16


def _e(t: float, event: str, node: str, **fields: Any) -> dict[str, Any]:
    return {"t": round(T + t, 6), "event": event, "node": node, **fields}


def _rows(*key_ids: int) -> list[dict[str, Any]]:
    return [
        {
            "group": "g",
            "protocol": "ospfv2",
            "key_id": k,
            "algorithm": "hmac-sha-256",
            "accept_start": T,
            "send_start": T + 10 * k,
            "send_end": T + 10 * k + 10,
            "accept_end": T + 10 * k + 14,
        }
        for k in key_ids
    ]


def gcks_events() -> list[dict[str, Any]]:
    """The GCKS's log."""
    sent = {"group": "g", "wrapped_keys": 1}
    return [
        _e(0.0, "process_started", GCKS, role="gcks", pid=1, version="0", listen="x"),
        _e(0.4, "member_registered", GCKS, group="g", member="r1.mrkm", members=1),
        _e(0.5, "member_registered", GCKS, group="g", member="r2.mrkm", members=2),
        _e(0.6, "member_registered", GCKS, group="g", member="r3.mrkm", members=3),
        _e(10.0, "rekey_sent", GCKS, message_id=0, key_ids=[2], octets=472, copies=4,
           reason="manual", sa=SA1, **sent),
        _e(15.0, "rekey_sent", GCKS, group="g", message_id=1, key_ids=[], octets=137, copies=1,
           reason="heartbeat", wrapped_keys=0, sa=SA1),
        _e(20.0, "member_evicted", GCKS, group="g", member="r3.mrkm"),
        _e(20.0, "rekey_sent", GCKS, group="g", message_id=2, key_ids=[], octets=497, copies=4,
           reason="eviction", wrapped_keys=3, sa=SA1),
        _e(21.0, "rekey_sent", GCKS, message_id=1, key_ids=[3], octets=472, copies=4,
           reason="after-eviction", sa=SA2, **sent),
    ]  # fmt: skip


def gm_events(node: str) -> list[dict[str, Any]]:
    """One GM's log."""
    i = GMS.index(node)
    start = 0.2 + 0.05 * i
    done = 0.41 + 0.1 * i
    out = [
        _e(0.1, "process_started", node, role="gm", pid=10 + i, version="0", listen="x"),
        _e(start, "registration_started", node, group="g", attempt=1, reason="start"),
        _e(done, "keys_installed", node, group="g", rows=_rows(1)),
        _e(done, "registration_completed", node, group="g", key_ids=[1], message_id=0,
           seconds=round(done - start, 6)),
    ]  # fmt: skip
    accept1 = (0.004, 0.010, 0.002)[i]
    out += [
        _e(10 + accept1, "keys_installed", node, group="g", rows=_rows(1, 2)),
        _e(10 + accept1, "rekey_accepted", node, group="g", message_id=0, key_ids=[2], sa=SA1),
    ]
    if node == "r1.mrkm":
        out += [
            _e(10.25, "rekey_duplicate", node, group="g", message_id=0),
            _e(10.030, "router_install", node, sink="frr", ok=True, seconds=0.02,
               key_ids=[1, 2], reason="keys changed"),
            _e(10.040, "router_install", node, sink="file", ok=True, seconds=0.001,
               key_ids=[1, 2], reason="keys changed"),
        ]  # fmt: skip
    elif node == "r2.mrkm":
        out += [
            _e(10.050, "router_install", node, sink="frr", ok=True, seconds=0.02,
               key_ids=[2], reason="keys changed"),
            _e(15.001, "rekey_accepted", node, group="g", message_id=1, key_ids=[], sa=SA1),
        ]  # fmt: skip
    else:
        out += [
            _e(10.020, "router_install", node, sink="frr", ok=False, seconds=0.0,
               key_ids=[1, 2], reason="keys changed", detail="vtysh down"),
            _e(11.0, "router_install", node, sink="frr", ok=True, seconds=0.02,
               key_ids=[1, 2], reason="retry after a failed install"),
            _e(20.005, "rekey_rejected", node, group="g", reason="excluded by the key tree"),
        ]  # fmt: skip
    if node != "r3.mrkm":
        accept2 = (0.006, 0.008)[i]
        accept3 = (0.003, 0.005)[i]
        install3 = (0.020, 0.030)[i]
        out += [
            _e(20 + accept2, "rekey_accepted", node, group="g", message_id=2, key_ids=[],
               new_rekey_sa=True, sa=SA1),
            _e(21 + accept3, "keys_installed", node, group="g", rows=_rows(2, 3)),
            _e(21 + accept3, "rekey_accepted", node, group="g", message_id=1, key_ids=[3], sa=SA2),
            _e(21 + install3, "router_install", node, sink="frr", ok=True, seconds=0.01,
               key_ids=[2, 3], reason="keys changed"),
        ]  # fmt: skip
    return sorted(out, key=lambda e: e["t"])


def wire_records() -> list[dict[str, Any]]:
    """``wire_key`` records (as parse_captures writes them)."""

    def w(t: float, n: int, proto: str, key: int, prev: int | None) -> dict[str, Any]:
        return {
            "t": round(T + t, 6),
            "event": "wire_key",
            "router": f"r{n}",
            "node": f"r{n}.mrkm",
            "router_id": f"10.255.0.{n}",
            "proto": proto,
            "src": f"10.100.{n}.1" if proto == "ospfv2" else f"fe80::{n}",
            "key_id": key,
            "previous": prev,
            "first": True,
            "packets": 5,
        }

    return sorted(
        [
            w(5.0, 1, "ospfv2", 1, None),
            w(5.0, 2, "ospfv2", 1, None),
            w(5.0, 3, "ospfv2", 1, None),
            w(12.0, 1, "ospfv2", 2, 1),
            w(12.5, 2, "ospfv2", 2, 1),
            w(13.0, 3, "ospfv2", 2, 1),
            w(22.0, 2, "ospfv3", 3, None),  # another protocol: not rekey 3's key
            w(23.0, 1, "ospfv2", 3, 2),
            w(23.25, 2, "ospfv2", 3, 2),
        ],
        key=lambda r: r["t"],
    )


def neighbor_records() -> list[dict[str, Any]]:
    """``neighbor_states`` of r1 (ospfv2 toward r2 flaps once) and r2."""
    return [
        {"t": T + 1, "event": "neighbor_states", "router": "r1",
         "states": {"ospfv2": {"10.255.0.2": "Full"}}},
        {"t": T + 30, "event": "neighbor_states", "router": "r1",
         "states": {"ospfv2": {"10.255.0.2": "Init"}}},
        {"t": T + 32, "event": "neighbor_states", "router": "r1",
         "states": {"ospfv2": {"10.255.0.2": "Full"}}},
        {"t": T + 1, "event": "neighbor_states", "router": "r2",
         "states": {"ospfv2": {"10.255.0.1": "Full"}}},
    ]  # fmt: skip


def cpu_records() -> list[dict[str, Any]]:
    """``process_cpu`` samples of the GCKS."""
    points = [
        (0.0, 0.5),
        (0.2, 0.5),
        (0.7, 0.6),
        (10.0, 1.0),
        (11.0, 1.03),
        (20.0, 2.0),
        (21.0, 2.01),
        (22.0, 2.05),
    ]
    return [
        {"t": T + t, "event": "process_cpu", "name": "gcks", "pid": 1, "cpu_s": c}
        for t, c in points
    ]


def all_events() -> list[dict[str, Any]]:
    """Every node's events merged by time (stable)."""
    events = gcks_events() + [e for n in GMS for e in gm_events(n)]
    return sorted(events, key=lambda e: e["t"])


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """``records`` as JSON lines at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_logs(work: Path) -> list[Path]:
    """The run's process logs as the processes would have left them in ``work``."""
    logs = [write_jsonl(work / "gcks.jsonl", gcks_events())]
    logs += [write_jsonl(work / f"{n}.jsonl", gm_events(n)) for n in GMS]
    (work / "gcks.stderr").write_text("")
    return [*logs, work / "gcks.stderr"]


def write_collector_files(folder: Path) -> None:
    """What the collectors would have written into the run folder."""
    write_jsonl(folder / "wire" / "wire.jsonl", wire_records())
    records = neighbor_records()
    for router in ("r1", "r2"):
        mine = [r for r in records if r["router"] == router]
        write_jsonl(folder / "samples" / f"neighbors-{router}.jsonl", mine)
    write_jsonl(folder / "samples" / "cpu-gcks.jsonl", cpu_records())
    taps = [
        {"name": f"r{i}", "node": f"r{i}.mrkm", "router_id": f"10.255.0.{i}"} for i in (1, 2, 3)
    ]
    (folder / "samples" / "routers.json").write_text(json.dumps(taps))
