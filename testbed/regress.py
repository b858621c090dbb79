"""The regression gate (``make regress``): a few scenarios, checked against a versioned baseline.

The baseline file (``scenarios/regress/baseline.yaml``) lists runs and the
bounds each must meet::

    # measured on 2 cores (commit, date); bounds leave room for a busy host
    runs:
      - scenario: smoke                 # scenarios/<name>.yaml
        topology: ring5                 # optional: overrides the scenario's
        bounds:
          adjacency_flaps: {max: 0}
          key_convergence_max_s: {max: 5, measured: 2.4}
          key_convergence_ms.install.p95: {max: 4000}   # a dotted path into summary.json

Every run is a full :func:`testbed.run.run_scenario` with its own bundle
under ``results/regress/``; the scenario's own assertions count too. A bound
that is missed fails the gate with a line naming the run, the metric, the
value, the bound and by how much it was missed; ``measured`` (optional) is
the value seen when the bound was set, printed next to today's for context.
Exit code: 0 all within bounds, 1 a regression or a failed run, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbed.scenario import Assertion, ScenarioError, check_topology, load_scenario
from topologies.model import TopologyError
from topologies.registry import get_topology

__all__ = ["BASELINE", "Bound", "GateRun", "check", "load_baseline", "lookup", "main"]

BASELINE = Path(__file__).resolve().parent.parent / "scenarios" / "regress" / "baseline.yaml"


@dataclass(frozen=True)
class Bound:
    """``metric`` (a dotted path into summary.json) must stay within ``max``/``min``."""

    metric: str
    max: float | None = None
    min: float | None = None
    measured: float | None = None


@dataclass(frozen=True)
class GateRun:
    """One scenario of the gate and its bounds."""

    scenario: str
    topology: str | None
    bounds: tuple[Bound, ...]


def _fail(where: str, reason: str) -> ScenarioError:
    return ScenarioError(f"{where}: {reason}")


def load_baseline(path: Path = BASELINE) -> list[GateRun]:
    """The gate's runs; ScenarioError naming the entry for anything malformed."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise _fail(str(path), f"cannot read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise _fail(str(path), "expected 'runs:' with at least one entry")
    runs = []
    for i, raw in enumerate(data["runs"]):
        where = f"{path.name}: runs[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("scenario"), str):
            raise _fail(where, "expected a mapping with 'scenario' and 'bounds'")
        bounds = []
        for metric, limits in (raw.get("bounds") or {}).items():
            ok = isinstance(limits, dict) and ("max" in limits or "min" in limits)
            if not ok or set(limits) - {"max", "min", "measured"}:
                raise _fail(f"{where}.bounds.{metric}", "expected {max and/or min, measured}")
            bounds.append(Bound(str(metric), limits.get("max"), limits.get("min"),
                                limits.get("measured")))  # fmt: skip
        if not bounds:
            raise _fail(f"{where}.bounds", "at least one bound")
        runs.append(GateRun(raw["scenario"], raw.get("topology"), tuple(bounds)))
    return runs


def lookup(summary: dict[str, Any], metric: str) -> Any:
    """``summary["a"]["b"]`` for ``"a.b"``; None where the path ends."""
    value: Any = summary
    for part in metric.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check(run: GateRun, summary: dict[str, Any]) -> list[str]:
    """One line per bound ``summary`` misses."""
    misses = []
    for bound in run.bounds:
        flat = {bound.metric: lookup(summary, bound.metric)}
        miss = Assertion(bound.metric, bound.max, bound.min).check(flat)
        if miss is not None:
            was = f" (baseline measured {bound.measured})" if bound.measured is not None else ""
            misses.append(f"{run.scenario}: {miss}{was}")
    return misses


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.regress --help``."""
    parser = argparse.ArgumentParser(
        prog="testbed.regress",
        description="Run the regression scenarios and compare their metrics with the "
        "versioned bounds in scenarios/regress/baseline.yaml (needs root).",
    )
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="bounds file")
    parser.add_argument("--out", type=Path, default=Path("results/regress"), help="bundles")
    parser.add_argument("--only", nargs="*", default=None, help="run only these scenarios")
    args = parser.parse_args(argv)
    try:
        runs = load_baseline(args.baseline)
        plan = []
        for run in runs:
            if args.only and run.scenario not in args.only:
                continue
            scenario = load_scenario(run.scenario)
            topology = get_topology(run.topology or scenario.topology)
            check_topology(scenario, topology)
            plan.append((run, scenario, topology))
    except (ScenarioError, TopologyError) as exc:
        print(f"regress: {exc}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("regress: needs root (network namespaces, routing daemons)", file=sys.stderr)
        return 2
    from testbed.run import run_scenario  # Mininet only when it will run

    t0 = time.monotonic()
    problems: list[str] = []
    lines = []
    for i, (run, scenario, topology) in enumerate(plan, 1):
        print(f"== regress {i}/{len(plan)}: {scenario.name} on {topology.name}", flush=True)
        code, summary, folder = run_scenario(
            scenario, topology, args.out, f"rg{os.getpid() % 10000}{i}", plots=False
        )
        misses = check(run, summary)
        if code != 0 and not misses:
            misses = [f"{scenario.name}: the run failed ({summary.get('failure') or 'assertion'})"]
        problems += misses
        valid = "valid" if summary.get("valid") else "INVALID host"
        values = ", ".join(f"{b.metric}={lookup(summary, b.metric)}" for b in run.bounds)
        lines.append(f"  {'FAIL' if misses else 'ok  '} {scenario.name} ({valid}): {values}")
        lines.append(f"       bundle {folder}")
    print(f"\nregression gate: {len(plan)} runs in {time.monotonic() - t0:.0f} s")
    print("\n".join(lines))
    for problem in problems:
        print(f"REGRESSION {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
