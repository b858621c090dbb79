"""Find and remove what a crashed testbed run left behind: by prefix and pid files, never by name.

Every :class:`testbed.network.Network` keeps a run record under
:data:`RUNTIME_DIR` (``/run/mrkm-testbed/<prefix>/run.json``) from before it
creates anything until after it removed everything: its owner (PID and
start time), the network namespaces it attached (all named ``<prefix>-*``)
and, beside the record, one FRR state directory per router holding the
daemons' pid files and, when PIM is protected, the PIM AH shim's status
file (``pim-ah.status.json``, which names the shim's PID). A normal run
cleans up after itself and deletes the record. A record whose owner is gone
is a crash; :func:`clean_run` then

1. stops every FRR daemon named by a pid file in the run's directory (the
   PID must still be that daemon: ``/proc/<pid>/comm`` is checked, so a
   recycled PID is never signalled), and every PIM AH shim named by a status
   file (its command line must still be that shim with that status file);
   SIGTERM lets a shim remove its iptables chain;
2. stops every process still inside one of the run's namespaces
   (``ip netns pids``: GCKS, GMs, Mininet shells, anything started there);
3. deletes those namespaces, which removes every veth and bridge in them;
4. removes the run directory.

``make clean-net`` runs :func:`main`. It never uses process names
(``pkill``, ``killall``, ``mn -c``) and never touches a run whose owner is
alive unless told ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "RUNTIME_DIR",
    "RunRecord",
    "clean_run",
    "leftovers",
    "main",
    "namespaces",
    "records",
    "shim_pids",
]

RUNTIME_DIR = Path("/run/mrkm-testbed")
RECORD = "run.json"


def _start_ticks(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time), None if gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


@dataclass
class RunRecord:
    """What one run owns: written before anything exists, removed after all is gone."""

    prefix: str
    owner_pid: int
    owner_start: str
    workdir: str
    namespaces: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def folder(self) -> Path:
        return RUNTIME_DIR / self.prefix

    @classmethod
    def new(cls, prefix: str, workdir: Path) -> RunRecord:
        """A record owned by this process."""
        pid = os.getpid()
        return cls(prefix, pid, _start_ticks(pid) or "", str(workdir))

    def owner_alive(self) -> bool:
        """True while the process that made the run still runs (same PID and start time)."""
        return _start_ticks(self.owner_pid) == self.owner_start

    def save(self) -> None:
        """Write the record atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{RECORD}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        tmp.replace(self.folder / RECORD)

    @classmethod
    def load(cls, folder: Path) -> RunRecord | None:
        """The record in ``folder``, None when there is none or it is unreadable."""
        try:
            data = json.loads((folder / RECORD).read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def records() -> list[RunRecord]:
    """Every run record under :data:`RUNTIME_DIR`."""
    if not RUNTIME_DIR.is_dir():
        return []
    found = [RunRecord.load(folder) for folder in sorted(RUNTIME_DIR.iterdir()) if folder.is_dir()]
    return [r for r in found if r is not None]


def namespaces() -> list[str]:
    """Every named network namespace (``ip netns list``)."""
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _netns_pids(name: str) -> list[int]:
    result = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
    )
    return [int(w) for w in result.stdout.split() if w.isdigit()]


def _gone(pid: int) -> bool:
    return _start_ticks(pid) is None


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if not _gone(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_pids(pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout``; the PIDs still alive after all that."""
    pids = [p for p in pids if p != os.getpid()]
    _signal_all(pids, signal.SIGTERM)
    alive = _wait_gone(pids, timeout)
    if alive:
        _signal_all(alive, signal.SIGKILL)
        alive = _wait_gone(alive, 5)
    return alive


def frr_pids(folder: Path) -> list[int]:
    """PIDs of live FRR daemons named by ``<folder>/*/<daemon>.pid`` (comm checked)."""
    pids = []
    for pidfile in sorted(folder.glob("*/*.pid")):
        try:
            pid = int(pidfile.read_text().split()[0])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            continue
        if comm == pidfile.stem and not _gone(pid):
            pids.append(pid)
    return pids


SHIM_STATUS = "pim-ah.status.json"  # testbed.router.PimAhShim.status_path's name
SHIM_MODULE = b"mrkm.sinks.pim_ah"


def shim_pids(folder: Path) -> list[int]:
    """PIDs of live PIM AH shims named by ``<folder>/*/pim-ah.status.json``.

    The PID counts only while ``/proc/<pid>/cmdline`` is that shim's, with
    that very status file: a recycled PID is never signalled.
    """
    pids = []
    for status in sorted(folder.glob(f"*/{SHIM_STATUS}")):
        try:
            pid = int(json.loads(status.read_text())["pid"])
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if SHIM_MODULE in argv and str(status).encode() in argv and not _gone(pid):
            pids.append(pid)
    return pids


def clean_run(record: RunRecord, log: bool = False) -> list[str]:
    """Remove everything of one run (module docstring, steps 1–4); what could not be removed."""

    def say(text: str) -> None:
        if log:
            print(f"clean-net: {record.prefix}: {text}")

    problems = []
    daemons = frr_pids(record.folder)
    if daemons:
        say(f"stopping FRR daemons {daemons} (pid files)")
        problems += [f"FRR daemon {p} survived SIGKILL" for p in stop_pids(daemons)]
    shims = shim_pids(record.folder)
    if shims:
        say(f"stopping PIM AH shims {shims} (status files)")
        problems += [f"PIM AH shim {p} survived SIGKILL" for p in stop_pids(shims)]
    existing = set(namespaces())
    ours = [ns for ns in record.namespaces if ns in existing]
    for ns in reversed(ours):
        pids = _netns_pids(ns)
        if pids:
            say(f"stopping processes {pids} in namespace {ns}")
            problems += [f"process {p} in {ns} survived SIGKILL" for p in stop_pids(pids)]
    for ns in reversed(ours):
        say(f"deleting namespace {ns}")
        result = subprocess.run(
            ["ip", "netns", "delete", ns], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            problems.append(f"ip netns delete {ns}: {result.stderr.strip()}")
    if not problems:
        say(f"removing {record.folder}")
        shutil.rmtree(record.folder, ignore_errors=True)
    return problems


def leftovers(record: RunRecord) -> list[str]:
    """What of ``record``'s run still exists, in words ([] = nothing)."""
    out = [f"FRR daemon {p} (pid file)" for p in frr_pids(record.folder)]
    out += [f"PIM AH shim {p} (status file)" for p in shim_pids(record.folder)]
    existing = set(namespaces())
    out += [f"namespace {ns}" for ns in record.namespaces if ns in existing]
    if (record.folder / RECORD).exists():
        out.append(f"run record {record.folder / RECORD}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.cleanup``: clean the runs whose owner died (see the module doc)."""
    parser = argparse.ArgumentParser(
        prog="testbed.cleanup",
        description="Remove namespaces, links and processes of MRKM testbed runs whose owner "
        f"died, found by their run records in {RUNTIME_DIR} (prefix and pid files; never by "
        "process name).",
    )
    parser.add_argument("--prefix", help="only the run with this prefix")
    parser.add_argument(
        "--force", action="store_true", help="also runs whose owner is still alive (a hung run)"
    )
    parser.add_argument(
        "--list", action="store_true", help="only list the runs and namespaces found"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("clean-net: needs root (namespaces and daemons belong to root and frr)")
        return 1
    runs = [r for r in records() if args.prefix in (None, r.prefix)]
    failed = False
    for record in runs:
        alive = record.owner_alive()
        state = f"owner {record.owner_pid} {'alive' if alive else 'gone'}"
        if args.list:
            print(f"{record.prefix}: {state}; {', '.join(leftovers(record)) or 'nothing left'}")
            continue
        if alive and not args.force:
            print(f"clean-net: {record.prefix}: {state}, left alone (use --force)")
            continue
        problems = clean_run(record, log=True)
        for problem in problems:
            print(f"clean-net: {record.prefix}: {problem}", file=sys.stderr)
        failed |= bool(problems)
    if not runs:
        print(f"clean-net: no testbed runs recorded in {RUNTIME_DIR}")
    # Namespaces that look like a run's but belong to no record: name them, never guess.
    owned = {ns for r in records() for ns in r.namespaces}
    prefixes = {r.prefix for r in runs}
    if args.prefix:
        prefixes.add(args.prefix)
    strays = [
        ns
        for ns in namespaces()
        if ns not in owned and any(ns.startswith(f"{p}-") for p in prefixes)
    ]
    if strays and args.prefix and not args.list:
        # The user named the prefix: namespaces "<prefix>-*" are ours even without a record.
        stray = RunRecord(args.prefix, 0, "", "", namespaces=strays)
        problems = clean_run(stray, log=True)
        for problem in problems:
            print(f"clean-net: {args.prefix}: {problem}", file=sys.stderr)
        failed |= bool(problems)
    else:
        for ns in strays:
            print(
                f"clean-net: namespace {ns} matches a run's prefix but no run record owns it; "
                f"`make clean-net PREFIX=<its prefix>` removes it"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
