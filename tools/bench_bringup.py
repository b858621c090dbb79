"""Benchmark of testbed bring-up: time and memory per router, for N routers.

Needs root. For each size N it builds a topology with :class:`testbed.network.Network`
(FRR zebra, ospfd, ospf6d and pimd per router, the GCKS and one GM per
router on the management network), and measures:

* phases: network built and FRR started (with PIM protected: each router's
  PIM AH shim first); every GM registered in every group; OSPF Full on every
  link with MRKM's keys; PIM neighbors (under AH) and the rekey tree
  everywhere. Registration comes first because PIM under AH needs MRKM's key
  (testbed/network.py); ``--no-pim-auth`` measures the network without the
  shims, in the same order;
* memory per router (PSS, so shared library pages are split among the
  processes that map them, and RSS) of the FRR daemons, the PIM AH shim
  and the GM, from ``/proc/<pid>/smaps_rollup`` once everything is up;
* baselines from the same run: the time to bring up two routers the same
  way (per router; ideal linear scaling is N x that), and the memory of a
  bare FRR daemon set with no MRKM (the issue's "FRR alone").

Targets (issue 5): 100 routers up and registered in <= 60 s on 2 cores;
<= 40 MB (PSS) per router for FRR + GM together.

Usage: ``sudo .venv/bin/python tools/bench_bringup.py [--sizes 10 50 100] [--topo grid]
[--no-pim-auth]``;
results in ``results/bench/<time>/bench-bringup.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from testbed.network import Network
from topologies.model import Topology
from topologies.registry import get_topology

__all__ = ["bring_up", "main"]

GROUPS = [
    {"name": "ospfv2-area0", "protocol": "ospfv2", "algorithm": "md5", "atd": 2, "dtd": 4},
    {"name": "ospfv3-area0", "protocol": "ospfv3", "algorithm": "hmac-sha-256", "atd": 2,
     "dtd": 4},
]  # fmt: skip


def topology_for(kind: str, n: int) -> Topology:
    """A connected topology of about ``n`` routers: a near-square grid, a ring or random."""
    if kind == "grid":
        cols = max(1, math.ceil(math.sqrt(n)))
        rows = max(1, math.ceil(n / cols))
        return get_topology(f"grid{rows}x{cols}") if n > 2 else get_topology("line2")
    if kind == "ring":
        return get_topology(f"ring{n}") if n >= 3 else get_topology(f"line{n}")
    return get_topology(f"random{n}-d3-s1")


def _mib(kib: float) -> float:
    return round(kib / 1024, 2)


def bring_up(
    topology: Topology, prefix: str, mrkm: bool = True, pim_auth: bool = True
) -> dict[str, Any]:
    """Bring ``topology`` up; phase times (s) and memory per router (MiB).

    Without ``mrkm`` (bare FRR) PIM stays unprotected: nothing would key it.
    """
    pim_auth = pim_auth and mrkm
    out: dict[str, Any] = {
        "routers": len(topology.routers),
        "links": len(topology.links),
        "pim_auth": pim_auth,
    }
    with tempfile.TemporaryDirectory(prefix="mrkm-bench-") as tmp:
        t0 = time.monotonic()
        with Network(topology, Path(tmp), prefix=prefix, pim_auth=pim_auth) as net:
            out["built_s"] = round(time.monotonic() - t0, 3)
            if mrkm:
                net.start_mrkm(groups=GROUPS, timeout=180)
                out["registered_s"] = round(time.monotonic() - t0, 3)
                net.wait_ospf_full(timeout=240)
                out["ospf_full_s"] = round(time.monotonic() - t0, 3)
            net.wait_pim(timeout=120)
            out["pim_s"] = round(time.monotonic() - t0, 3)
            out["ready_s"] = out["pim_s"]
            memory = net.memory()
        t_down = time.monotonic()
    out["teardown_s"] = round(time.monotonic() - t_down, 3)
    per_router_pss = [sum(p["pss"] for p in procs.values()) for procs in memory.values()]
    per_router_rss = [sum(p["rss"] for p in procs.values()) for procs in memory.values()]
    gm_pss = [procs["gm"]["pss"] for procs in memory.values() if "gm" in procs]
    shim_pss = [procs["pim-ah"]["pss"] for procs in memory.values() if "pim-ah" in procs]
    out["memory_mib"] = {
        "pss_per_router_median": _mib(statistics.median(per_router_pss)),
        "pss_per_router_max": _mib(max(per_router_pss)),
        "rss_per_router_median": _mib(statistics.median(per_router_rss)),
        "gm_pss_median": _mib(statistics.median(gm_pss)) if gm_pss else None,
        "shim_pss_median": _mib(statistics.median(shim_pss)) if shim_pss else None,
    }
    return out


def main(argv: list[str] | None = None) -> int:
    """``tools/bench_bringup.py --help``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--topo", choices=("grid", "ring", "random"), default="grid")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    parser.add_argument(
        "--no-pim-auth", action="store_true", help="PIM unprotected: no AH shims, no PIM group"
    )
    parser.add_argument(
        "--prefix", default="bb", help="namespace prefix stem (default bb: bb0, bb1, bb<N>)"
    )
    args = parser.parse_args(argv)
    pim_auth = not args.no_pim_auth
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, routing daemons)")
    folder = args.out / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder.mkdir(parents=True, exist_ok=True)
    print("baselines: two routers with MRKM, and two bare FRR routers (no MRKM)", flush=True)
    one = bring_up(get_topology("line2"), f"{args.prefix}1", pim_auth=pim_auth)
    bare = bring_up(get_topology("line2"), f"{args.prefix}0", mrkm=False)
    one["per_router_s"] = round(one["ready_s"] / one["routers"], 3)
    rows = []
    for n in args.sizes:
        topology = topology_for(args.topo, n)
        print(f"bringing up {topology.name}: {len(topology.routers)} routers ...", flush=True)
        result = bring_up(topology, f"{args.prefix}{n}", pim_auth=pim_auth)
        ready = result["ready_s"]
        result["per_router_s"] = round(ready / result["routers"], 3)
        result["vs_linear"] = round(ready / (one["per_router_s"] * result["routers"]), 3)
        pss = result["memory_mib"]["pss_per_router_median"]
        result["memory_vs_bare_frr"] = round(pss / bare["memory_mib"]["pss_per_router_median"], 3)
        rows.append(result)
        mem = result["memory_mib"]
        print(
            f"  {result['routers']:4d} routers: built {result['built_s']:6.1f} s, registered "
            f"{result['registered_s']:6.1f} s, OSPF Full {result['ospf_full_s']:6.1f} s, "
            f"PIM and rekey tree {ready:6.1f} s "
            f"({result['per_router_s']:.3f} s/router, {result['vs_linear']:.2f}x linear); "
            f"PSS/router {mem['pss_per_router_median']} MiB "
            f"({result['memory_vs_bare_frr']:.2f}x bare FRR), GM {mem['gm_pss_median']} MiB, "
            f"PIM AH shim {mem['shim_pss_median']} MiB",
            flush=True,
        )
    report = {
        "benchmark": "bring-up",
        "topology_kind": args.topo,
        "pim_auth": pim_auth,
        "baseline_one_router": one,
        "baseline_bare_frr": bare,
        "sizes": rows,
        "targets": {"routers_100_ready_s": 60, "pss_per_router_mib": 40},
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    path = folder / "bench-bringup.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
