"""The end-of-run summary on the terminal: one rich table per run, read from its bundle.

``python -m testbed.summary results/<scenario>/<run>`` prints it again later.
It shows what ``summary.json`` and ``manifest.json`` hold and computes
nothing of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["main", "print_summary", "rekey_table"]


def _v(value: Any, unit: str = "") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{value}{unit}"


def _seconds(summary: Mapping[str, Any]) -> str:
    value = summary.get("registration_convergence_s")
    return "-" if value is None else f"{value:.3f} s"


def _dist(d: Mapping[str, Any] | None) -> str:
    """ "max / median / p95 ms (n)" of a summary distribution."""
    if not d or not d.get("n"):
        return "-"
    return f"{_v(d['max'])} / {_v(d['median'])} / {_v(d['p95'])} ms (n={d['n']})"


def rekey_table(summary: Mapping[str, Any]) -> Table:
    """One row per rekey: reason, keys, members, accept / install latencies, skew, bytes."""
    table = Table(
        title="Rekeys: latencies after the GCKS's send", title_justify="left", box=box.SIMPLE_HEAD
    )
    for name, justify in (
        ("#", "right"),
        ("rekey\nSA:msg", "left"),
        ("reason", "left"),
        ("keys", "right"),
        ("GMs\nacc/exp", "right"),
        ("accept ms\nmax / median / p95", "right"),
        ("install ms\nmax", "right"),
        ("skew\nms", "right"),
        ("bytes", "right"),
        ("GCKS\nCPU ms", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in summary.get("rekeys", []):
        complete = row["members_accepted"] >= row["members_expected"]
        members = f"{row['members_accepted']}/{row['members_expected']}"
        table.add_row(
            str(row["rekey"]),
            f"{row['rekey_sa']}:{row['message_id']}",
            str(row["reason"]),
            row["key_ids"] or "-",
            members if complete else f"[bold red]{members}[/]",
            f"{_v(row['accept_max_ms'])} / {_v(row['accept_median_ms'])} / "
            f"{_v(row['accept_p95_ms'])}",
            _v(row["install_max_ms"]),
            _v(row["skew_ms"]),
            _v(row["bytes"]),
            _v(row["gcks_cpu_ms"]),
        )
    return table


def _facts(summary: Mapping[str, Any], manifest: Mapping[str, Any]) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    reg = summary.get("registration") or {}
    cpu = summary.get("gcks_cpu") or {}
    conv = summary.get("key_convergence_ms") or {}
    valid = manifest.get("valid", summary.get("valid"))
    reasons = "; ".join(manifest.get("invalid_reasons", summary.get("invalid_reasons", [])))
    facts = [
        (
            "registration",
            f"{reg.get('registered', 0)}/{reg.get('members', 0)} GMs in {_seconds(summary)}",
        ),
        ("key convergence, accept", "max / median / p95 over rekeys: " + _dist(conv.get("accept"))),
        (
            "key convergence, install",
            "max / median / p95 over rekeys: " + _dist(conv.get("install")),
        ),
        ("switch-over skew", _dist(summary.get("switch_over_skew_ms"))),
        ("adjacency flaps", _flaps(summary)),
        (
            "per rekey",
            f"{_v(summary.get('bytes_per_rekey'))} bytes, "
            f"{_v(summary.get('messages_per_rekey'))} messages",
        ),
        (
            "GCKS CPU",
            f"{_v(cpu.get('per_registration_ms'), ' ms')} per registration, "
            f"{_v(cpu.get('per_rekey_ms'), ' ms')} per rekey",
        ),
        ("PIM AH", _pim_ah(summary)),
        ("incomplete rekeys", ", ".join(map(str, summary.get("incomplete_rekeys", []))) or "none"),
        ("excluded by eviction", ", ".join(summary.get("excluded", [])) or "none"),
        ("host", "[green]valid[/]" if valid else f"[bold red]INVALID[/] ({reasons})"),
    ]
    if summary.get("failure"):
        facts.append(("failure", f"[bold red]{summary['failure']}[/]"))
    for name, value in facts:
        table.add_row(name, value)
    return table


def _pim_ah(summary: Mapping[str, Any]) -> str:
    """``12034 protected, 12001 accepted; drops: in:unprotected 3, out:no-send-sa 40``."""
    pim = summary.get("pim_ah")
    if not pim:
        return "unprotected (no AH shim)"
    drops = ", ".join(f"{reason} {n}" for reason, n in pim.get("drops", {}).items()) or "none"
    return (
        f"{_v(pim.get('protected'))} packets protected, {_v(pim.get('accepted'))} accepted; "
        f"drops: {drops}"
    )


def _flaps(summary: Mapping[str, Any]) -> str:
    """``3 (OSPF 3, PIM 0; 0 unexplained)`` once testbed.verdicts ran, else the count."""
    total = _v(summary.get("adjacency_flaps", 0))
    if "unexplained_flaps" not in summary:
        return total
    text = (
        f"{total} (OSPF {summary.get('ospf_flaps')}, PIM {summary.get('pim_flaps')}; "
        f"{summary['unexplained_flaps']} not explained by a fault)"
    )
    if summary.get("evictions"):
        text += f"; evicted routers cut off: {summary.get('evicted_cut_off')}"
    return text


def print_summary(
    summary: Mapping[str, Any],
    manifest: Mapping[str, Any] | None = None,
    console: Console | None = None,
) -> None:
    """Print the rekey table and the run's headline numbers."""
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: do not squeeze into 80 columns
            console = Console(width=120)
    manifest = manifest or {}
    console.print(rekey_table(summary))
    console.print(_facts(summary, manifest))


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.summary RUN_FOLDER...``."""
    parser = argparse.ArgumentParser(prog="testbed.summary", description="Print run summaries.")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders: results/<scenario>/<run>")
    args = parser.parse_args(argv)
    for folder in args.runs:
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except FileNotFoundError:
            parser.error(f"{folder} has no summary.json")
        manifest_path = folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        Console().rule(str(folder))
        print_summary(summary, manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
