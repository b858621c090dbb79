"""The report of a campaign, for working-group slides (``make report CAMPAIGN=<name>``).

``python -m testbed.report --campaign NAME [--results results]`` reads only
``results/<NAME>/`` (``campaign.json``, ``campaign.csv``, ``stats.csv``,
``plots/`` and each run's ``manifest.json``) and writes two files with the
same content:

* ``report.md``: Markdown whose figures are the PNGs of ``plots/``, linked
  relatively (the folder can be copied whole);
* ``report.html``: one self-contained page, figures embedded as data URIs.

Sections: the question; the runs (planned, finished, ok / invalid / failed,
and whether invalid runs were used); targets against measurements per grid
point; the statistics table (median, p95, p99, mean with its Student-t 95 %
CI); the figures; the exact commands that reproduce them; the versions of
everything the numbers depend on, from the runs' manifests; the list of
runs with their bundles. A report is built from a small list of blocks
(heading, paragraph, table, figure, code), rendered once as Markdown and once
as HTML, so the two never disagree.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Block",
    "build_report",
    "main",
    "render_html",
    "render_markdown",
    "target_rows",
    "write_report",
]

#: Figures in the order the report shows them: (file stem, caption).
FIGURES = (
    ("key-convergence-cdf", "Key convergence per grid point: CDF over (rekey, GM) pairs."),
    ("convergence-vs-loss", "Key convergence against loss: runs, mean and 95 % CI."),
    ("convergence-vs-group-size", "Key convergence against group size: mean and 95 % CI."),
    ("registration-storm", "Registered GMs over time, one line per run."),
)
#: Metrics of the statistics table: (stats.csv metric, column heading).
TABLE_METRICS = (
    ("key_convergence_max_s", "key convergence (install, slowest rekey of a run), s"),
    ("accept_convergence_max_s", "accept convergence (slowest rekey of a run), s"),
    ("adjacency_flaps", "adjacency flaps per run"),
    ("rekeys_converged_fraction", "fraction of rekeys every GM accepted"),
    ("registration_convergence_s", "registration convergence (every GM registered), s"),
)


@dataclass(frozen=True)
class Block:
    """One piece of a report: ``kind`` is heading, text, table, figure or code."""

    kind: str
    text: str = ""
    level: int = 2
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    path: str = ""  # figure: the PNG, relative to the report


def _csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _num(value: Any) -> str:
    """A number for a table: 4 significant digits, ``-`` for nothing."""
    if value in (None, ""):
        return "-"
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _point_label(row: Mapping[str, str], params: Sequence[str]) -> str:
    parts = [
        f"loss {_num(row.get(p))} %" if p == "loss" else f"{p} {row.get(p, '')}" for p in params
    ]
    return ", ".join(parts) or "all runs"


# -- targets --------------------------------------------------------------------------------------


def target_rows(
    targets: Sequence[Mapping[str, Any]], stats: Sequence[Mapping[str, str]], params: Sequence[str]
) -> list[tuple[str, ...]]:
    """One row per (target, point): target, point, measured value, runs used, verdict."""
    rows: list[tuple[str, ...]] = []
    for target in targets:
        stat, metric = str(target.get("stat", "p95")), str(target["metric"])
        bounds = []
        if target.get("max") is not None:
            bounds.append(f"≤ {target['max']:g}")
        if target.get("min") is not None:
            bounds.append(f"≥ {target['min']:g}")
        text = f"{stat} of {metric} {' and '.join(bounds)}"
        for s in stats:
            if s["metric"] != metric:
                continue
            raw = s.get(stat, "")
            if raw in (None, ""):
                verdict = "no data"
            else:
                value = float(raw)
                ok = (target.get("max") is None or value <= float(target["max"])) and (
                    target.get("min") is None or value >= float(target["min"])
                )
                verdict = "met" if ok else "**missed**"
            rows.append((text, _point_label(s, params), _num(raw), s.get("n", "0"), verdict))
    return rows


# -- the report -----------------------------------------------------------------------------------


def _versions(folder: Path, rows: Sequence[Mapping[str, str]]) -> list[tuple[str, ...]]:
    """Every version the runs' manifests name; several values are listed with their counts."""
    seen: dict[str, dict[str, int]] = {}
    for row in rows:
        versions = _json(folder / row["bundle"] / "manifest.json").get("versions") or {}
        for name, value in versions.items():
            if isinstance(value, dict):  # mrkm: version, commit, dirty
                value = f"{value.get('version')} commit {str(value.get('commit'))[:12]}" + (
                    " (uncommitted changes)" if value.get("dirty") else ""
                )
            counts = seen.setdefault(name, {})
            counts[str(value)] = counts.get(str(value), 0) + 1
    out: list[tuple[str, ...]] = []
    for name, counts in seen.items():
        if len(counts) == 1:
            out.append((name, next(iter(counts))))
        else:
            out.append((name, "; ".join(f"{v} ({n} runs)" for v, n in counts.items())))
    return out


def build_report(folder: Path) -> list[Block]:
    """The blocks of the report of the campaign in ``folder`` (``results/<campaign>``)."""
    info = _json(folder / "campaign.json")
    if not info:
        raise ValueError(f"{folder}: no campaign.json (run `make campaign` first)")
    rows = _csv(folder / "campaign.csv")
    stats = _csv(folder / "stats.csv")
    params = list(info.get("grid") or {})
    name = str(info.get("name", folder.name))
    counts = {s: sum(1 for r in rows if r.get("status") == s) for s in ("ok", "invalid", "failed")}
    include_invalid = bool(info.get("include_invalid"))
    blocks = [
        Block("heading", f"MRKM campaign {name}", level=1),
        Block("text", f"**Question.** {info.get('question', '')}"),
        Block(
            "text",
            f"Scenario `{Path(str(info.get('scenario_file', ''))).name}` over the grid "
            + ", ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in info["grid"].items())
            + f", seeds {', '.join(map(str, info.get('seeds', [])))}, "
            f"{info.get('repetitions', 1)} repetition(s): "
            f"{info.get('runs_planned', '?')} runs planned, {len(rows)} finished.",
        ),
        Block(
            "text",
            f"Runs: **{counts['ok']} valid**, **{counts['invalid']} invalid** (host saturated), "
            f"**{counts['failed']} failed**. "
            + (
                "Invalid runs are **included** in the statistics, as the campaign file asks: "
                "their numbers carry the noise of a busy host."
                if include_invalid
                else "Statistics use valid runs only; invalid and failed runs are counted, "
                "not used."
            ),
        ),
    ]
    targets = info.get("targets") or []
    if targets:
        blocks += [
            Block("heading", "Targets and measurements"),
            Block(
                "table",
                header=("target", "grid point", "measured", "runs used", "verdict"),
                rows=tuple(target_rows(targets, stats, params)),
            ),
        ]
    blocks += [
        Block("heading", "Statistics over repetitions"),
        Block(
            "text",
            "Per grid point over the runs used: median, nearest-rank p95 and p99 (with few runs "
            "they are the maximum), and the mean with its Student-t 95 % confidence interval "
            "(mean ± t(0.975, n−1)·s/√n). Key convergence of a run is its slowest rekey's "
            "last router install after the GCKS's send; accept convergence the same for the "
            "GMs' accepts.",
        ),
    ]
    blocks += _stats_tables(stats, params)
    blocks.append(Block("heading", "Figures"))
    figures = [(stem, text) for stem, text in FIGURES]
    figures += [
        (p.stem, f"Timeline of the slowest run of {p.stem.removeprefix('timeline-')}: key ids, "
         "adjacencies not Full, faults shaded.")
        for p in sorted((folder / "plots").glob("timeline-*.png"))
    ]  # fmt: skip
    for stem, text in figures:
        if (folder / "plots" / f"{stem}.png").is_file():
            blocks.append(Block("figure", text, path=f"plots/{stem}.png"))
    campaign_file = str(info.get("campaign_file", name))
    blocks += [
        Block("heading", "How to reproduce"),
        Block(
            "code",
            "\n".join(
                [
                    f"git checkout {_commit(folder, rows)}",
                    "make setup",
                    f"make campaign CAMPAIGN={campaign_file}   # as root; resumable",
                    "make plots",
                    f"make report CAMPAIGN={name}",
                    "# the same without make:",
                    f"PYTHONPATH=. .venv/bin/python -m testbed.campaign --campaign {campaign_file}",
                    f"PYTHONPATH=. .venv/bin/python -m testbed.campaign_plots --campaign {name}",
                    f"PYTHONPATH=. .venv/bin/python -m testbed.report --campaign {name}",
                ]
            ),
        ),
        Block("heading", "Versions"),
        Block(
            "table",
            header=("component", "version (from the runs' manifests)"),
            rows=tuple(_versions(folder, rows)),
        ),
        Block("heading", "Runs"),
        Block(
            "table",
            header=(
                "grid point",
                "seed",
                "rep",
                "status",
                "key convergence s",
                "flaps",
                "bundle",
            ),
            rows=tuple(
                (
                    _point_label(r, params),
                    r["seed"],
                    r["repetition"],
                    r["status"] + (f": {r['failure']}" if r.get("failure") else ""),
                    _num(r.get("key_convergence_max_s")),
                    _num(r.get("adjacency_flaps")),
                    f"`{r['bundle']}`",
                )
                for r in rows
            ),
        ),
    ]
    return blocks


def _stats_tables(stats: Sequence[Mapping[str, str]], params: Sequence[str]) -> list[Block]:
    """One table per metric of :data:`TABLE_METRICS`: a row per grid point."""
    blocks = []
    for metric, title in TABLE_METRICS:
        rows = []
        for s in (s for s in stats if s["metric"] == metric):
            ci = _num(s.get("mean"))
            if s.get("ci95_low"):
                half = (float(s["ci95_high"]) - float(s["ci95_low"])) / 2
                ci = f"{_num(s['mean'])} ± {_num(half)}"
            rows.append(
                (
                    _point_label(s, params),
                    f"{s['n']} of {s['runs']}",
                    _num(s.get("median")),
                    _num(s.get("p95")),
                    _num(s.get("p99")),
                    ci,
                )
            )
        blocks += [
            Block("heading", title[0].upper() + title[1:], level=3),
            Block(
                "table",
                header=("grid point", "runs used", "median", "p95", "p99", "mean ± 95 % CI"),
                rows=tuple(rows),
            ),
        ]
    return blocks


def _commit(folder: Path, rows: Sequence[Mapping[str, str]]) -> str:
    for row in rows:
        commit = ((_json(folder / row["bundle"] / "manifest.json").get("versions") or {}).get(
            "mrkm"
        ) or {}).get("commit")  # fmt: skip
        if commit:
            return str(commit)
    return "<commit>"


# -- rendering ------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    """The report as Markdown; figures link to their PNGs."""
    out: list[str] = []
    for b in blocks:
        if b.kind == "heading":
            out.append(f"{'#' * b.level} {b.text}")
        elif b.kind == "text":
            out.append(b.text)
        elif b.kind == "table":
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "|".join("---" for _ in b.header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
        elif b.kind == "figure":
            out.append(f"![{b.text}]({b.path})\n\n*{b.text}*")
        elif b.kind == "code":
            out.append(f"```sh\n{b.text}\n```")
        else:
            raise ValueError(f"unknown block kind {b.kind!r}")
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then the two Markdown marks the report uses: ``**bold**`` and ```code```."""
    parts = html.escape(text).split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; }
"""


def render_html(blocks: Sequence[Block], folder: Path) -> str:
    """The report as one self-contained HTML page; figures embedded from ``folder``."""
    title = next((b.text for b in blocks if b.kind == "heading"), "MRKM report")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for b in blocks:
        if b.kind == "heading":
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif b.kind == "text":
            out.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "table":
            out.append("<table><thead><tr>")
            out += [f"<th>{html.escape(h)}</th>" for h in b.header]
            out.append("</tr></thead><tbody>")
            for row in b.rows:
                out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
            out.append("</tbody></table>")
        elif b.kind == "figure":
            data = base64.b64encode((folder / b.path).read_bytes()).decode("ascii")
            out.append(
                f'<figure><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(b.text)}</figcaption></figure>"
            )
        elif b.kind == "code":
            out.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
        else:
            raise ValueError(f"unknown block kind {b.kind!r}")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(folder: Path) -> list[Path]:
    """Write ``report.md`` and ``report.html`` into ``folder``; return both paths."""
    blocks = build_report(folder)
    md, page = folder / "report.md", folder / "report.html"
    md.write_text(render_markdown(blocks), encoding="utf-8")
    page.write_text(render_html(blocks, folder), encoding="utf-8")
    return [md, page]


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.report --campaign NAME``."""
    parser = argparse.ArgumentParser(
        prog="testbed.report",
        description="Write results/<campaign>/report.md and report.html: question, targets "
        "against measurements, statistics, figures, commands and versions that reproduce them. "
        "Reads only results/; run `make plots` first for the figures.",
    )
    parser.add_argument("--campaign", required=True, help="campaign name (results/<name>/)")
    parser.add_argument("--results", default="results", type=Path, help="results root")
    args = parser.parse_args(argv)
    folder = args.results / Path(args.campaign).stem
    try:
        paths = write_report(folder)
    except ValueError as exc:
        parser.error(str(exc))
    if not list((folder / "plots").glob("*.png")):
        print(f"note: {folder / 'plots'} holds no figures; run `make plots` first")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
