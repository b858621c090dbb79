"""Run a scenario on a Mininet network of FRR routers: the main job (``make run-scenario``).

1. Load the scenario (``scenarios/<name>.yaml``) and its topology (or the
   one ``--topo`` names); create the run bundle
   ``results/<scenario>/<UTC>-s<seed>/``.
2. Build the network (:mod:`testbed.network`): FRR with OSPF and PIM on
   every router, then the GCKS and one GM per router; wait until every GM
   is registered and OSPF is Full everywhere (only MRKM's keys allow that).
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
import os
import sys
import time
from pathlib import Path
from typing import Any

from testbed.bundle import RunBundle, fault
from testbed.collectors import Collectors, RouterTap, router_poll
from testbed.network import Network
from testbed.plots import plot_run
from testbed.scenario import Action, Scenario, ScenarioError, load_scenario
from testbed.summary import print_summary
from topologies.model import Topology, TopologyError
from topologies.registry import get_topology

__all__ = ["main", "run_scenario"]


def _progress(t0: float, text: str) -> None:
    print(f"  [{time.monotonic() - t0:6.1f} s] {text}", flush=True)


def _link_interfaces(topology: Topology, pair: list[str]) -> list[tuple[str, str]]:
    """(router, interface) for both ends of the link between ``pair``."""
    a, b = (str(x) for x in pair)
    for link in topology.links:
        if {link.a, link.b} == {a, b}:
            return [(a, link.interface(a)), (b, link.interface(b))]
    raise ScenarioError(f"no link between {a} and {b} in topology {topology.name}")


class _Player:
    """Plays timeline actions on a running network and records faults."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.faults: list[dict[str, Any]] = []
        self._open: dict[tuple[str, ...], dict[str, Any]] = {}
        self._rules: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {}

    def play(self, action: Action) -> str:
        handler = getattr(self, "_" + action.do.replace("-", "_"))
        return str(handler(action.args))

    def _rekey(self, args: dict[str, Any]) -> str:
        sent = self.net.rekey(str(args["group"]))
        return f"rekey of {args['group']} (Message ID {sent.get('message_id')}) accepted by all"

    def _set_link(self, pair: list[str], state: str) -> list[tuple[str, str]]:
        ends = _link_interfaces(self.net.topology, pair)
        for router, ifname in ends:
            self.net.run(router, "ip", "link", "set", ifname, state)
        return ends

    def _link_down(self, args: dict[str, Any]) -> str:
        ends = self._set_link(args["link"], "down")
        key = ("link", *sorted(args["link"]))
        self._open[key] = fault("link_down", time.time(), None, [r for r, _ in ends])
        return f"link {'-'.join(args['link'])} down"

    def _link_up(self, args: dict[str, Any]) -> str:
        self._set_link(args["link"], "up")
        self._close(("link", *sorted(args["link"])))
        return f"link {'-'.join(args['link'])} up"

    def _loss(self, args: dict[str, Any]) -> str:
        """Random loss on both directions of a link (iptables statistic; no netem here).

        Rules drop outgoing packets on each end's interface, both locally made
        (OSPF, PIM) and forwarded (rekeys); a new loss for the link replaces
        the previous rules, 0 % removes them.
        """
        percent = float(args["percent"])
        key = ("loss", *sorted(args["link"]))
        for router, rule in self._rules.pop(key, []):
            self.net.run(router, "iptables", "-D", *rule)
        ends = _link_interfaces(self.net.topology, args["link"])
        if percent > 0:
            rules = []
            for router, ifname in ends:
                for chain in ("OUTPUT", "FORWARD"):
                    rule = [
                        chain,
                        "-o",
                        ifname,
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        f"{percent / 100:.4f}",
                        "-j",
                        "DROP",
                    ]
                    self.net.run(router, "iptables", "-A", *rule)
                    rules.append((router, rule))
            self._rules[key] = rules
        self._close(key)
        if percent > 0:
            self._open[key] = fault(
                "loss", time.time(), None, [r for r, _ in ends], percent=percent
            )
        return f"loss {percent:g} % on {'-'.join(args['link'])}"

    def _restart_gm(self, args: dict[str, Any]) -> str:
        router = str(args["router"])
        gm = self.net.gms[router]
        start = time.time()
        gm.stop()
        gm.start()
        self.faults.append(fault("gm_restart", start, time.time(), [router]))
        return f"GM of {router} restarted"

    def _kill_gm(self, args: dict[str, Any]) -> str:
        router = str(args["router"])
        self.net.gms[router].stop()
        self._open[("gm", router)] = fault("gm_down", time.time(), None, [router])
        return f"GM of {router} stopped"

    def _restart_gcks(self, args: dict[str, Any]) -> str:
        raise ScenarioError("restart-gcks is not supported on the Mininet testbed yet")

    def _close(self, key: tuple[str, ...]) -> None:
        record = self._open.pop(key, None)
        if record is not None:
            record["until"] = round(time.time(), 6)
            self.faults.append(record)

    def finish(self) -> list[dict[str, Any]]:
        for key in list(self._open):
            self._close(key)
        return self.faults


def _derived(summary: dict[str, Any]) -> dict[str, Any]:
    """Numbers scenario assertions can name, derived from the metrics summary."""
    count = summary.get("rekey_count") or 0
    incomplete = len(summary.get("incomplete_rekeys") or [])
    install = (summary.get("key_convergence_ms") or {}).get("install") or {}
    accept = (summary.get("key_convergence_ms") or {}).get("accept") or {}
    return {
        "rekeys_converged_fraction": round((count - incomplete) / count, 4) if count else 0.0,
        "key_convergence_max_s": (install.get("max") or 0) / 1000 if install else None,
        "accept_convergence_max_s": (accept.get("max") or 0) / 1000 if accept else None,
    }


def run_scenario(
    scenario: Scenario, topology: Topology, out: Path, prefix: str, plots: bool = True
) -> tuple[int, dict[str, Any], Path]:
    """Run one scenario; return (exit code, summary, bundle folder)."""
    params = {
        "topology": topology.name,
        "routers": len(topology.routers),
        "links": len(topology.links),
        "groups": list(scenario.groups),
        "timeline": [{"at": a.at, "do": a.do, **a.args} for a in scenario.timeline],
        "duration": scenario.duration,
    }
    bundle = RunBundle.create(out, scenario.name, scenario.seed, params)
    workdir = Path(f"/tmp/mrkm-run-{prefix}")  # keys and PSKs stay out of results/
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    print(
        f"MRKM scenario '{scenario.name}' on {topology.name} "
        f"({len(topology.routers)} routers, {len(topology.links)} links)"
    )
    print(f"  question: {scenario.question}")
    print(f"  bundle: {bundle.folder}")
    failure: str | None = None
    logs: dict[str, Path] = {}
    player: _Player | None = None
    timings: dict[str, float] = {}
    try:
        with Network(topology, workdir, prefix=prefix) as net:
            _progress(t0, "network built, FRR started; waiting for PIM")
            net.wait_pim()
            net.start_mrkm(groups=list(scenario.groups))
            _progress(t0, f"all {len(topology.routers)} GMs registered")
            net.wait_ospf_full()
            _progress(t0, "OSPF Full on every link (with MRKM's keys)")
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
            collectors = Collectors(bundle.folder, taps).start()
            gcks_pid = net.gcks.pid() if net.gcks is not None else None
            if gcks_pid is not None:
                collectors.watch_process("gcks", gcks_pid)
            player = _Player(net)
            start = time.monotonic()
            try:
                for action in scenario.timeline:
                    delay = start + action.at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)  # the timeline's own schedule, not a readiness wait
                    _progress(t0, f"t+{action.at:g} s: {player.play(action)}")
                remaining = start + scenario.duration - time.monotonic()
                if remaining > 0:
                    _progress(t0, f"observing until t+{scenario.duration:g} s")
                    time.sleep(remaining)
            finally:
                collectors.stop()
            timings = dict(net.timings)
            logs = {p.name: p for p in sorted(workdir.glob("*.jsonl"))}
            logs |= {p.name: p for p in sorted(workdir.glob("*.stderr"))}
    except (TimeoutError, RuntimeError, ScenarioError, TopologyError, OSError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
        logs = logs or {p.name: p for p in sorted(workdir.glob("*.jsonl"))}
    _progress(t0, "network torn down; computing metrics")
    faults = player.finish() if player is not None else []
    summary = bundle.finish(
        logs, failure=failure, testbed_events=faults, extra={"timings_s": timings}
    )
    summary |= _derived(summary)
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
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
        topology = get_topology(args.topo or scenario.topology)
    except (ScenarioError, TopologyError) as exc:
        parser.error(str(exc))
    if os.geteuid() != 0:
        parser.error("the Mininet testbed needs root (network namespaces, routing daemons)")
    prefix = args.prefix or f"mk{os.getpid() % 100000}"
    code, _, _ = run_scenario(scenario, topology, Path(args.out), prefix, not args.no_plots)
    return code


if __name__ == "__main__":
    sys.exit(main())
