"""``make bench``: every MRKM benchmark in one run, one ``bench.json`` and its plots.

Each figure is a ratio against a baseline measured in the same run, because
these machines are noisy (MRKM issue 8):

* codec and crypto operations against the raw ``cryptography`` calls
  (:mod:`tools.bench_core`);
* GCKS registrations per second on one core, with X25519 + PSK and with
  X25519 + Ed25519 certificates, against the crypto-only ceiling of the same
  registration; GCKS CPU per rekey for N = 10, 100, 1000 (slope per member);
  eviction rekeys with the key tree (wrapped keys and octets against
  2⌈log2 N⌉); GM CPU per rekey against raw verify + decrypt + unwrap
  (:mod:`tools.bench_gcks`);
* router sinks' install latency against the bare router call
  (:mod:`tools.bench_sinks`; root only, skipped with a note otherwise).

Writes ``results/bench/<UTC>/bench.json`` (figures, baselines, ratios, host,
MRKM commit, package versions) and PNG/PDF plots drawn with
:mod:`testbed.style`. Usage: ``PYTHONPATH=. .venv/bin/python tools/bench_all.py``
(``--quick`` for a smoke run, ``--no-sinks`` to skip the routers).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from testbed import style  # noqa: E402
from tools import bench_core, bench_gcks, bench_sinks  # noqa: E402

__all__ = ["collect", "figures", "main", "plot"]

PACKAGES = ("cryptography", "hypothesis", "matplotlib", "pyyaml")


def _commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def _host() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "load_avg": list(os.getloadavg()),
    }


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` against ``xs``."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def figures(
    core: dict[str, Any], gcks: dict[str, Any], sinks: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Flatten the three reports into rows of (figure, value, baseline, ratio)."""
    rows: list[dict[str, Any]] = []

    def add(name: str, value: float, unit: str, baseline: str, base: float, ratio: float) -> None:
        rows.append(
            {
                "figure": name,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "baseline_value": base,
                "ratio": round(ratio, 3),
            }
        )

    for r in core["rows"]:
        add(r["operation"], r["us"], "µs", r["baseline"], r["baseline_us"], r["ratio"])
    for key, r in gcks["registration"].items():
        add(
            f"GCKS registrations/s on one core ({r['auth']})",
            r["per_second_one_core"],
            "1/s",
            "crypto-only ceiling of the same registration, same run",
            r["ceiling_per_second"],
            r["ratio_to_ceiling"],
        )
        rows[-1]["key"] = f"registration_{key}"
    for r in gcks["rekey"]:
        n = r["members"]
        tree = 2 * math.ceil(math.log2(n))
        add(f"GCKS CPU per periodic rekey, N={n}", r["rekey_us"], "µs", "", 0, 0)
        add(
            f"eviction rekey wrapped keys, N={n}",
            r["eviction_wrapped_keys"],
            "keys",
            "key tree bound 2*ceil(log2 N)",
            tree,
            r["eviction_wrapped_keys"] / tree,
        )
        add(
            f"eviction rekey octets, N={n}",
            r["eviction_octets"],
            "octets",
            "one wrapped key per member (N)",
            n,
            r["eviction_wrapped_keys"] / n,
        )
    gm = gcks["gm"]
    add(
        "GM CPU per accepted rekey",
        gm["gm_rekey_us"],
        "µs",
        "raw Ed25519 verify + AES-GCM open + 2 unwraps",
        gm["raw_verify_decrypt_unwrap_us"],
        gm["ratio"],
    )
    for sink in ("frr", "bird"):
        s = (sinks or {}).get(sink)
        if not s:
            continue
        install = s.get("install_all") or s.get("install") or {}
        bare = s.get("bare_vtysh_one_command") or s.get("bare_birdc_configure") or {}
        if install and bare:
            add(
                f"{sink} sink install median",
                install["median_ms"],
                "ms",
                f"bare {sink} router call, same run",
                bare["median_ms"],
                install["median_ms"] / bare["median_ms"],
            )
        vty = s.get("install_vty_all") or {}
        if vty and bare:
            add(
                f"{sink} sink install median, transport vty",
                vty["median_ms"],
                "ms",
                f"bare {sink} router call, same run",
                bare["median_ms"],
                vty["median_ms"] / bare["median_ms"],
            )
    return rows


def collect(quick: bool, sinks: bool, core_budget: float) -> dict[str, Any]:
    """Run every benchmark; return the bench.json document (without plots)."""
    started = time.time()
    doc: dict[str, Any] = {"host_before": _host(), "mrkm": _commit(), "versions": _versions()}
    print("== codec and crypto (bench_core)", flush=True)
    core = bench_core.run(core_budget)
    bench_core.print_table(core)
    print("== GCKS and GM cores (bench_gcks)", flush=True)
    gcks = bench_gcks.run(quick)
    bench_gcks.print_table(gcks)
    sink_report: dict[str, Any] | None = None
    if not sinks:
        doc["sinks_skipped"] = "--no-sinks"
    elif os.geteuid() != 0:
        doc["sinks_skipped"] = "not root: router sinks need namespaces and routing daemons"
    else:
        print("== router sinks (bench_sinks)", flush=True)
        sink_report = bench_sinks.run(10 if quick else 50)
        bench_sinks.print_table(sink_report)
    if "sinks_skipped" in doc:
        print(f"== router sinks skipped: {doc['sinks_skipped']}")
    ns = [float(r["members"]) for r in gcks["rekey"]]
    doc.update(
        core=core,
        gcks=gcks,
        sinks=sink_report,
        rekey_slope_us_per_member_lsq=round(_slope(ns, [r["rekey_us"] for r in gcks["rekey"]]), 4),
        figures=figures(core, gcks, sink_report),
        host_after=_host(),
        seconds=round(time.time() - started, 1),
        quick=quick,
    )
    # A saturated host makes every absolute figure suspect (ARCHITECTURE.md,
    # "Measurements"); the same-run ratios are what to read then.
    cpus = os.cpu_count() or 1
    busiest = max(doc["host_before"]["load_avg"][0], doc["host_after"]["load_avg"][0])
    doc["valid"] = busiest <= cpus
    if not doc["valid"]:
        print(f"== host saturated: 1-min load {busiest:.1f} on {cpus} CPUs; run marked invalid")
    return doc


def plot(doc: dict[str, Any], folder: Path) -> list[Path]:
    """Rekey CPU against N, eviction cost against N, registrations/s against the ceiling."""
    manifest = {
        "scenario": "bench",
        "seed": "-",
        "versions": {"mrkm": doc["mrkm"]},
        "valid": doc.get("valid"),
    }
    rekeys = doc["gcks"]["rekey"]
    ns = [r["members"] for r in rekeys]
    written: list[Path] = []
    with style.context():
        fig = style.figure(3.0)
        ax = fig.subplots()
        ax.plot(ns, [r["rekey_us"] for r in rekeys], "o-", color=style.COLORS["rekey"])
        ax.set(xscale="log", xlabel="group members N", ylabel="GCKS CPU per rekey (µs)")
        ax.set_ylim(bottom=0)
        slope = doc["rekey_slope_us_per_member_lsq"]
        ax.set_title(f"One multicast rekey for all: slope {slope:+.4f} µs per member")
        style.caption(fig, manifest, f"N = {', '.join(map(str, ns))}")
        written += style.save(fig, folder, "rekey-cpu-vs-n")

        fig = style.figure(3.0)
        left = fig.subplots()
        tree = [2 * math.ceil(math.log2(n)) for n in ns]
        wrapped = [r["eviction_wrapped_keys"] for r in rekeys]
        left.plot(ns, wrapped, "o-", color=style.COLORS["accept"], label="wrapped keys")
        left.plot(ns, tree, "--", color=style.COLORS["key"], label="2⌈log2 N⌉")
        left.set(xscale="log", xlabel="group members N", ylabel="wrapped keys per eviction")
        left.set_ylim(bottom=0)
        right = left.twinx()
        right.plot(
            ns,
            [r["eviction_octets"] for r in rekeys],
            "s:",
            color=style.COLORS["install"],
            label="octets",
        )
        right.set_ylabel("octets per eviction rekey")
        right.set_ylim(bottom=0)
        handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        left.legend(handles=handles, loc="upper left")
        left.set_title("Eviction with the key tree: cost grows with log N, not N")
        style.caption(fig, manifest)
        written += style.save(fig, folder, "eviction-vs-n")

        fig = style.figure(2.8)
        ax = fig.subplots()
        regs = list(doc["gcks"]["registration"].values())
        labels = [r["auth"] for r in regs]
        xs = range(len(regs))
        ax.bar([x - 0.2 for x in xs], [r["per_second_one_core"] for r in regs], 0.4,
               color=style.COLORS["accept"], label="GCKS (KeyServer.receive + UDP)")  # fmt: skip
        ax.bar([x + 0.2 for x in xs], [r["ceiling_per_second"] for r in regs], 0.4,
               color=style.COLORS["rekey"], label="crypto-only ceiling, same run")  # fmt: skip
        for x, r in zip(xs, regs, strict=True):
            ax.annotate(f"{r['ratio_to_ceiling']:.2f}", (x - 0.2, r["per_second_one_core"]),
                        ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel("registrations per second, one core")
        ax.legend(loc="upper right")
        ax.set_title("Registration rate against its crypto ceiling")
        style.caption(fig, manifest)
        written += style.save(fig, folder, "registrations-vs-ceiling")
    return written


def main(argv: list[str] | None = None) -> int:
    """``tools/bench_all.py --help``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "results" / "bench"), help="output root")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument("--no-sinks", action="store_true", help="skip the router sinks")
    parser.add_argument("--core-budget", type=float, default=0.3, help="s per core measurement")
    args = parser.parse_args(argv)
    doc = collect(args.quick, not args.no_sinks, args.core_budget)
    folder = Path(args.out) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder.mkdir(parents=True, exist_ok=True)
    doc["plots"] = [p.name for p in plot(doc, folder)]
    (folder / "bench.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written: {folder / 'bench.json'} and {len(doc['plots'])} plots ({doc['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
