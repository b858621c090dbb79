"""Plots of one run, drawn from its run folder alone (STYLE.md item 15).

``python -m testbed.plots results/<scenario>/<run> [...]`` writes into each
run's ``plots/``:

* ``key-convergence.{png,pdf}``: CDF over (rekey, GM) pairs of the time from
  the GCKS's send to the GM's accept, the router's install and (with
  captures) the router's first packet with the new key, from ``members.csv``;
* ``timeline.{png,pdf}``: one row per router: the key id it sends (from the
  captures; without them, the key its key table schedules for sending),
  its accepts, the GCKS's rekeys, adjacencies that were not Full, and
  injected faults as shaded spans.

Only files of the run folder are read: ``manifest.json``, ``members.csv``,
``events.jsonl``, ``wire/wire.jsonl``, ``samples/``. The look comes from
:mod:`testbed.style`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from testbed import style
from testbed.metrics import adjacency_flaps, read_jsonl

__all__ = [
    "MAX_TIMELINE_ROWS",
    "key_held",
    "key_schedule",
    "main",
    "plot_cdf",
    "plot_run",
    "plot_timeline",
]

MAX_TIMELINE_ROWS = 40  # routers drawn in one timeline; the rest are named in the caption
_LATENCIES = (
    ("accept_ms", "accept", "GM accepted the rekey"),
    ("install_ms", "install", "router confirmed the key"),
    ("wire_ms", "wire", "router's first packet with the key"),
)


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _natural(name: str) -> list[Any]:
    """Sort key: r2 before r10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


# -- key convergence CDF --------------------------------------------------------------------------


def plot_cdf(folder: Path, manifest: Mapping[str, Any] | None = None) -> list[Path]:
    """The key-convergence CDF of the run in ``folder``; [] when no GM accepted any rekey."""
    manifest = _manifest(folder) if manifest is None else manifest
    rows = _csv(folder / "members.csv")
    series = {
        column: sorted(float(r[column]) for r in rows if r.get(column))
        for column, _, _ in _LATENCIES
    }
    if not any(series.values()):
        return []
    rekeys = len({r["rekey"] for r in rows})
    members = len({r["node"] for r in rows})
    everything = [v for values in series.values() for v in values]
    with style.context():
        fig = style.figure(3.6)
        ax = fig.add_subplot()
        for column, color, label in _LATENCIES:
            values = series[column]
            if not values:
                continue
            ys = [i / len(values) for i in range(1, len(values) + 1)]
            ax.step(
                [values[0], *values],
                [0.0, *ys],
                where="post",
                color=style.COLORS[color],
                label=f"{label} (n={len(values)})",
            )
        positive = [v for v in everything if v > 0]
        if positive and max(positive) / min(positive) > 100:
            ax.set_xscale("log")
        ax.set_xlabel("time after the GCKS sent the rekey (ms)")
        ax.set_ylabel("fraction of (rekey, GM) pairs")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"Key convergence: {rekeys} rekeys × {members} GMs")
        ax.legend(loc="best")
        style.caption(fig, manifest, f"N = {rekeys} rekeys, {members} GMs")
        return style.save(fig, folder / "plots", "key-convergence")


# -- timeline -------------------------------------------------------------------------------------


def key_schedule(
    events: Sequence[Mapping[str, Any]], node: str
) -> dict[str, list[tuple[float, float]]]:
    """Per protocol, the key id ``node``'s key table schedules for sending, as (t, key id)
    steps (NaN: no key), from its ``keys_installed`` rows (the last version of each row wins)."""
    rows: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for e in events:
        if e["event"] == "keys_installed" and e.get("node") == node:
            for row in e.get("rows", []):
                rows[(row.get("group", ""), row["protocol"], row["key_id"])] = row
    out: dict[str, list[tuple[float, float]]] = {}
    for proto in sorted({p for _, p, _ in rows}):
        mine = [r for (_, p, _), r in rows.items() if p == proto]
        edges = sorted({r["send_start"] for r in mine} | {r["send_end"] for r in mine})
        steps: list[tuple[float, float]] = []
        for t in edges:
            sending = [r for r in mine if r["send_start"] <= t < r["send_end"]]
            newest = max(sending, key=lambda r: r["send_start"]) if sending else None
            key = math.nan if newest is None else float(newest["key_id"])
            same = bool(steps) and (
                steps[-1][1] == key or (math.isnan(key) and math.isnan(steps[-1][1]))
            )
            if not same:
                steps.append((t, key))
        out[proto] = steps
    return out


def _routers(folder: Path) -> dict[str, str]:
    """GM node -> router name, from ``samples/routers.json`` (written by the collectors)."""
    try:
        taps = json.loads((folder / "samples" / "routers.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {t["node"]: t["name"] for t in taps if t.get("node")}


def _steps(
    ax: Axes, steps: Sequence[tuple[float, float]], t0: float, t_end: float, **kw: Any
) -> None:
    if not steps:
        return
    xs = [t - t0 for t, _ in steps] + [t_end - t0]
    ys = [k for _, k in steps] + [steps[-1][1]]
    ax.step(xs, ys, where="post", **kw)


def key_held(
    events: Sequence[Mapping[str, Any]], node: str
) -> dict[str, list[tuple[float, float]]]:
    """Per group, the newest key id ``node`` holds, as (t, key id) steps, from its
    ``registration_completed`` and ``rekey_accepted`` events."""
    out: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        if e.get("node") != node or e["event"] not in ("registration_completed", "rekey_accepted"):
            continue
        if not e.get("key_ids"):
            continue
        steps = out.setdefault(e.get("group", ""), [])
        newest = float(max(e["key_ids"]))
        if not steps or newest > steps[-1][1]:
            steps.append((e["t"], newest))
    return out


@dataclass
class _Run:
    """What the timeline draws, read from one run folder."""

    events: list[dict[str, Any]]
    t0: float
    t_end: float
    wire: list[dict[str, Any]]
    flaps: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    rekeys: list[dict[str, Any]]
    router_of: dict[str, str]

    @classmethod
    def read(cls, folder: Path) -> _Run:
        """Time runs from the first event to the last event or fault end."""
        events = read_jsonl(folder / "events.jsonl")
        samples = sorted((folder / "samples").glob("neighbors-*.jsonl"))
        faults = [e for e in events if e["event"] == "fault"]
        t0 = events[0]["t"] if events else 0.0
        ends = [events[-1]["t"] if events else 0.0] + [f["until"] for f in faults if f.get("until")]
        return cls(
            events,
            t0,
            max(ends),
            read_jsonl(folder / "wire" / "wire.jsonl"),
            adjacency_flaps([r for p in samples for r in read_jsonl(p)]),
            faults,
            [e for e in events if e["event"] == "rekey_sent" and e.get("reason") != "heartbeat"],
            _routers(folder),
        )

    def router(self, node: str) -> str:
        """The router name of GM ``node``."""
        return self.router_of.get(node) or next(
            (w["router"] for w in self.wire if w.get("node") == node), node.split(".")[0]
        )


def _draw_router(ax: Axes, run: _Run, node: str) -> None:
    """One row of the timeline: spans, rekey lines, key ids held and sent, accepts."""
    t0, t_end, router = run.t0, run.t_end, run.router(node)
    for f in run.faults:
        if not f.get("targets") or router in f["targets"] or node in f["targets"]:
            end = f.get("until") or t_end
            ax.axvspan(f["t"] - t0, end - t0, color=style.COLORS["fault"], alpha=0.25, lw=0)
    for flap in run.flaps:
        if flap["router"] == router:
            end = flap["t_up"] or t_end
            ax.axvspan(flap["t_down"] - t0, end - t0, color=style.COLORS["down"], alpha=0.3, lw=0)
    for e in run.rekeys:
        ax.axvline(e["t"] - t0, color=style.COLORS["rekey"], lw=0.7, ls=":")
    for steps in key_held(run.events, node).values():
        _steps(ax, steps, t0, t_end, color=style.COLORS["accept"], lw=0.9, alpha=0.6)
    if run.wire:
        interfaces = sorted({(w["proto"], w.get("src", "")) for w in run.wire})
        for proto, src in interfaces:
            ls = "--" if proto == "ospfv3" else "-"
            mine = [
                w
                for w in run.wire
                if w.get("node") == node and (w["proto"], w.get("src", "")) == (proto, src)
            ]
            steps = [
                (w["t"], math.nan if w["key_id"] is None else float(w["key_id"])) for w in mine
            ]
            _steps(ax, steps, t0, t_end, color=style.COLORS["key"], ls=ls, lw=1.4)
    else:
        for proto, steps in key_schedule(run.events, node).items():
            clipped = [(max(t, t0), k) for t, k in steps if t <= t_end]
            ls = "--" if proto == "ospfv3" else "-"
            _steps(ax, clipped, t0, t_end, color=style.COLORS["key"], ls=ls, lw=1.4)
    accepted = [
        e
        for e in run.events
        if e["event"] == "rekey_accepted" and e.get("node") == node and e.get("key_ids")
    ]
    xs = [e["t"] - t0 for e in accepted]
    ax.plot(xs, [max(e["key_ids"]) for e in accepted], "v", color=style.COLORS["accept"], ms=4)
    label = router if router == node else f"{router}\n{node}"
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    ax.margins(y=0.25)


def plot_timeline(folder: Path, manifest: Mapping[str, Any] | None = None) -> list[Path]:
    """The per-router timeline of the run in ``folder``; [] when it has no GM."""
    manifest = _manifest(folder) if manifest is None else manifest
    run = _Run.read(folder)
    nodes = sorted(
        {
            e["node"]
            for e in run.events
            if e["event"] == "process_started" and e.get("role") == "gm"
        },
        key=_natural,
    )
    if not nodes:
        return []
    shown = nodes[:MAX_TIMELINE_ROWS]
    source = "wire" if run.wire else "key table"
    with style.context():
        fig = style.figure(1.2 + 0.75 * len(shown))
        axes = fig.subplots(len(shown), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
        for ax, node in zip(axes, shown, strict=True):
            _draw_router(ax, run, node)
        axes[-1].set_xlim(0, run.t_end - run.t0)
        axes[-1].set_xlabel("time since the first event of the run (s)")
        fig.supylabel("key id, one row per router", fontsize=8)
        axes[0].set_title("Timeline per router: key ids, adjacencies, faults")
        key = style.COLORS["key"]
        handles = [
            Line2D([], [], color=key, lw=1.4, label=f"key id sent ({source}); dashed: OSPFv3"),
            Line2D([], [], color=style.COLORS["accept"], lw=0.9, label="newest key id held"),
            Line2D([], [], color=style.COLORS["accept"], marker="v", ls="", label="rekey accepted"),
            Line2D([], [], color=style.COLORS["rekey"], ls=":", label="GCKS sent rekey"),
            Patch(color=style.COLORS["down"], alpha=0.3, label="adjacency not Full"),
            Patch(color=style.COLORS["fault"], alpha=0.25, label="fault"),
        ]
        fig.legend(handles=handles, loc="outside upper center", ncols=3)
        more = f", first {len(shown)} shown" if len(shown) < len(nodes) else ""
        style.caption(fig, manifest, f"{len(nodes)} routers{more}")
        return style.save(fig, folder / "plots", "timeline")


def plot_run(folder: Path) -> list[Path]:
    """Every plot of the run in ``folder``; return the files written."""
    manifest = _manifest(folder)
    return plot_cdf(folder, manifest) + plot_timeline(folder, manifest)


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.plots RUN_FOLDER...``."""
    parser = argparse.ArgumentParser(
        prog="testbed.plots", description="Plot run bundles (reads only the bundle)."
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders: results/<scenario>/<run>")
    args = parser.parse_args(argv)
    for folder in args.runs:
        if not (folder / "events.jsonl").is_file():
            parser.error(f"{folder} is not a run folder (no events.jsonl)")
        for path in plot_run(folder):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
