"""The loopback run: a real GCKS and N real GMs on 127.0.0.1, no routers yet.

``make run-scenario`` runs this until the Mininet testbed exists. Every node
is a ``python -m mrkm`` process with its own event log; the rekey group is
joined on ``lo``. The run:

1. starts the GCKS, then every GM, and waits until all are registered
   (IKE_SA_INIT + GSA_AUTH);
2. asks the GCKS (control socket) for ``--rekeys`` rekeys, one at a time, and
   waits until every GM has accepted each one;
3. evicts ``--evict`` members and waits until the rest hold the key that
   follows while the evicted ones are excluded (forward access control);
4. stops everything by PID and writes a run bundle
   ``results/loopback-<scenario>/<UTC time>-s<seed>/`` (:mod:`testbed.bundle`:
   manifest, merged events, metrics, summary, logs, host and GCKS CPU
   samples), plots it (:mod:`testbed.plots`) and prints its summary
   (:mod:`testbed.summary`).

The processes work in a temporary folder (configurations, keys, sockets);
only their logs are copied into the bundle. Key convergence of a rekey = the
last GM's ``rekey_accepted`` minus the GCKS's ``rekey_sent``
(ARCHITECTURE.md, "Measurements"; all nodes share the host clock); the
metrics are :mod:`testbed.metrics`'s. There are no routers here, so there are
no installs, captures or adjacencies.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519

from mrkm.runtime.control import request
from mrkm.runtime.pem import private_key_pem, write_new_file
from testbed.bundle import RunBundle
from testbed.collectors import Collectors
from testbed.plots import plot_run
from testbed.processes import Procs, events_of, read_events, wait_until
from testbed.summary import print_summary

SCENARIOS = {
    "baseline": "registration of every GM, signed multicast rekeys, then an eviction",
}
GROUP = "ospfv2-area0"


@dataclass(frozen=True)
class Run:
    """Where a run keeps its files and which ports it uses."""

    folder: Path
    port: int
    rekey_group: str
    rekey_port: int
    members: tuple[str, ...]

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.jsonl"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_configs(run: Run, psk: bytes, lifetime: float) -> None:
    """GCKS and GM YAML files, and the GCKS signing key, in the run folder."""
    write_new_file(
        run.folder / "gcks.key", private_key_pem(ed25519.Ed25519PrivateKey.generate()), 0o600
    )
    gcks = {
        "gcks": {
            "identity": "gcks.mrkm",
            "listen": f"127.0.0.1:{run.port}",
            "rekey_interface": "lo",
            "signing_key": "gcks.key",
            "state": "gcks-state.json",
        },
        "groups": [
            {
                "name": GROUP,
                "protocol": "ospfv2",
                "algorithm": "hmac-sha-256",
                "lifetime": lifetime,
                "rekey_margin": lifetime / 2,
                "atd": 2,
                "dtd": 4,
                "rekey_address": run.rekey_group,
                "rekey_port": run.rekey_port,
                "copies": [0, 0.25, 0.5, 1.0],
                "psk": psk.hex(),
                "members": [{"id": m} for m in run.members],
            }
        ],
    }
    (run.folder / "gcks.yaml").write_text(yaml.safe_dump(gcks, sort_keys=False))
    for member in run.members:
        gm = {
            "gm": {
                "identity": member,
                "gcks": f"127.0.0.1:{run.port}",
                "groups": [GROUP],
                "psk": psk.hex(),
                "interface": "lo",
                "rekey_groups": [f"{run.rekey_group}:{run.rekey_port}"],
            }
        }
        (run.folder / f"{member}.yaml").write_text(yaml.safe_dump(gm, sort_keys=False))


def _accepted(run: Run, sent: dict[str, Any]) -> set[str]:
    """Members whose log shows ``rekey_accepted`` for the GCKS's ``rekey_sent`` event.

    Message IDs count per Rekey SA (RFC 9838 §2.4.1), so the SA is matched too.
    """
    out = set()
    for member in run.members:
        for e in events_of(read_events(run.log(member)), "rekey_accepted"):
            if (e["sa"], e["message_id"]) == (sent["sa"], sent["message_id"]):
                out.add(member)
    return out


def _sent(log: Path, reason: str) -> dict[str, Any] | None:
    """The GCKS's latest ``rekey_sent`` event for ``reason``."""
    sent = [e for e in events_of(read_events(log), "rekey_sent") if e["reason"] == reason]
    return sent[-1] if sent else None


def _progress(text: str) -> None:
    print(f"  {text}", flush=True)


def _control(path: Path, message: dict[str, Any]) -> dict[str, Any]:
    """One control request to a daemon; its result, or ValueError with its error."""
    answer = request(path, message)
    if not answer.get("ok"):
        raise ValueError(f"{message['cmd']}: {answer.get('error')}")
    result = answer["result"]
    assert isinstance(result, dict)
    return result


def run_baseline(
    run: Run,
    procs: Procs,
    rekeys: int,
    evict: int,
    timeout: float,
    collectors: Collectors | None = None,
) -> None:
    """Steps 1 to 3 of the module docstring; ``collectors`` sample the GCKS's CPU."""
    gcks_log = run.log("gcks")
    gcks = procs.start(
        "gcks", "gcks", "--config", "gcks.yaml", "--log", "gcks.jsonl", "--control", "gcks.sock"
    )
    if collectors is not None:
        collectors.watch_process("gcks", gcks.pid)
    wait_until(
        lambda: events_of(read_events(gcks_log), "process_started") != [],
        timeout,
        "the GCKS to start",
    )
    for member in run.members:
        procs.start(
            member,
            "gm",
            "--config",
            f"{member}.yaml",
            "--log",
            f"{member}.jsonl",
            "--keytable",
            f"{member}.keys.json",
        )

    def registered() -> int:
        return len(events_of(read_events(gcks_log), "member_registered"))

    last = -1
    deadline = time.monotonic() + timeout
    while registered() < len(run.members):
        if registered() != last:
            last = registered()
            _progress(f"registered {last}/{len(run.members)} GMs")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {registered()} of {len(run.members)} GMs registered")
        time.sleep(0.05)
    _progress(f"registered {len(run.members)}/{len(run.members)} GMs")

    control = run.folder / "gcks.sock"
    for i in range(rekeys):
        message_id = int(_control(control, {"cmd": "rekey", "group": GROUP})["message_id"])
        sent = _sent(gcks_log, "manual")
        if sent is None or sent["message_id"] != message_id:
            raise ValueError(f"the GCKS log lacks rekey {message_id}")

        def everyone(sent: dict[str, Any] = sent) -> bool:
            return _accepted(run, sent) == set(run.members)

        wait_until(everyone, timeout, f"every GM to accept rekey {message_id}")
        _progress(f"rekey {i + 1}/{rekeys} (Message ID {message_id}) accepted by every GM")

    stay = set(run.members)
    for victim in run.members[len(run.members) - evict :]:
        _control(control, {"cmd": "evict", "group": GROUP, "member": victim})
        stay.discard(victim)
        evicted_at = time.time()
        remaining = replace(run, members=tuple(sorted(stay)))

        def follow_up_done(remaining: Run = remaining, since: float = evicted_at) -> bool:
            after = _sent(gcks_log, "after-eviction")
            return (
                after is not None
                and after["t"] >= since
                and set(remaining.members) <= _accepted(remaining, after)
            )

        wait_until(follow_up_done, timeout, f"the rekey after evicting {victim}")
        _progress(f"evicted {victim}; the remaining {len(stay)} GMs hold the next key")


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.loopback --help``."""
    parser = argparse.ArgumentParser(
        prog="testbed.loopback",
        description="Run a real GCKS and N real GMs (python -m mrkm) on 127.0.0.1: register, "
        "rekey, evict; write a run bundle under results/. This is what `make run-scenario` "
        "runs until the Mininet testbed exists.",
    )
    parser.add_argument("--scenario", default="baseline", help="scenario name (default baseline)")
    parser.add_argument("--topo", help="topology (needs the Mininet testbed, not built yet)")
    parser.add_argument("--members", type=int, default=5, help="GMs to run (default 5)")
    parser.add_argument("--rekeys", type=int, default=3, help="rekeys to send (default 3)")
    parser.add_argument("--evict", type=int, default=1, help="members to evict at the end")
    parser.add_argument(
        "--lifetime", type=float, default=600.0, help="routing key lifetime in s (default 600)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="s to wait for each step")
    parser.add_argument("--out", default="results", help="folder for run bundles")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for the rekey group (default: random, recorded)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the plots of the bundle")
    args = parser.parse_args(argv)
    if args.scenario not in SCENARIOS:
        parser.error(
            f"unknown scenario {args.scenario!r}; known: "
            + ", ".join(f"{k} ({v})" for k, v in SCENARIOS.items())
        )
    if args.topo:
        parser.error("--topo needs the Mininet testbed, which is not built yet; leave it out")
    if not 1 <= args.members <= 200 or not 0 <= args.evict < args.members or args.rekeys < 0:
        parser.error("--members must be 1..200, --evict 0..members-1, --rekeys >= 0")

    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    rand = random.Random(seed)
    bundle = RunBundle.create(Path(args.out), f"loopback-{args.scenario}", seed, vars(args))
    work = Path(tempfile.mkdtemp(prefix="mrkm-loopback-"))
    members = tuple(f"r{i + 1}.mrkm" for i in range(args.members))
    run = Run(
        work,
        _free_udp_port(),
        f"239.255.{rand.randrange(1, 255)}.{rand.randrange(1, 255)}",
        _free_udp_port(),
        members,
    )
    write_configs(run, os.urandom(32), args.lifetime)
    print(f"MRKM loopback run '{args.scenario}': {SCENARIOS[args.scenario]}")
    print(
        f"  {args.members} GMs, {args.rekeys} rekeys, {args.evict} eviction(s), seed {seed}; "
        f"bundle {bundle.folder}"
    )
    procs = Procs(work)
    collectors = Collectors(bundle.folder)
    failure = None
    try:
        collectors.start()
        run_baseline(run, procs, args.rekeys, args.evict, args.timeout, collectors)
    except (TimeoutError, OSError, KeyError, ValueError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            codes = procs.stop_all()
        finally:
            collectors.stop()
    logs = sorted([*work.glob("*.jsonl"), *work.glob("*.stderr")])
    summary = bundle.finish(logs, exit_codes=codes, failure=failure)
    shutil.rmtree(work, ignore_errors=True)
    if not args.no_plots:
        plot_run(bundle.folder)
    print()
    print_summary(summary)
    if failure:
        print(f"run FAILED: {failure} (logs in {bundle.folder / 'logs'})", file=sys.stderr)
        return 1
    print(f"run OK; bundle in {bundle.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
