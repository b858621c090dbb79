"""Plots of campaigns, drawn from ``results/`` alone (``make plots``; STYLE.md item 15).

``python -m testbed.campaign_plots [--results results] [--campaign NAME]``
finds every campaign folder (``results/<campaign>/campaign.json``, written
by :mod:`testbed.campaign`) and writes into its ``plots/``, as PNG and PDF in
the shared style of :mod:`testbed.style`:

* ``key-convergence-cdf``: per grid point, the CDF over (rekey, GM) pairs of
  all used runs of the time from the GCKS's send to the router's install
  (each bundle's ``members.csv``);
* ``convergence-vs-loss`` (when the grid has a ``loss`` parameter with two
  or more values): key convergence of a run (its worst rekey, install) against
  the loss percent: every run as a dot, the mean with its Student-t 95 %
  confidence interval as error bars, one series per value of the other grid
  parameters;
* ``convergence-vs-group-size`` (when the runs have two or more group
  sizes): the same against the number of GMs, one series per loss;
* ``timeline-<point>``: for each point, the per-router timeline (key id in
  use, adjacency state, faults as shaded spans) of its run with the slowest
  key convergence, drawn by :func:`testbed.plots.plot_timeline` in the run's
  bundle and copied here;
* ``registration-storm``: registered GMs over time since the first GM
  started to register, one line per run, colored by grid point.

Used runs are those the campaign's statistics use: finished without failure
on a valid host, plus invalid ones when the campaign says ``include_invalid``
(every caption says how many of each).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from testbed import plots, style
from testbed.campaign import describe
from testbed.metrics import read_jsonl

__all__ = [
    "SERIES",
    "CampaignData",
    "main",
    "plot_campaign",
    "plot_cdf",
    "plot_registration_storm",
    "plot_timelines",
    "plot_versus",
    "registered_over_time",
]

#: Okabe-Ito colors for series that carry no meaning of their own (grid points).
SERIES = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _float(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _natural(text: str) -> list[Any]:
    """Sort key: ring5 before ring10, 5 before 10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


def _label_value(value: str) -> str:
    number = _float(value)
    return f"{number:g}" if number is not None else value


@dataclass
class CampaignData:
    """What the campaign plots read: ``campaign.json`` and ``campaign.csv`` of one campaign."""

    folder: Path
    info: dict[str, Any]
    rows: list[dict[str, str]]

    @classmethod
    def read(cls, folder: Path) -> CampaignData:
        """The campaign in ``folder``; ValueError naming the file when it is not one."""
        try:
            info = json.loads((folder / "campaign.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError) as exc:
            raise ValueError(f"{folder}: not a campaign folder (campaign.json: {exc})") from None
        return cls(folder, info, _csv(folder / "campaign.csv"))

    @property
    def name(self) -> str:
        """The campaign's name."""
        return str(self.info.get("name", self.folder.name))

    @property
    def params(self) -> list[str]:
        """The grid's parameter names, in the campaign file's order."""
        return list(self.info.get("grid") or {})

    def used(self) -> list[dict[str, str]]:
        """The runs the statistics use (module docstring)."""
        ok = {"ok", "invalid"} if self.info.get("include_invalid") else {"ok"}
        return [r for r in self.rows if r.get("status") in ok]

    def points(self) -> list[str]:
        """Grid point ids in the order of campaign.csv."""
        return list(dict.fromkeys(r["point"] for r in self.rows))

    def point_label(self, point: str, skip: Sequence[str] = ()) -> str:
        """``loss 10 %, topology ring5`` for a point, leaving out the ``skip`` parameters."""
        row = next(r for r in self.rows if r["point"] == point)
        parts = []
        for p in self.params:
            if p in skip:
                continue
            value = _label_value(row.get(p, ""))
            parts.append(f"loss {value} %" if p == "loss" else f"{p} {value}")
        return ", ".join(parts) or "all runs"

    def caption(self, fig: Figure, used: Sequence[Mapping[str, str]]) -> None:
        """The grey trace line: campaign, scenario, seeds, commit, runs used and their kinds."""
        manifest = {}
        if used:
            manifest = _json(self.folder / used[0]["bundle"] / "manifest.json")
        commit = ((manifest.get("versions") or {}).get("mrkm") or {}).get("commit") or "?"
        invalid = sum(1 for r in used if r.get("status") == "invalid")
        parts = [
            f"campaign {self.name}",
            f"scenario {Path(str(self.info.get('scenario_file', '?'))).stem}",
            f"seeds {', '.join(map(str, self.info.get('seeds', [])))}",
            f"MRKM {commit[:10]}",
            f"{len(used)} of {len(self.rows)} runs used",
        ]
        if invalid:
            parts.append(f"{invalid} of them INVALID (host saturated)")
        fig.supxlabel("  ·  ".join(parts), fontsize=7, color="#666666")


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# -- key convergence CDF per point ----------------------------------------------------------------


def plot_cdf(data: CampaignData) -> list[Path]:
    """Per point, the CDF of install latencies over (rekey, GM) pairs; [] without any."""
    used = data.used()
    series = []
    for point in data.points():
        of_point = [r for r in used if r["point"] == point]
        values = sorted(
            v
            for r in of_point
            for m in _csv(data.folder / r["bundle"] / "members.csv")
            if (v := _float(m.get("install_ms"))) is not None
        )
        if values:
            series.append((point, len(of_point), values))
    if not series:
        return []
    with style.context():
        fig = style.figure(3.6)
        ax = fig.add_subplot()
        for i, (point, runs, values) in enumerate(series):
            ys = [k / len(values) for k in range(1, len(values) + 1)]
            ax.step(
                [values[0], *values],
                [0.0, *ys],
                where="post",
                color=SERIES[i % len(SERIES)],
                label=f"{data.point_label(point)} (n={len(values)} pairs, {runs} runs)",
            )
        everything = [v for _, _, values in series for v in values if v > 0]
        if everything and max(everything) / min(everything) > 100:
            ax.set_xscale("log")
        ax.set_xlabel("time from the GCKS's send to the router's install (ms)")
        ax.set_ylabel("fraction of (rekey, GM) pairs")
        ax.set_ylim(0, 1.02)
        ax.set_title("Key convergence per campaign point")
        ax.legend(loc="lower right")
        data.caption(fig, used)
        return style.save(fig, data.folder / "plots", "key-convergence-cdf")


# -- convergence against loss or group size -------------------------------------------------------


def _errorbars(
    ax: Axes,
    xs_runs: Mapping[float, list[float]],
    color: str,
    marker: str,
    label: str,
    dodge: float = 0.0,
) -> None:
    """Every run as a hollow marker just beside its x, the mean ± Student-t 95 % CI as an
    error bar; ``dodge`` shifts the whole series sideways (in x units) so series stay apart."""
    xs = sorted(xs_runs)
    nudge = 0.015 * ((xs[-1] - xs[0]) or 1.0)
    for x in xs:
        ys = xs_runs[x]
        ax.plot([x + dodge + nudge] * len(ys), ys, marker, color=color, mfc="none", ms=4, mew=0.8)
    means, lows, highs = [], [], []
    for x in xs:
        stats = describe(xs_runs[x])
        mean = float(stats["mean"] or 0.0)
        low, high = stats["ci95_low"], stats["ci95_high"]
        means.append(mean)
        lows.append(mean - float(low) if low is not None else 0.0)
        highs.append(float(high) - mean if high is not None else 0.0)
    ax.errorbar(
        [x + dodge for x in xs],
        means,
        yerr=[lows, highs],
        color=color,
        marker=marker,
        capsize=3,
        ms=5,
        label=label,
    )


def plot_versus(data: CampaignData, axis: str) -> list[Path]:
    """Key convergence against ``axis`` (``loss`` or ``members``); [] when it does not vary."""
    used = [r for r in data.used() if _float(r.get("key_convergence_max_s")) is not None]
    if axis == "loss" and "loss" not in data.params:
        return []
    xs = {_float(r.get(axis)) for r in used} - {None}
    if len(xs) < 2:
        return []
    # Series: the other grid parameters (for group size, the topology is the x axis).
    others = [p for p in data.params if p != axis and not (axis == "members" and p == "topology")]
    groups: dict[tuple[str, ...], dict[float, list[float]]] = {}
    for r in used:
        key = tuple(r.get(p, "") for p in others)
        x, y = _float(r.get(axis)), _float(r["key_convergence_max_s"])
        if x is not None and y is not None:
            groups.setdefault(key, {}).setdefault(x, []).append(y)
    with style.context():
        fig = style.figure(3.6)
        ax = fig.add_subplot()
        span = (max(x for x in xs if x is not None) - min(x for x in xs if x is not None)) or 1
        ordered = sorted(groups.items(), key=lambda kv: [_natural(v) for v in kv[0]])
        for i, (key, xs_runs) in enumerate(ordered):
            parts = [
                f"loss {_label_value(v)} %" if p == "loss" else f"{p} {_label_value(v)}"
                for p, v in zip(others, key, strict=True)
            ]
            label = ", ".join(parts) or "key convergence"
            dodge = (i - (len(ordered) - 1) / 2) * 0.03 * span
            color, marker = SERIES[i % len(SERIES)], MARKERS[i % len(MARKERS)]
            _errorbars(ax, xs_runs, color, marker, label, dodge)
        if axis == "loss":
            ax.set_xlabel("random loss on the lossy links, each direction (%)")
            ax.set_title("Key convergence against loss")
        else:
            ax.set_xlabel("group size (GMs, one per router)")
            ax.set_title("Key convergence against group size")
            ax.set_xticks(sorted(x for x in xs if x is not None))
        ax.set_ylabel("key convergence, worst rekey of a run (s)")
        ax.set_ylim(bottom=0)
        ax.plot([], [], "o", color="#777777", mfc="none", ms=4, mew=0.8, label="one run")
        ax.legend(loc="best", title="mean with 95 % CI (Student t)", title_fontsize=8)
        data.caption(fig, used)
        stem = "convergence-vs-loss" if axis == "loss" else "convergence-vs-group-size"
        return style.save(fig, data.folder / "plots", stem)


# -- timelines ------------------------------------------------------------------------------------


def plot_timelines(data: CampaignData) -> list[Path]:
    """Per point, the timeline of its run with the slowest key convergence, copied here."""
    written: list[Path] = []
    used = data.used()
    for point in data.points():
        runs = [r for r in used if r["point"] == point]
        if not runs:
            continue
        worst = max(runs, key=lambda r: _float(r.get("key_convergence_max_s")) or -1.0)
        bundle = data.folder / worst["bundle"]
        for path in plots.plot_timeline(bundle):
            dest = data.folder / "plots" / f"timeline-{point}{path.suffix}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            written.append(dest)
    return written


# -- registration storm ---------------------------------------------------------------------------


def registered_over_time(events: Sequence[Mapping[str, Any]]) -> list[float]:
    """Seconds after the first ``registration_started`` at which each GM had registered in
    every group it started to register in (its first ``registration_completed`` of each),
    sorted; GMs that never completed are left out."""
    started: dict[str, set[str]] = {}
    done: dict[tuple[str, str], float] = {}
    t0 = None
    for e in events:
        if e.get("event") == "registration_started":
            started.setdefault(e["node"], set()).add(e.get("group", ""))
            t0 = e["t"] if t0 is None else min(t0, e["t"])
        elif e.get("event") == "registration_completed":
            done.setdefault((e["node"], e.get("group", "")), e["t"])
    if t0 is None:
        return []
    times = []
    for node, groups in started.items():
        if all((node, g) in done for g in groups):
            times.append(max(done[(node, g)] for g in groups) - t0)
    return sorted(times)


def plot_registration_storm(data: CampaignData) -> list[Path]:
    """Registered GMs against time since the first registration, one line per used run."""
    used = data.used()
    curves = []
    for r in used:
        times = registered_over_time(read_jsonl(data.folder / r["bundle"] / "events.jsonl"))
        if times:
            curves.append((r["point"], times))
    if not curves:
        return []
    points = list(dict.fromkeys(p for p, _ in curves))
    with style.context():
        fig = style.figure(3.6)
        ax = fig.add_subplot()
        labelled: set[str] = set()
        for point, times in curves:
            color = SERIES[points.index(point) % len(SERIES)]
            label = None
            if point not in labelled:
                labelled.add(point)
                runs = sum(1 for p, _ in curves if p == point)
                label = f"{data.point_label(point)} ({runs} runs)"
            ax.step(
                [0.0, *times],
                list(range(len(times) + 1)),
                where="post",
                color=color,
                alpha=0.8,
                label=label,
            )
        ax.set_xlabel("time since the first GM started to register (s)")
        ax.set_ylabel("GMs registered in all their groups")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("Registration storm: registered GMs over time")
        ax.legend(loc="lower right")
        data.caption(fig, used)
        return style.save(fig, data.folder / "plots", "registration-storm")


# -- all of them ----------------------------------------------------------------------------------


def plot_campaign(folder: Path) -> list[Path]:
    """Every campaign plot of the campaign in ``folder``; return the files written."""
    data = CampaignData.read(folder)
    return [
        *plot_cdf(data),
        *plot_versus(data, "loss"),
        *plot_versus(data, "members"),
        *plot_timelines(data),
        *plot_registration_storm(data),
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.campaign_plots [--results results] [--campaign NAME]``."""
    parser = argparse.ArgumentParser(
        prog="testbed.campaign_plots",
        description="Plot every campaign under results/ (reads only results/): key-convergence "
        "CDF per point, convergence against loss and group size with 95 %% CIs, per-run "
        "timelines and the registration storm, as PNG and PDF in results/<campaign>/plots/.",
    )
    parser.add_argument("--results", default="results", type=Path, help="results root")
    parser.add_argument("--campaign", action="append", help="only this campaign (repeatable)")
    args = parser.parse_args(argv)
    if args.campaign:
        folders = [args.results / name for name in args.campaign]
        for folder in folders:
            if not (folder / "campaign.json").is_file():
                parser.error(f"{folder}: no campaign.json (run `make campaign` first)")
    else:
        folders = sorted(p.parent for p in args.results.glob("*/campaign.json"))
    if not folders:
        print(f"no campaigns under {args.results} (run `make campaign CAMPAIGN=...` first)")
        return 0
    for folder in folders:
        written = plot_campaign(folder)
        print(f"{folder}: {len(written)} files in {folder / 'plots'}")
        for path in written:
            if path.suffix == ".png":
                print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
