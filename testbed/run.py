"""Run a scenario on a Mininet network of FRR routers: the main job (``make run-scenario``).

1. Load the scenario (``scenarios/<name>.yaml``) and its topology (or the
   one ``--topo`` names); create the run bundle
   ``results/<scenario>/<UTC>-s<seed>/``.
2. Build the network (:mod:`testbed.network`): FRR (or BIRD) with OSPF and
   PIM on every router, PIM behind MRKM's AH shim unless ``--no-pim-auth``;
   then the GCKS and one GM per router. Wait, in this order, until every GM
   is registered (over the management network, which needs no routing),
   OSPF is Full everywhere (only MRKM's keys allow that), and PIM neighbors
   (under AH: only MRKM's PIM key allows them) and the rekey tree reach
   every router. With PIM protected the network adds the PIM group
   ``pim-sm`` to the scenario's groups unless it names a ``pim`` group
   itself (:func:`testbed.network.with_pim_group`); with
   ``--no-pim-auth`` the scenario's ``pim`` groups and their timeline
   entries are left out, and the run says so.
3. Start the collectors (neighbor sampler, one wire sniffer per router,
   host and GCKS CPU), play the timeline with a progress line per step,
   and wait for the scenario's duration.
4. Tear everything down (by PID; nothing survives), compute the metrics,
   write the bundle and the key-convergence plots, print a summary table,
   and check the scenario's assertions: a miss names the metric and by how
   much, and makes the exit code 1.

Needs root (network namespaces, routing daemons).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from testbed.bundle import RunBundle
from testbed.collectors import (
    NEIGHBOR_PERIOD,
    Collectors,
    RouterTap,
    neighbor_period,
    router_poll,
)
from testbed.faults import Player
from testbed.network import REGISTRATION_MODES, Network
from testbed.plots import plot_run
from testbed.progress import RunProgress
from testbed.scenario import Scenario, ScenarioError, check_topology, load_scenario
from testbed.summary import print_summary
from testbed.verdicts import derived
from topologies.model import Topology, TopologyError
from topologies.registry import get_topology

__all__ = ["bring_up_timeout", "main", "run_scenario", "without_pim"]


def without_pim(scenario: Scenario) -> tuple[Scenario, list[str]]:
    """``scenario`` without its ``pim`` groups and the timeline entries that name them
    (for a run that leaves PIM unprotected); and what was left out, in words."""
    pim = {str(g["name"]) for g in scenario.groups if g.get("protocol") == "pim"}
    if not pim:
        return scenario, []
    dropped = [a for a in scenario.timeline if str(a.args.get("group", "")) in pim]
    kept = dataclasses.replace(
        scenario,
        groups=tuple(g for g in scenario.groups if str(g["name"]) not in pim),
        timeline=tuple(a for a in scenario.timeline if a not in dropped),
    )
    notes = [f"group {name} (pim) left out: PIM is unprotected" for name in sorted(pim)]
    notes += [f"timeline t+{a.at:g} s {a.do} {a.args.get('group')} left out" for a in dropped]
    return kept, notes


def bring_up_timeout(routers: int) -> float:
    """Seconds each bring-up wait may take for ``routers`` routers: 60, plus 2 per router."""
    return 60.0 + 2.0 * routers


def _taps(net: Network) -> list[RouterTap]:
    """One collector tap per router: its neighbor poller and a sniffer on its first link."""
    taps = []
    for router in net.topology.routers:
        links = [lk for lk in net.topology.links if router.name in (lk.a, lk.b)]
        sniff = (links[0].interface(router.name),) if links else ()
        taps.append(
            RouterTap(
                router.name,
                f"{router.name}.mrkm",
                router.loopback,
                tuple(net.exec_prefix(router.name)),
                sniff,
                router_poll(net.routers[router.name]),
            )
        )
    return taps


def run_scenario(
    scenario: Scenario,
    topology: Topology,
    out: Path,
    prefix: str,
    plots: bool = True,
    pim_auth: bool = True,
    registration: str = "oob",
    bfd: bool = False,
    poll_period: float | None = None,
) -> tuple[int, dict[str, Any], Path]:
    """Run one scenario; return (exit code, summary, bundle folder). ``pim_auth``
    protects PIM with the AH shim (the module doc); ``registration`` is ``oob``
    (the management network) or ``in-band`` (over OSPF, from a bootstrap key);
    ``bfd`` runs BFD on every OSPF link; ``poll_period`` is the neighbor
    samplers' period (default: :func:`testbed.collectors.neighbor_period` of
    the network's size)."""
    period = poll_period if poll_period is not None else neighbor_period(len(topology.routers))
    notes: list[str] = []
    if not pim_auth:
        scenario, notes = without_pim(scenario)
    params = {
        "topology": topology.name,
        "routers": len(topology.routers),
        "links": len(topology.links),
        "groups": list(scenario.groups),
        "timeline": [{"at": a.at, "do": a.do, **a.args} for a in scenario.timeline],
        "duration": scenario.duration,
        "pim_auth": pim_auth,
        "registration": registration,
        "bfd": bfd,
        "neighbor_period_s": period,
    }
    bundle = RunBundle.create(out, scenario.name, scenario.seed, params)
    workdir = Path(f"/tmp/mrkm-run-{prefix}")  # keys and PSKs stay out of results/
    workdir.mkdir(parents=True, exist_ok=True)
    progress = RunProgress(scenario.duration)
    t0 = progress.t0
    print(
        f"MRKM scenario '{scenario.name}' on {topology.name} "
        f"({len(topology.routers)} routers, {len(topology.links)} links)"
    )
    print(f"  question: {scenario.question}")
    print(f"  bundle: {bundle.folder}")
    print(f"  PIM: {'under AH, keyed by MRKM' if pim_auth else 'unprotected (--no-pim-auth)'}")
    print(
        "  registration: "
        + (
            "in band, over OSPF from a bootstrap key"
            if registration == "in-band"
            else "out of band"
        )
    )
    if period > NEIGHBOR_PERIOD:
        notes.append(
            f"neighbor states polled every {period:g} s (a flap shorter than that can be "
            f"missed): at {len(topology.routers)} routers, {NEIGHBOR_PERIOD:g} s polls would "
            "load the host more than the routers do"
        )
    for note in notes:
        print(f"  note: {note}")
    # Bring-up deadlines grow with the network: on 2 cores 100 routers need about
    # 70 s to register and 180 s until the rekey tree is up (tools/bench_bringup.py).
    patience = bring_up_timeout(len(topology.routers))
    failure: str | None = None
    logs: dict[str, Path] = {}
    player: Player | None = None
    timings: dict[str, float] = {}
    try:
        with (
            progress,
            Network(
                topology,
                workdir,
                prefix=prefix,
                pim_auth=pim_auth,
                registration=registration,
                bfd=bfd,
            ) as net,
        ):
            if registration == "in-band":
                progress.note("network built; OSPF forming with the bootstrap key")
                net.wait_ospf_full(timeout=patience)
                progress.note("OSPF Full with the bootstrap key; registering the GMs in band")
            else:
                progress.note("network built, routing daemons started; registering the GMs")
            net.start_mrkm(groups=list(scenario.groups), timeout=patience)
            progress.note(f"all {len(topology.routers)} GMs registered")
            if registration == "in-band":
                net.wait_bootstrap_replaced(timeout=patience)
                progress.note("the group keys replaced the bootstrap key on every router")
            net.wait_ospf_full(timeout=patience)
            progress.note("OSPF Full on every link (with MRKM's keys)")
            net.wait_pim(timeout=patience)
            progress.note(
                "PIM neighbors "
                + ("under AH (MRKM's key) " if pim_auth else "")
                + "and the rekey tree on every router"
            )
            collectors = Collectors(bundle.folder, _taps(net), neighbor_period=period).start()
            gcks_pid = net.gcks.pid() if net.gcks is not None else None
            if gcks_pid is not None:
                collectors.watch_process("gcks", gcks_pid)
            player = Player(net)
            start = time.monotonic()
            progress.begin_timeline(start)
            try:
                for action in scenario.timeline:
                    progress.wait_until(start + action.at, f"next: t+{action.at:g} s {action.do}")
                    progress.step(f"t+{action.at:g} s: {player.play(action)}")
                progress.wait_until(
                    start + scenario.duration, f"observing until t+{scenario.duration:g} s"
                )
            finally:
                collectors.stop()
            timings = dict(net.timings)
            logs = {p.name: p for p in sorted(workdir.glob("*.jsonl"))}
            logs |= {p.name: p for p in sorted(workdir.glob("*.stderr"))}
    except (TimeoutError, RuntimeError, ScenarioError, TopologyError, OSError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
        logs = logs or {p.name: p for p in sorted(workdir.glob("*.jsonl"))}
    progress.note("network torn down; computing metrics")
    faults = player.finish() if player is not None else []
    summary = bundle.finish(
        logs,
        failure=failure,
        testbed_events=faults,
        extra={"timings_s": timings},
        derive=lambda s: derived(s, faults, topology),
    )
    if plots:
        plot_run(bundle.folder)
    print_summary(summary)
    misses = [m for a in scenario.assertions if (m := a.check(summary))]
    if failure:
        print(f"run FAILED: {failure}", file=sys.stderr)
    for miss in misses:
        print(f"assertion missed: {miss}", file=sys.stderr)
    ok = failure is None and not misses
    print(
        f"run {'OK' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s; "
        f"bundle in {bundle.folder}"
    )
    return (0 if ok else 1), summary, bundle.folder


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.run --help``."""
    parser = argparse.ArgumentParser(
        prog="testbed.run",
        description="Run an MRKM scenario on a Mininet network of FRR routers (needs root): "
        "build the network, register every GM, play the timeline, write a run bundle with "
        "metrics and plots under results/, and check the scenario's assertions.",
    )
    parser.add_argument("--scenario", default="baseline", help="scenario name or YAML path")
    parser.add_argument(
        "--topo",
        default=None,
        help="topology name (e.g. line5, ring10, geant); default: the scenario's",
    )
    parser.add_argument("--out", default="results", help="root folder for run bundles")
    parser.add_argument("--prefix", default=None, help="namespace prefix (default mk<pid>)")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots")
    parser.add_argument(
        "--no-pim-auth",
        action="store_true",
        help="leave PIM unprotected: no AH shims, no PIM group (default: PIM under AH)",
    )
    parser.add_argument(
        "--registration",
        choices=REGISTRATION_MODES,
        default="oob",
        help="how GMs reach the GCKS: oob = the management network (default), in-band = "
        "over OSPF, routers starting with a shared bootstrap key that MRKM's keys replace",
    )
    parser.add_argument(
        "--bfd",
        action="store_true",
        help="BFD on every OSPF link (bfdd, 100 ms x 3): silent failures seen in about 0.3 s",
    )
    parser.add_argument(
        "--poll-period",
        type=float,
        default=None,
        metavar="S",
        help="seconds between neighbor-state polls of each router (default 0.1 up to 25 "
        "routers, then growing with the network so the polls do not saturate the host)",
    )
    args = parser.parse_args(argv)
    if args.poll_period is not None and not 0.01 <= args.poll_period <= 10:
        parser.error(f"--poll-period: {args.poll_period} s is outside 0.01 to 10 s")
    try:
        scenario = load_scenario(args.scenario)
        topology = get_topology(args.topo or scenario.topology)
        check_topology(scenario, topology)
    except (ScenarioError, TopologyError) as exc:
        parser.error(str(exc))
    if os.geteuid() != 0:
        parser.error("the Mininet testbed needs root (network namespaces, routing daemons)")
    prefix = args.prefix or f"mk{os.getpid() % 100000}"
    code, _, _ = run_scenario(
        scenario,
        topology,
        Path(args.out),
        prefix,
        not args.no_plots,
        not args.no_pim_auth,
        args.registration,
        args.bfd,
        args.poll_period,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
