"""Benchmark of the router sinks: install latency per sink next to the bare router call.

Needs root (network namespaces, real routing daemons). Every figure is paired
with a baseline measured in the same run, interleaved with the installs, on
the same daemon:

* ``bench_frr()``: one FRR 8.4.4 router (zebra, ospfd, ospf6d) in a namespace
  (tests/frr_support.py). Each round replays one rekey of an OSPFv3
  HMAC-SHA-256 group (the key chain call on receipt) and one of an OSPFv2
  Keyed-MD5 group (the switch call at T) through :class:`FrrSink`, on a
  virtual timeline 30 s per round so that the key chain holds what it holds
  in a real run. Baseline: the bare ``vtysh --vty_socket DIR -c 'configure
  terminal' -c 'key chain mrkm-bench'`` (one configuration command).
  Install latency is the wall time of ``FrrSink.install()`` (Python work,
  epoch check and the vtysh call); the vtysh share alone is reported too.
  The same rounds then run through a fresh sink with ``transport: vty``
  (sessions on the daemons' sockets, no process), against the same baseline.
  Target: one router call per rekey, install median <= 1.2 x bare median.
* ``bench_bird()``: two BIRD 2.0.12 routers in namespaces
  (tests/bird_support.py). Each round installs one rekey of one group
  (alternating OSPFv2 / OSPFv3, HMAC-SHA-256) through :class:`BirdSink`
  with its default client (``configure`` on BIRD's control socket) and with
  ``client: birdc``. Baseline: the bare ``birdc -s CTL configure``; the
  bare ``configure`` on the socket is reported too. Target: one router call
  per install, install median <= 1.2 x bare median.

Results: ``results/bench/<time>/bench-sinks.json`` and a table on stdout.
Usage: ``sudo .venv/bin/python tools/bench_sinks.py [--rounds 50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mrkm.keytable import KeyRow, KeyTable  # noqa: E402
from mrkm.sinks.frr import FrrProtocol, FrrSink  # noqa: E402

ATD, DTD, LIFETIME, ROUND = 5.0, 10.0, 600.0, 30.0


def stats(samples: Sequence[float]) -> dict[str, float]:
    """Median and p99 in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p99_ms": round(p99, 2),
        "min_ms": round(ms[0], 2),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _row(protocol: str, key_id: int, now: float) -> KeyRow:
    md5 = protocol == "ospfv2"
    return KeyRow(
        f"bench-{protocol}",
        protocol,
        key_id,
        "md5" if md5 else "hmac-sha-256",
        os.urandom(16 if md5 else 32),
        now,
        now + ATD,
        now + LIFETIME,
        now + LIFETIME,
    )


def bench_frr(rounds: int, workdir: Path) -> dict[str, Any]:
    """FrrSink install latency vs the bare vtysh call, on a real FRR in a namespace."""
    from tests.frr_support import frr_lab, start_frr

    with frr_lab(workdir, "b") as net:
        r1 = net.add_router("r1")
        net.add_router("r2")
        ifname, _ = net.link("r1", "r2")
        frr = start_frr(r1, [ifname], [ifname])
        sink = FrrSink("r1-frr", frr.vty, FrrProtocol((ifname,)), FrrProtocol((ifname,)))
        bare_cmd = ["vtysh", "--vty_socket", str(frr.vty)]
        bare_cmd += ["-c", "configure terminal", "-c", "key chain mrkm-bench"]

        def bare() -> None:
            subprocess.run(bare_cmd, capture_output=True, check=True)

        table = KeyTable()
        now = time.time()
        for protocol in ("ospfv2", "ospfv3"):
            table.install(_row(protocol, 1, now - ATD), DTD)
        first = sink.install(list(table.rows.values()), now)  # reads, then writes

        samples: dict[str, list[float]] = {k: [] for k in ("bare", "v3", "v2", "v3_vtysh")}
        samples["v2_vtysh"] = []
        calls: list[int] = []
        for i in range(rounds):
            now += ROUND
            samples["bare"].append(timed(bare)[0])
            # OSPFv3 rekey received: the key chain gets the new key and the old key's end.
            table.expire(now)
            table.install(_row("ospfv3", i + 2, now), DTD)
            start = time.perf_counter()
            result = sink.install(list(table.rows.values()), now)
            samples["v3"].append(time.perf_counter() - start)
            samples["v3_vtysh"].append(result.seconds)
            calls.append(result.calls)
            samples["bare"].append(timed(bare)[0])
            # OSPFv2 rekey: nothing on receipt, the switch call at T.
            table.install(_row("ospfv2", i + 2, now), DTD)
            assert sink.install(list(table.rows.values()), now).calls == 0
            start = time.perf_counter()
            result = sink.install(list(table.rows.values()), now + ATD)
            samples["v2"].append(time.perf_counter() - start)
            samples["v2_vtysh"].append(result.seconds)
            calls.append(result.calls)
        # The same rounds with the vty transport (a session per daemon, no process),
        # from a fresh sink that reads the router's state first, as a restarted GM would.
        vty = FrrSink(
            "r1-vty", frr.vty, FrrProtocol((ifname,)), FrrProtocol((ifname,)), transport="vty"
        )
        vty.install(list(table.rows.values()), now)
        samples["vty"] = []
        for i in range(rounds):
            now += ROUND
            table.expire(now)
            table.install(_row("ospfv3", rounds + i + 2, now), DTD)
            table.install(_row("ospfv2", rounds + i + 2, now), DTD)
            for at in (now, now + ATD):  # the OSPFv3 rekey, then the OSPFv2 switch at T
                start = time.perf_counter()
                result = vty.install(list(table.rows.values()), at)
                samples["vty"].append(time.perf_counter() - start)
                assert result.ok and result.calls == 1, result
        frr.stop()

    installs = samples["v2"] + samples["v3"]
    report = {
        "router": "FRR 8.4.4 (zebra + ospfd + ospf6d), one namespace",
        "rounds": rounds,
        "bare_vtysh_one_command": stats(samples["bare"]),
        "install_ospfv2_switch": stats(samples["v2"]),
        "install_ospfv3_rekey": stats(samples["v3"]),
        "install_all": stats(installs),
        "vtysh_share_ospfv2": stats(samples["v2_vtysh"]),
        "vtysh_share_ospfv3": stats(samples["v3_vtysh"]),
        "router_calls_per_rekey": sorted(set(calls)),
        "first_install_calls": first.calls,
    }
    all_stats, bare_stats = stats(installs), stats(samples["bare"])
    report["ratio_median_install_to_bare"] = round(
        all_stats["median_ms"] / bare_stats["median_ms"], 3
    )
    report["install_vty_all"] = vty_stats = stats(samples["vty"])
    report["ratio_median_vty_install_to_bare"] = round(
        vty_stats["median_ms"] / bare_stats["median_ms"], 3
    )
    return report


def bench_bird(rounds: int, workdir: Path) -> dict[str, Any] | None:
    """BIRD 2.0.12: ``bird`` sink install latency vs the bare ``birdc configure``, same run.

    Two BIRD routers (r1-r2, OSPFv2 HMAC-SHA-256 and the OSPFv3 trailer,
    tests/bird_support.py) with Full adjacencies. Each install is one rekey
    of one group (alternating), as a GM installs it: the old key trimmed,
    the new one added, so one include file changes (atomic write with fsync)
    and BIRD is told once. Per round, on r1's BIRD, interleaved: an install
    with the default client (``configure`` over BIRD's control socket), a
    bare ``birdc -s CTL configure`` (the baseline), an install with
    ``client: birdc``, and a bare ``configure`` over the socket. Prints its
    own table. Target: one router call per install, install median <= 1.2 x
    the bare birdc median.
    """
    from mrkm.sinks import build_sinks
    from mrkm.sinks.bird import BirdSink
    from testbed.processes import wait_until
    from tests.bird_support import (
        BirdCli,
        BirdFleet,
        NeighborSampler,
        line_adjacencies,
        line_topology,
    )
    from tests.lab import lab

    groups = {"ospfv2": "bench-ospfv2", "ospfv3": "bench-ospfv3"}
    workdir.mkdir(parents=True, exist_ok=True)
    with lab(workdir, "bb") as net, BirdFleet() as fleet:
        routers = line_topology(net, 2)
        birds = [fleet.start(r) for r in routers]

        def sink_for(entry: dict[str, Any]) -> BirdSink:
            (sink,) = build_sinks([entry])
            assert isinstance(sink, BirdSink)
            return sink

        now = time.time()
        rows = {
            protocol: [
                KeyRow(
                    group,
                    protocol,
                    1,
                    "hmac-sha-256",
                    os.urandom(32),
                    now,
                    now,
                    now + 600,
                    now + 600,
                )
            ]
            for protocol, group in groups.items()
        }
        for bird in birds:
            sink_for(bird.sink_entry(groups)).install([*rows["ospfv2"], *rows["ospfv3"]], now)
        expected = line_adjacencies(routers)
        with NeighborSampler(birds) as sampler:

            def all_full() -> bool:
                return sampler.full(expected, "ospfv2") and sampler.full(expected, "ospfv3")

            wait_until(all_full, 30, "Full adjacencies")
            t_full = time.time()
            bird = birds[0]
            by_socket = sink_for(bird.sink_entry(groups))
            by_birdc = sink_for(bird.sink_entry(groups, client="birdc"))
            samples: dict[str, list[float]] = {
                "install": [], "install_birdc_client": [], "bare_birdc": [], "bare_socket": []
            }  # fmt: skip
            calls: set[int] = set()
            next_id = {"ospfv2": 1, "ospfv3": 1}

            def rekey(i: int) -> list[KeyRow]:
                protocol = ("ospfv2", "ospfv3")[i % 2]
                now = time.time()
                next_id[protocol] = next_id[protocol] % 255 + 1
                old, start = rows[protocol][-1], now + 1.0
                trimmed = KeyRow(
                    old.group, protocol, old.key_id, old.algorithm, old.key,
                    old.accept_start, old.send_start, start, start + 2,
                )  # fmt: skip
                new = KeyRow(
                    old.group, protocol, next_id[protocol], "hmac-sha-256", os.urandom(32),
                    now, start, now + 600, now + 600,
                )  # fmt: skip
                rows[protocol] = [trimmed, new]
                return [*rows["ospfv2"], *rows["ospfv3"]]

            def install(sink: BirdSink, key: str, table: list[KeyRow]) -> None:
                t0 = time.perf_counter()
                result = sink.install(table, time.time())
                samples[key].append(time.perf_counter() - t0)
                assert result.ok, result
                calls.add(result.calls)

            def bare_birdc() -> None:
                t0 = time.perf_counter()
                done = subprocess.run(
                    ["birdc", "-s", str(bird.ctl), "configure"], capture_output=True, text=True
                )
                samples["bare_birdc"].append(time.perf_counter() - t0)
                assert "Reconfigured" in done.stdout, done.stdout

            def bare_socket() -> None:
                t0 = time.perf_counter()
                cli = BirdCli(bird.ctl)
                reply = cli.command("configure")
                cli.close()
                samples["bare_socket"].append(time.perf_counter() - t0)
                assert "Reconfigured" in reply, reply

            for i in range(rounds):
                install(by_socket, "install", rekey(2 * i))
                bare_birdc()
                install(by_birdc, "install_birdc_client", rekey(2 * i + 1))
                bare_socket()
            t_end = time.time()
            still_full = all_full()
        drops = [d for p in groups for d in sampler.drops(expected, p, t_full, t_end)]

    figures = {key: stats(values) for key, values in samples.items()}
    bare = figures["bare_birdc"]
    report: dict[str, Any] = {
        "router": "BIRD 2.0.12 (OSPFv2 + OSPFv3), two namespaces, Full adjacency",
        "rounds": rounds,
        "baseline": "bare birdc -s CTL configure (a birdc process per call)",
        "bare_birdc_configure": bare,
        "install": figures["install"],
        "install_birdc_client": figures["install_birdc_client"],
        "bare_socket_configure": figures["bare_socket"],
        "router_calls_per_install": sorted(calls),
        "ratio_median_install_to_bare": round(
            figures["install"]["median_ms"] / bare["median_ms"], 3
        ),
        "ratio_p99_install_to_bare": round(figures["install"]["p99_ms"] / bare["p99_ms"], 3),
        "ratio_median_birdc_client_to_bare": round(
            figures["install_birdc_client"]["median_ms"] / bare["median_ms"], 3
        ),
        "adjacencies_full_after": still_full,
        "adjacency_drops": len(drops),
    }
    print(f"BIRD sink, {rounds} installs per client (ms, median / p99):")
    for key, label in (
        ("bare_birdc_configure", "bare birdc configure (baseline)"),
        ("install", "install (client: socket, default)"),
        ("install_birdc_client", "install (client: birdc)"),
        ("bare_socket_configure", "bare configure on the socket"),
    ):
        print(f"  {label:34} {report[key]['median_ms']:7.2f} / {report[key]['p99_ms']:7.2f}")
    print(
        f"  router calls per install: {report['router_calls_per_install']}; install / bare "
        f"(median): {report['ratio_median_install_to_bare']} (p99: "
        f"{report['ratio_p99_install_to_bare']}); adjacency drops: {len(drops)}"
    )
    return report


def run(rounds: int = 50) -> dict[str, Any]:
    """Both sink benchmarks with ``rounds`` rekeys each (root); return the report."""
    if os.geteuid() != 0:
        raise PermissionError("bench_sinks needs root (network namespaces, routing daemons)")
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="mrkm-bench-sinks-") as tmp:
        report["frr"] = bench_frr(rounds, Path(tmp) / "frr")
        bird = bench_bird(rounds, Path(tmp) / "bird")
        if bird is not None:
            report["bird"] = bird
    report["load_avg_after"] = os.getloadavg()
    return report


def print_table(report: dict[str, Any]) -> None:
    """The FRR and BIRD figures, median / p99 in ms."""
    frr = report["frr"]
    print(f"FRR sink, {frr['rounds']} rekeys per protocol (ms, median / p99):")
    for key, label in (
        ("bare_vtysh_one_command", "bare vtysh, one command"),
        ("install_ospfv2_switch", "install: OSPFv2 switch at T"),
        ("install_ospfv3_rekey", "install: OSPFv3 key chain rekey"),
        ("install_all", "install: all"),
        ("vtysh_share_ospfv2", "  of which vtysh (v2)"),
        ("vtysh_share_ospfv3", "  of which vtysh (v3)"),
        ("install_vty_all", "install: all, transport vty"),
    ):
        row = frr[key]
        print(f"  {label:34} {row['median_ms']:7.2f} / {row['p99_ms']:7.2f}")
    print(
        f"  router calls per rekey: {frr['router_calls_per_rekey']}; "
        f"install / bare (median): {frr['ratio_median_install_to_bare']}; "
        f"transport vty / bare: {frr['ratio_median_vty_install_to_bare']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench", help="output folder")
    parser.add_argument("--rounds", type=int, default=50, help="rekeys per protocol")
    args = parser.parse_args()
    try:
        report = run(args.rounds)
    except PermissionError as exc:
        sys.exit(str(exc))
    print_table(report)
    out = REPO / args.out / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-sinks.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out / 'bench-sinks.json'}")


if __name__ == "__main__":
    main()
