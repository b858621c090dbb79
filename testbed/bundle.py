"""One folder per run: ``results/<scenario>/<UTC time>-s<seed>/`` (STYLE.md item 15).

Layout of a finished bundle::

    manifest.json     what ran: MRKM commit, tool versions, seed, parameters,
                      host load before/after, ``valid`` (false: host saturated)
    events.jsonl      every process's event log merged, sorted by ``t``
                      (stable: each log keeps its own order), plus the runner's
                      own events (node "testbed", e.g. ``fault``)
    metrics.csv       one row per rekey        (testbed.metrics.REKEY_FIELDS)
    members.csv       one row per rekey × GM   (testbed.metrics.MEMBER_FIELDS)
    summary.json      the run's numbers        (testbed.metrics.summarize)
    logs/             copies of every process log (event logs, stderr, daemon logs)
    samples/          host.jsonl, cpu-gcks.jsonl, neighbors-<router>.jsonl (collectors)
    wire/             <router>-<interface>.pcap, wire.jsonl (collectors)
    plots/            key-convergence.{png,pdf}, timeline.{png,pdf} (testbed.plots)

A runner makes the folder first, so collectors can write into it, and
finishes it after every process stopped::

    bundle = RunBundle.create(Path("results"), "baseline", seed=7, parameters={...})
    ...                                            # collectors write samples/ and wire/
    summary = bundle.finish(logs, exit_codes=codes, failure=None, testbed_events=faults)

The runner's own events (faults, scenario steps) are dicts with ``t`` and
``event``; :func:`fault` builds the ``fault`` events the timeline plot shades.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.metrics import (
    MEMBER_FIELDS,
    REKEY_FIELDS,
    compute_metrics,
    host_saturation,
    read_jsonl,
    write_csv,
)

__all__ = ["TESTBED_NODE", "RunBundle", "fault", "merge_events", "new_run_folder", "versions"]

REPO = Path(__file__).resolve().parent.parent
TESTBED_NODE = "testbed"  # ``node`` of the runner's own events in events.jsonl
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def new_run_folder(root: Path, scenario: str, seed: int, now: float | None = None) -> Path:
    """Create ``root/<scenario>/<UTC YYYYmmddTHHMMSSZ>-s<seed>/`` (``-2``, ``-3``... if taken)."""
    if not _SAFE_NAME.fullmatch(scenario):
        raise ValueError(f"scenario name {scenario!r}: use letters, digits, '.', '_' and '-'")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    base = root / scenario / f"{stamp}-s{seed}"
    folder, n = base, 1
    while True:
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            n += 1
            folder = base.with_name(f"{base.name}-{n}")


def _first_line(cmd: Sequence[str]) -> str | None:
    """The first line a version command prints (stdout, else stderr), or None."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if result.returncode == 0 and text else None


def _package(name: str) -> str | None:
    """A Debian package's installed version (``dpkg-query``), or None."""
    return _first_line(["dpkg-query", "-W", "-f=${Version}", name])


def _dist(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    """MRKM's commit and the versions of everything a run's numbers depend on."""
    from mrkm import __version__

    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    dirty = _first_line(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "mrkm": {"version": __version__, "commit": commit, "dirty": dirty is not None},
        "frr": _package("frr") or _first_line(["/usr/lib/frr/zebra", "--version"]),
        "bird": _package("bird2") or _first_line(["bird", "--version"]),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cryptography": _dist("cryptography"),
        "scapy": _dist("scapy"),
        "matplotlib": _dist("matplotlib"),
        "tcpdump": _package("tcpdump"),
        "mininet": _package("mininet"),
    }


def fault(
    kind: str, start: float, end: float | None, targets: Sequence[str] = (), **detail: Any
) -> dict[str, Any]:
    """A runner's ``fault`` event: ``kind`` (e.g. "link_down", "kill", "loss") on ``targets``
    (router names; empty = the whole network) from ``start`` until ``end`` (None: run end)."""
    return {
        "t": round(start, 6),
        "event": "fault",
        "node": TESTBED_NODE,
        "kind": kind,
        "targets": list(targets),
        "until": None if end is None else round(end, 6),
        **detail,
    }


def merge_events(
    logs: Iterable[Path], extra: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Every event of the JSON-lines logs ``logs`` and ``extra``, sorted by ``t``.

    The sort is stable and each log is read in its own order, so events a
    node logged with the same ``t`` stay in the order it logged them. A
    record without ``node`` is given the log's file stem.
    """
    merged: list[dict[str, Any]] = []
    for path in logs:
        for record in read_jsonl(path):
            if "t" in record and "event" in record:
                merged.append({**record, "node": record.get("node", path.stem)})
    merged += [{**e, "node": e.get("node", TESTBED_NODE)} for e in extra]
    merged.sort(key=lambda e: e["t"])
    return merged


def _load() -> list[float]:
    return [round(v, 3) for v in os.getloadavg()]


@dataclass
class RunBundle:
    """The run folder of one run, from its creation to its ``finish``."""

    folder: Path
    scenario: str
    seed: int
    parameters: dict[str, Any]
    started: float = field(default_factory=time.time)
    load_before: list[float] = field(default_factory=_load)

    @classmethod
    def create(
        cls, root: Path, scenario: str, seed: int, parameters: Mapping[str, Any]
    ) -> RunBundle:
        """Make the run folder and note the start time and the host load before the run."""
        started = time.time()
        folder = new_run_folder(root, scenario, seed, started)
        return cls(folder, scenario, seed, dict(parameters), started)

    def copy_logs(self, logs: Mapping[str, Path] | Iterable[Path]) -> list[Path]:
        """Copy ``logs`` into ``logs/`` (a mapping names each copy); return the copies.

        Missing files are skipped (a process that never started wrote none).
        """
        pairs = list(logs.items()) if isinstance(logs, Mapping) else [(p.name, p) for p in logs]
        target = self.folder / "logs"
        target.mkdir(exist_ok=True)
        copies = []
        for name, source in pairs:
            dest = target / name
            if dest.exists():
                raise ValueError(f"two logs would be copied to logs/{name}; name them apart")
            if source.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)
                copies.append(dest)
        return copies

    def finish(
        self,
        logs: Mapping[str, Path] | Iterable[Path],
        *,
        exit_codes: Mapping[str, int | None] | None = None,
        failure: str | None = None,
        testbed_events: Iterable[Mapping[str, Any]] = (),
        extra: Mapping[str, Any] | None = None,
        derive: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Copy the logs, merge the events, compute the metrics, write every file; return
        the summary (which also names the run's validity and failure).

        ``logs`` are every process log; those ending in ``.jsonl`` are event
        logs and go into ``events.jsonl``. ``extra`` adds manifest entries;
        ``derive`` adds numbers computed from the summary (the runner's
        verdicts) before ``summary.json``, the last file, is written.
        """
        ended = time.time()
        load_after = _load()
        copies = self.copy_logs(logs)
        events = merge_events([c for c in copies if c.suffix == ".jsonl"], testbed_events)
        with (self.folder / "events.jsonl").open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in events)

        metrics = compute_metrics(self.folder)
        write_csv(self.folder / "metrics.csv", metrics.rows, REKEY_FIELDS)
        write_csv(self.folder / "members.csv", metrics.member_rows, MEMBER_FIELDS)

        cpus = os.cpu_count() or 1
        host = host_saturation(
            read_jsonl(self.folder / "samples" / "host.jsonl"), self.load_before, load_after, cpus
        )
        manifest = {
            "scenario": self.scenario,
            "seed": self.seed,
            "parameters": self.parameters,
            "started_utc": _utc(self.started),
            "ended_utc": _utc(ended),
            "t_start": round(self.started, 6),
            "t_end": round(ended, 6),
            "duration_s": round(ended - self.started, 3),
            "versions": versions(),
            "host": {
                "cpus": cpus,
                "load_before": self.load_before,
                "load_after": load_after,
                **{k: v for k, v in host.items() if k not in ("saturated", "reasons")},
            },
            "valid": not host["saturated"],
            "invalid_reasons": host["reasons"],
            "exit_codes": dict(exit_codes or {}),
            "failure": failure,
            **(extra or {}),
        }
        _write_json(self.folder / "manifest.json", manifest)
        summary = {
            "scenario": self.scenario,
            "seed": self.seed,
            "valid": manifest["valid"],
            "invalid_reasons": manifest["invalid_reasons"],
            "failure": failure,
            **metrics.summary,
        }
        if derive is not None:
            summary |= derive(summary)
        _write_json(self.folder / "summary.json", summary)
        return summary


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
