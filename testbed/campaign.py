"""Campaigns: one scenario run over a grid of parameters × seeds × repetitions (``make campaign``).

A campaign answers a question such as "how long does a rekey take to reach
every router under 10 % loss, and does any adjacency drop?" with many runs
and statistics over them. It is a YAML file (``scenarios/campaigns/``)::

    name: rekey-loss            # results/<name>/; letters, digits, '.', '_', '-'
    question: >                 # optional; default: the scenario's question
      How long does a rekey take to be installed on every router as loss grows?
    scenario: campaign-example  # a scenario name (scenarios/<name>.yaml) or a path
    grid:                       # parameter -> values; the campaign runs the cross product
      loss: [0, 5, 10, 20, 30]
      topology: [ring5]
    seeds: [1, 2, 3]            # a list, or a count N meaning 1..N
    repetitions: 1              # runs per (grid point, seed)
    include_invalid: false      # use runs of a saturated host in the statistics too
    targets:                    # optional: what the report compares the statistics with
      - {metric: key_convergence_max_s, stat: p95, max: 5}
      - {metric: adjacency_flaps, stat: max, max: 0}

**Parameters.** A scenario declares its parameters and their defaults under
``params:`` and uses them as ``${name}`` in any value of its YAML; a value
that is exactly ``"${name}"`` takes the parameter's value with its type (a
number stays a number), one that holds a placeholder among other text gets
the value as text (``topology: "ring${routers}"``). A grid key that the
scenario does not declare may name a top-level scenario field (``topology``,
``duration``), which it then replaces. :func:`testbed.scenario.substitute` does this over the
raw YAML dict, before :func:`testbed.scenario.parse_scenario` sees it, so a
misspelt parameter is an error naming the field and the known parameters.

**Runs.** Every (grid point, seed, repetition) is one run of
:func:`testbed.run.run_scenario` with the scenario's ``seed`` set to the
run's seed, in repetition-major order (every point once before any point
twice, so a campaign stopped half way has even coverage). Each run writes
its own bundle under ``results/<campaign>/runs/<point>/s<seed>-r<rep>/``
(:mod:`testbed.bundle`). The campaign is resumable: a run whose folder holds
a bundle with a ``summary.json`` (written last, by ``RunBundle.finish``) is
finished and is not run again; ``--retry-failed`` runs again those whose
summary names a failure, ``--retry-invalid`` those marked invalid. Before
each run the campaign waits (``--settle``, default up to 180 s) until the
host's CPUs are at most :data:`SETTLED_BUSY` busy, so that a run does not
compete with the teardown of the one before. Ctrl-C stops the
current run (the network's context manager tears it down), writes the CSVs
of what finished and exits with 130; the same command resumes.

**Outputs.** ``results/<campaign>/campaign.csv``: one row per run (the
point's parameters, seed, repetition, status, validity, the metrics of
:data:`METRICS`, the bundle). ``results/<campaign>/stats.csv``: one row per
(point, metric) over the point's runs: ``n`` (runs used), ``median``,
``p95``, ``p99`` (nearest rank, as :func:`testbed.metrics.percentile`: with
few runs p95 and p99 are the maximum), ``mean``, ``ci95_low`` and
``ci95_high``: a Student-t 95 % confidence interval of the mean,
mean ± t(0.975, n−1)·s/√n (none for n < 2). Runs used are those that
finished without failure on a valid host (``include_invalid`` adds the
invalid ones; the counts of each kind are in every row).
``results/<campaign>/campaign.json`` records the campaign file, the command
and the points, for :mod:`testbed.campaign_plots` and :mod:`testbed.report`.

The seed labels a run and its bundle; the testbed's random loss (iptables
``statistic``) is not seeded, so seeds act as further repetitions.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import math
import os
import re
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.collectors import cpu_times
from testbed.metrics import percentile
from testbed.scenario import (
    SCENARIO_DIR,
    Scenario,
    ScenarioError,
    param_text,
    parse_scenario,
    substitute,
)
from topologies.model import Topology, TopologyError
from topologies.registry import get_topology

__all__ = [
    "CAMPAIGN_DIR",
    "METRICS",
    "STAT_FIELDS",
    "Campaign",
    "CampaignError",
    "RunSpec",
    "load_campaign",
    "main",
    "parse_campaign",
    "point_id",
    "run_campaign",
    "run_metrics",
    "stats_rows",
    "student_t95",
    "substitute",
]

CAMPAIGN_DIR = SCENARIO_DIR / "campaigns"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SETTLED_BUSY = 0.25  # share of all CPUs busy below which a campaign starts its next run

#: Per-run metrics of campaign.csv and stats.csv: (column, meaning with unit).
METRICS: tuple[tuple[str, str], ...] = (
    ("key_convergence_max_s", "key convergence (install), worst rekey of the run, s"),
    ("key_convergence_median_s", "key convergence (install), median rekey of the run, s"),
    ("accept_convergence_max_s", "accept convergence, worst rekey of the run, s"),
    ("rekeys", "rekeys sent"),
    ("rekeys_converged_fraction", "fraction of rekeys every GM accepted"),
    ("adjacency_flaps", "adjacencies that left Full/Up"),
    ("registration_convergence_s", "time until every GM registered, s"),
    ("switch_over_skew_max_ms", "switch-over skew, worst rekey, ms"),
    ("bytes_per_rekey", "GSA_REKEY octets × copies per rekey"),
    ("gcks_cpu_per_rekey_ms", "GCKS CPU per rekey, ms"),
)
STAT_FIELDS = ("n", "median", "p95", "p99", "mean", "ci95_low", "ci95_high", "min", "max")

# Student t quantiles t(0.975, df) for df = 1..30 (any statistics table); beyond, the
# values for 40, 60 and 120, then the normal quantile 1.960.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip

Runner = Callable[[Scenario, Topology, Path, str, bool], tuple[int, dict[str, Any], Path]]


class CampaignError(ValueError):
    """A campaign that cannot run; the message names the field."""


def _need(cond: bool, where: str, reason: str) -> None:
    if not cond:
        raise CampaignError(f"{where}: {reason}")


# -- parameters -----------------------------------------------------------------------------------


def point_id(point: Mapping[str, Any]) -> str:
    """A folder name for a grid point: ``loss-10_topology-ring5`` (``default`` when empty)."""
    parts = [
        f"{k}-{re.sub(r'[^A-Za-z0-9.]+', '-', param_text(v)).strip('-')}" for k, v in point.items()
    ]
    return "_".join(parts) or "default"


# -- the campaign file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bound on one statistic of one metric, checked per grid point by the report."""

    metric: str
    stat: str = "p95"
    max: float | None = None
    min: float | None = None

    def describe(self) -> str:
        """E.g. ``p95 of key_convergence_max_s ≤ 5``."""
        bounds = [f"≤ {self.max:g}" if self.max is not None else ""]
        bounds.append(f"≥ {self.min:g}" if self.min is not None else "")
        return f"{self.stat} of {self.metric} " + " and ".join(b for b in bounds if b)

    def met(self, value: float | None) -> bool | None:
        """True/False when ``value`` meets/misses the bound; None without a value."""
        if value is None:
            return None
        return (self.max is None or value <= self.max) and (self.min is None or value >= self.min)


@dataclass(frozen=True)
class RunSpec:
    """One run of a campaign: a grid point, a seed and a repetition number (from 1)."""

    point: dict[str, Any]
    seed: int
    repetition: int

    @property
    def point_id(self) -> str:
        """The point's folder name."""
        return point_id(self.point)

    def folder(self, root: Path) -> Path:
        """``root/runs/<point>/s<seed>-r<rep>``: the ``out`` of this run's bundle."""
        return root / "runs" / self.point_id / f"s{self.seed}-r{self.repetition}"


@dataclass(frozen=True)
class Campaign:
    """A loaded, checked campaign."""

    name: str
    question: str
    scenario: str  # path of the scenario file
    raw_scenario: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: tuple[int, ...]
    repetitions: int
    include_invalid: bool = False
    targets: tuple[Target, ...] = ()
    source: str = ""
    points: list[dict[str, Any]] = field(default_factory=list)

    def runs(self) -> list[RunSpec]:
        """Every run, repetition-major (each point once before any twice), then seed, point."""
        return [
            RunSpec(dict(p), seed, rep)
            for rep in range(1, self.repetitions + 1)
            for seed in self.seeds
            for p in self.points
        ]

    def scenario_for(self, spec: RunSpec) -> Scenario:
        """The scenario of one run: parameters substituted, seed set, checked."""
        try:
            data = substitute(self.raw_scenario, spec.point, self.scenario)
            data["seed"] = spec.seed
            return parse_scenario(data, f"{self.scenario} [{spec.point_id}]")
        except ScenarioError as exc:
            raise CampaignError(str(exc)) from None


def _scenario_path(name: str, where: str) -> Path:
    path = Path(name)
    if not path.exists():
        path = SCENARIO_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
        raise CampaignError(f"{where}: scenario: unknown {name!r}; known: {', '.join(known)}")
    return path


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CampaignError(f"{path}: not valid YAML: {exc}") from None


def parse_campaign(data: Any, where: str) -> Campaign:
    """Check a parsed campaign document; every point's scenario is checked too."""
    _need(isinstance(data, dict), where, "expected a mapping")
    known = {"name", "question", "scenario", "grid", "seeds", "repetitions"}
    known |= {"include_invalid", "targets"}
    extra = sorted(set(data) - known)
    _need(not extra, where, f"unknown field(s) {', '.join(extra)}")
    name = data.get("name")
    _need(
        isinstance(name, str) and bool(_SAFE_NAME.fullmatch(name)),
        f"{where}: name",
        "letters, digits, '.', '_' and '-' (it names results/<name>/)",
    )
    _need(isinstance(data.get("scenario"), str), f"{where}: scenario", "missing or not text")
    path = _scenario_path(str(data["scenario"]), where)
    raw = _read_yaml(path)
    _need(isinstance(raw, dict), str(path), "expected a mapping")

    grid = data.get("grid") or {}
    _need(isinstance(grid, dict), f"{where}: grid", "expected parameter: [values] pairs")
    for key, values in grid.items():
        _need(
            isinstance(values, list) and bool(values),
            f"{where}: grid.{key}",
            "expected a non-empty list of values",
        )
        _need(
            len({json.dumps(v) for v in values}) == len(values),
            f"{where}: grid.{key}",
            "repeats a value",
        )
    seeds_raw = data.get("seeds", 1)
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        _need(seeds_raw >= 1, f"{where}: seeds", "a count must be at least 1")
        seeds = tuple(range(1, seeds_raw + 1))
    else:
        _need(
            isinstance(seeds_raw, list)
            and bool(seeds_raw)
            and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds_raw)
            and len(set(seeds_raw)) == len(seeds_raw),
            f"{where}: seeds",
            "expected a count or a list of distinct integers",
        )
        seeds = tuple(seeds_raw)
    reps = data.get("repetitions", 1)
    _need(
        isinstance(reps, int) and not isinstance(reps, bool) and reps >= 1,
        f"{where}: repetitions",
        "expected an integer >= 1",
    )
    include_invalid = data.get("include_invalid", False)
    _need(isinstance(include_invalid, bool), f"{where}: include_invalid", "expected true/false")
    targets = []
    metric_names = {m for m, _ in METRICS}
    for i, t in enumerate(data.get("targets") or []):
        at = f"{where}: targets[{i}]"
        _need(
            isinstance(t, dict) and "metric" in t and ("max" in t or "min" in t),
            at,
            "expected {metric, stat, max and/or min}",
        )
        _need(
            t["metric"] in metric_names,
            f"{at}.metric",
            f"{t['metric']!r} is not one of {', '.join(sorted(metric_names))}",
        )
        stat = t.get("stat", "p95")
        _need(stat in STAT_FIELDS[1:], f"{at}.stat", f"{stat!r} is not one of {STAT_FIELDS[1:]}")
        for bound in ("max", "min"):
            _need(
                t.get(bound) is None or isinstance(t[bound], int | float),
                f"{at}.{bound}",
                "expected a number",
            )
        targets.append(Target(str(t["metric"]), str(stat), t.get("max"), t.get("min")))

    points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    ids = [point_id(p) for p in points]
    _need(len(set(ids)) == len(ids), f"{where}: grid", "two points give one folder name")
    campaign = Campaign(
        name=str(name),
        question="",
        scenario=str(path),
        raw_scenario=raw,
        grid={k: list(v) for k, v in grid.items()},
        seeds=seeds,
        repetitions=reps,
        include_invalid=include_invalid,
        targets=tuple(targets),
        source=where,
        points=points,
    )
    scenarios = [campaign.scenario_for(RunSpec(p, seeds[0], 1)) for p in points]
    question = data.get("question") or scenarios[0].question
    _need(isinstance(question, str), f"{where}: question", "expected text")
    for scenario in scenarios:
        try:
            get_topology(scenario.topology)
        except TopologyError as exc:
            raise CampaignError(f"{where}: topology {scenario.topology!r}: {exc}") from None
    return dataclasses.replace(campaign, question=" ".join(str(question).split()))


def load_campaign(name_or_path: str) -> Campaign:
    """A campaign by name (``scenarios/campaigns/<name>.yaml``) or by path."""
    path = Path(name_or_path)
    if not path.exists():
        path = CAMPAIGN_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CAMPAIGN_DIR.glob("*.yaml"))
        raise CampaignError(f"unknown campaign {name_or_path!r}; known: {', '.join(known)}")
    campaign = parse_campaign(_read_yaml(path), str(path))
    # How commands name it again: by name when it is one of ours, else by its path.
    here = Path.cwd().resolve()
    source = str(path)
    if path.resolve().parent == CAMPAIGN_DIR.resolve():
        source = path.stem
    elif path.resolve().is_relative_to(here):
        source = str(path.resolve().relative_to(here))
    return dataclasses.replace(campaign, source=source)


# -- metrics and statistics -----------------------------------------------------------------------


def run_metrics(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`METRICS` of one run from its ``summary.json`` (None: not measured)."""

    def seconds(ms: Any) -> float | None:
        return None if ms is None else round(float(ms) / 1000, 6)

    conv = summary.get("key_convergence_ms") or {}
    install, accept = conv.get("install") or {}, conv.get("accept") or {}
    count = summary.get("rekey_count") or 0
    incomplete = len(summary.get("incomplete_rekeys") or [])
    return {
        "key_convergence_max_s": seconds(install.get("max")),
        "key_convergence_median_s": seconds(install.get("median")),
        "accept_convergence_max_s": seconds(accept.get("max")),
        "rekeys": count,
        "rekeys_converged_fraction": round((count - incomplete) / count, 4) if count else None,
        "adjacency_flaps": summary.get("adjacency_flaps"),
        "registration_convergence_s": summary.get("registration_convergence_s"),
        "switch_over_skew_max_ms": (summary.get("switch_over_skew_ms") or {}).get("max"),
        "bytes_per_rekey": summary.get("bytes_per_rekey"),
        "gcks_cpu_per_rekey_ms": (summary.get("gcks_cpu") or {}).get("per_rekey_ms"),
    }


def student_t95(df: int) -> float:
    """The two-sided 95 % Student-t quantile t(0.975, df), df ≥ 1."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, not {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    return 2.021 if df <= 40 else 2.000 if df <= 60 else 1.980 if df <= 120 else 1.960


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, median, nearest-rank p95/p99, mean and its Student-t 95 % CI, min, max."""
    vals = sorted(values)
    n = len(vals)
    out: dict[str, float | int | None] = dict.fromkeys(STAT_FIELDS)
    out["n"] = n
    if not n:
        return out
    mean = statistics.fmean(vals)
    out |= {
        "median": statistics.median(vals),
        "p95": percentile(vals, 95),
        "p99": percentile(vals, 99),
        "mean": mean,
        "min": vals[0],
        "max": vals[-1],
    }
    if n >= 2:
        half = student_t95(n - 1) * statistics.stdev(vals) / math.sqrt(n)
        out["ci95_low"], out["ci95_high"] = mean - half, mean + half
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def stats_rows(
    rows: Sequence[Mapping[str, Any]], params: Sequence[str], include_invalid: bool = False
) -> list[dict[str, Any]]:
    """stats.csv: per (point, metric), the statistics over the point's usable runs."""
    out = []
    points: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        points.setdefault(str(row["point"]), []).append(row)
    for pid, runs in points.items():
        failed = [r for r in runs if r["status"] == "failed"]
        invalid = [r for r in runs if r["status"] == "invalid"]
        used = [r for r in runs if r["status"] == "ok" or (include_invalid and r in invalid)]
        for metric, _ in METRICS:
            values = [v for r in used if (v := _number(r.get(metric))) is not None]
            out.append(
                {
                    "point": pid,
                    **{p: runs[0].get(p) for p in params},
                    "metric": metric,
                    "runs": len(runs),
                    "runs_failed": len(failed),
                    "runs_invalid": len(invalid),
                    "invalid_used": include_invalid and bool(invalid),
                    **describe(values),
                }
            )
    return out


# -- running --------------------------------------------------------------------------------------


def finished_bundle(folder: Path) -> Path | None:
    """The newest bundle under a run's folder whose ``summary.json`` was written, or None."""
    done = [p.parent for p in folder.glob("*/*/summary.json") if _json(p) is not None]
    return max(done, key=lambda p: p.name) if done else None


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def campaign_row(
    campaign: Campaign, spec: RunSpec, bundle: Path, summary: Mapping[str, Any], root: Path
) -> dict[str, Any]:
    """One campaign.csv row from a run's bundle and summary."""
    manifest = _json(bundle / "manifest.json") or {}
    scenario = campaign.scenario_for(spec)
    metrics = run_metrics(summary)
    misses = [m for a in scenario.assertions if (m := a.check({**summary, **metrics}))]
    valid = bool(summary.get("valid", manifest.get("valid", False)))
    failure = summary.get("failure")
    params = manifest.get("parameters") or {}
    return {
        "point": spec.point_id,
        **spec.point,
        "seed": spec.seed,
        "repetition": spec.repetition,
        "status": "failed" if failure else "ok" if valid else "invalid",
        "valid": valid,
        "failure": failure or "",
        "assertions_missed": len(misses),
        "topology": params.get("topology", scenario.topology),
        "routers": params.get("routers"),
        "members": len(summary.get("members") or []),
        "duration_s": manifest.get("duration_s"),
        **metrics,
        "bundle": os.path.relpath(bundle, root),
    }


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    tmp.replace(path)


def write_outputs(campaign: Campaign, root: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """campaign.csv, stats.csv and campaign.json of what finished so far."""
    root.mkdir(parents=True, exist_ok=True)
    _write_csv(root / "campaign.csv", rows)
    _write_csv(root / "stats.csv", stats_rows(rows, list(campaign.grid), campaign.include_invalid))
    info = {
        "name": campaign.name,
        "question": campaign.question,
        "campaign_file": campaign.source,
        "scenario_file": campaign.scenario,
        "grid": campaign.grid,
        "seeds": list(campaign.seeds),
        "repetitions": campaign.repetitions,
        "include_invalid": campaign.include_invalid,
        "targets": [t.__dict__ for t in campaign.targets],
        "metrics": dict(METRICS),
        "command": f"make campaign CAMPAIGN={shlex.quote(campaign.source)}",
        "runs_planned": len(campaign.runs()),
        "runs_finished": len(rows),
        "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (root / "campaign.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _default_runner(
    scenario: Scenario, topology: Topology, out: Path, prefix: str, plots: bool
) -> tuple[int, dict[str, Any], Path]:
    from testbed.run import run_scenario  # Mininet: only when a real run is asked for

    return run_scenario(scenario, topology, out, prefix, plots)


def host_busy(window: float = 2.0) -> float:
    """The share of all CPUs that was busy over the next ``window`` s (``/proc/stat``)."""
    before = cpu_times(Path("/proc/stat").read_text())
    time.sleep(window)
    after = cpu_times(Path("/proc/stat").read_text())
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def settle_host(
    timeout: float,
    say: Callable[[str], None] = print,
    busy: Callable[[], float] = host_busy,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    interval: float = 3.0,
) -> float:
    """Wait up to ``timeout`` s until the host's CPUs are at most :data:`SETTLED_BUSY`
    busy (measured over a short window each time); return the last share measured.

    Right after a 100-router run tears down, its processes are still exiting
    and the next run's bring-up would compete with them. A host that stays
    busy (other work) is reported and the run goes ahead; the run's own CPU
    samples then decide whether it is valid.
    """
    value = busy()
    if value <= SETTLED_BUSY or timeout <= 0:
        return value
    say(
        f"    waiting up to {timeout:.0f} s for the host to settle: CPUs {value:.0%} busy "
        f"(limit {SETTLED_BUSY:.0%})"
    )
    start = clock()
    deadline = start + timeout
    while value > SETTLED_BUSY and clock() < deadline:
        sleep(min(interval, max(0.0, deadline - clock())))
        value = busy()
    if value <= SETTLED_BUSY:
        say(f"    host settled after {clock() - start:.0f} s ({value:.0%} busy)")
    else:
        say(f"    host still {value:.0%} busy: running anyway")
    return value


def run_campaign(
    campaign: Campaign,
    results: Path,
    runner: Runner | None = None,
    prefix: str | None = None,
    retry_failed: bool = False,
    plots: bool = True,
    say: Callable[[str], None] = print,
    retry_invalid: bool = False,
    settle: float = 0.0,
    busy: Callable[[], float] = host_busy,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Run what is not finished yet; return every campaign.csv row (all runs finished so far).

    ``runner`` defaults to :func:`testbed.run.run_scenario`; each run gets
    its own namespace prefix ``<prefix>r<index>`` (and so its own work folder).
    ``retry_failed``/``retry_invalid`` run failed/invalid runs again. Before
    each run, wait up to ``settle`` s for the host's CPUs to quiet down
    (:func:`settle_host`; ``busy`` and ``sleep`` are injected for tests).
    """
    runner = runner or _default_runner
    base = prefix or f"mc{os.getpid() % 100000}"
    root = results / campaign.name
    specs = campaign.runs()
    rows: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, RunSpec]] = []
    for i, spec in enumerate(specs):
        bundle = finished_bundle(spec.folder(root))
        summary = _json(bundle / "summary.json") if bundle else None
        redo = summary is not None and (
            (retry_failed and bool(summary.get("failure")))
            or (retry_invalid and not summary.get("failure") and not summary.get("valid", True))
        )
        if bundle is not None and summary is not None and not redo:
            rows[i] = campaign_row(campaign, spec, bundle, summary, root)
            continue
        todo.append((i, spec))
    say(
        f"campaign {campaign.name}: {len(specs)} runs ({len(campaign.points)} points × "
        f"{len(campaign.seeds)} seeds × {campaign.repetitions} repetitions); "
        f"{len(rows)} finished before, {len(todo)} to run"
    )
    t0 = time.monotonic()
    try:
        for done, (i, spec) in enumerate(todo):
            scenario = campaign.scenario_for(spec)
            topology = get_topology(scenario.topology)
            run_prefix = f"{base}r{i}"
            workdir = Path(f"/tmp/mrkm-run-{run_prefix}")  # testbed.run's work folder
            shutil.rmtree(workdir, ignore_errors=True)  # no stale logs of another run
            eta = ""
            if done:
                left = (time.monotonic() - t0) / done * (len(todo) - done)
                eta = f", about {left / 60:.0f} min left"
            say(
                f"[{done + 1}/{len(todo)}{eta}] {spec.point_id} seed {spec.seed} "
                f"repetition {spec.repetition}"
            )
            settle_host(settle, say, busy, sleep)
            try:
                code, summary, bundle = runner(
                    scenario, topology, spec.folder(root), run_prefix, plots
                )
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            rows[i] = campaign_row(campaign, spec, bundle, summary, root)
            row = rows[i]
            say(
                f"    {row['status']}: key convergence {row['key_convergence_max_s']} s, "
                f"flaps {row['adjacency_flaps']}, exit code {code}"
            )
            write_outputs(campaign, root, [rows[k] for k in sorted(rows)])
    finally:
        write_outputs(campaign, root, [rows[k] for k in sorted(rows)])
    return [rows[k] for k in sorted(rows)]


def print_table(campaign: Campaign, rows: Sequence[Mapping[str, Any]]) -> None:
    """The end-of-campaign table: per point, runs and key convergence statistics."""
    from rich.console import Console
    from rich.table import Table

    stats = stats_rows(rows, list(campaign.grid), campaign.include_invalid)
    table = Table(title=f"Campaign {campaign.name}: {campaign.question}", title_justify="left")
    for column in ("point", "runs ok/invalid/failed", "key conv. s median", "p95", "mean ±CI95"):
        table.add_column(column, justify="left" if column == "point" else "right")
    table.add_column("flaps max", justify="right")
    by_point: dict[str, dict[str, Mapping[str, Any]]] = {}
    for s in stats:
        by_point.setdefault(s["point"], {})[s["metric"]] = s
    for pid, metrics in by_point.items():
        conv, flaps = metrics["key_convergence_max_s"], metrics["adjacency_flaps"]
        ok = conv["runs"] - conv["runs_invalid"] - conv["runs_failed"]
        ci = ""
        if conv["ci95_low"] is not None:
            ci = f" ±{(conv['ci95_high'] - conv['ci95_low']) / 2:.3f}"
        table.add_row(
            pid,
            f"{ok}/{conv['runs_invalid']}/{conv['runs_failed']}",
            _fmt(conv["median"]),
            _fmt(conv["p95"]),
            (_fmt(conv["mean"]) + ci) if conv["mean"] is not None else "-",
            "-" if flaps["max"] is None else f"{flaps['max']:g}",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    console.print(table)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None, runner: Runner | None = None) -> int:
    """``python -m testbed.campaign --campaign FILE``."""
    parser = argparse.ArgumentParser(
        prog="testbed.campaign",
        description="Run an MRKM campaign: a scenario over a grid of parameters × seeds × "
        "repetitions, one run bundle each under results/<campaign>/runs/, then "
        "campaign.csv (one row per run) and stats.csv (median, p95, p99, mean and "
        "Student-t 95 %% CI per point). Resumable: finished runs are skipped. Needs root.",
    )
    parser.add_argument("--campaign", required=True, help="campaign name or YAML path")
    parser.add_argument("--results", default="results", type=Path, help="results root")
    parser.add_argument("--prefix", default=None, help="namespace prefix base (default mc<pid>)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    parser.add_argument(
        "--retry-invalid",
        action="store_true",
        help="run again the runs marked invalid (host saturated)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=180.0,
        metavar="S",
        help="before each run, wait up to S s until the host's CPUs are at most "
        f"{SETTLED_BUSY:.0%} busy (default 180; 0: do not wait)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip each run's own plots")
    parser.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    args = parser.parse_args(argv)
    try:
        campaign = load_campaign(args.campaign)
    except CampaignError as exc:
        parser.error(str(exc))
    if args.dry_run:
        root = args.results / campaign.name
        for spec in campaign.runs():
            state = "finished" if finished_bundle(spec.folder(root)) else "to run"
            print(f"{spec.folder(root)}  {state}")
        return 0
    if runner is None and os.geteuid() != 0:
        parser.error("the Mininet testbed needs root (network namespaces, routing daemons)")
    try:
        rows = run_campaign(
            campaign,
            args.results,
            runner,
            args.prefix,
            args.retry_failed,
            not args.no_plots,
            retry_invalid=args.retry_invalid,
            settle=args.settle,
        )
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the current run was torn down and the CSVs hold what finished; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except CampaignError as exc:
        print(f"campaign error: {exc}", file=sys.stderr)
        return 2
    print_table(campaign, rows)
    root = args.results / campaign.name
    print(f"wrote {root / 'campaign.csv'} and {root / 'stats.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
