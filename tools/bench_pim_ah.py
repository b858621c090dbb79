"""Benchmark of the PIM AH shim: added latency per packet and packets per second.

Needs root (network namespaces, iptables, NFQUEUE). Two namespaces ``a`` and
``b`` joined by a veth pair; a sender in ``a`` sends PIM-like packets (IP
protocol 103, a PIM Hello header, then a sequence number and a send time on
CLOCK_MONOTONIC, which all processes of the host share) to ``b``, where a raw
socket receives them. Three paths are measured in the same run, in
alternating rounds, so that the host's load falls on all of them alike:

* ``kernel``: no rules, the bare kernel path (the baseline of baselines);
* ``nfqueue``: both ends queue the packets to a pass-through NFQUEUE reader
  (:class:`mrkm.sinks.nfqueue.Queue`, NF_ACCEPT unchanged): the cost of
  going to userspace and back twice, with the shim's own rules;
* ``shim``: both ends run the real shim (``python -m mrkm.sinks.pim_ah``)
  with one HMAC-SHA-256-128 SA: ``a`` inserts AH, ``b`` verifies and strips.

Latency: one packet every 2 ms, one-way (send to receive), median and p90.
Throughput: the sender sends as fast as it can for 2 s; packets/s is what
arrives at ``b`` (the queue drops what the reader cannot take). The shim's
added latency per packet is reported against both baselines, and its pure
packet work (:class:`mrkm.sinks.pim_ah.AhShim` protect + verify/strip, no IO)
next to a bare HMAC-SHA-256 of the same octets.

Results: ``results/bench/<time>/bench-pim-ah.json`` and a table on stdout.
Usage: ``sudo .venv/bin/python tools/bench_pim_ah.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mrkm.keytable import KeyRow  # noqa: E402
from mrkm.sinks.pim_ah import AhShim, iptables_rules  # noqa: E402

QUEUE = 11
SPI = 0x4D524B4D
ADDR_A, ADDR_B = "10.79.0.1", "10.79.0.2"

SENDER = r"""
import socket, struct, sys, time
mode, dst, count, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 103)
hello = bytes([0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105])
end = time.monotonic() + gap if mode == "flood" else None
seq = 0
while True:
    if end is not None and seq % 64 == 0 and time.monotonic() >= end:
        break
    if end is None and seq >= count:
        break
    s.sendto(hello + struct.pack("!QQ", seq, time.monotonic_ns()), (dst, 0))
    seq += 1
    if end is None:
        time.sleep(gap)
print(seq)
"""
RECEIVER = r"""
import json, select, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 103)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
print("ready", flush=True)
lat, first, last, n = [], None, None, 0
while True:
    r, _, _ = select.select([s], [], [], 1.5 if n else 20)
    if not r:
        break
    data = s.recv(4096)
    now = time.monotonic_ns()
    ihl = (data[0] & 15) * 4
    if data[9] != 103 or len(data) < ihl + 26:
        continue
    seq, sent = struct.unpack("!QQ", data[ihl + 10 : ihl + 26])
    first = first or now
    last = now
    n += 1
    lat.append((now - sent) / 1e3)
print(json.dumps({"n": n, "span_s": (last - first) / 1e9 if n > 1 else 0, "lat_us": lat}))
"""
PASSTHROUGH = r"""
import signal, sys
from mrkm.sinks.nfqueue import NF_ACCEPT, Queue, Verdict
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
q = Queue(int(sys.argv[1]), lambda p: Verdict(NF_ACCEPT), max_len=4096)
print("ready", flush=True)
while not stop:
    q.poll(0.05)
q.close()
"""


def sh(*cmd: str, check: bool = True) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip()}")
    return result.stdout


class Bed:
    """Two namespaces joined by a veth pair; removed on close."""

    def __init__(self, prefix: str) -> None:
        self.a, self.b = f"{prefix}a", f"{prefix}b"
        self.made: list[str] = []

    def __enter__(self) -> Bed:
        for ns in (self.a, self.b):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "bq0", "netns", self.a, "type", "veth", "peer", "name", "bq1",
           "netns", self.b)  # fmt: skip
        sh("ip", "-n", self.a, "addr", "add", f"{ADDR_A}/24", "dev", "bq0")
        sh("ip", "-n", self.b, "addr", "add", f"{ADDR_B}/24", "dev", "bq1")
        sh("ip", "-n", self.a, "link", "set", "bq0", "up")
        sh("ip", "-n", self.b, "link", "set", "bq1", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in reversed(self.made):
            sh("ip", "netns", "delete", ns, check=False)


def _popen(ns: str, args: list[str], out: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, *args],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


def _stop(popen: subprocess.Popen[str]) -> None:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(5)


@contextlib.contextmanager
def path(bed: Bed, mode: str, work: Path) -> Iterator[None]:
    """Set up the ``kernel``, ``nfqueue`` or ``shim`` path on both ends; tear it down after."""
    procs: list[subprocess.Popen[str]] = []
    rules: list[str] = []
    try:
        if mode == "nfqueue":
            for ns in (bed.a, bed.b):
                proc = _popen(ns, ["-c", PASSTHROUGH, str(QUEUE)])
                procs.append(proc)
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
                for args in iptables_rules("MRKM-AH-bench", QUEUE):
                    sh("ip", "netns", "exec", ns, "iptables", "-w", "-t", "mangle", *args)
                rules.append(ns)
        elif mode == "shim":
            now = time.time()
            row = KeyRow("bench", "pim-ah", SPI, "hmac-sha-256-128", os.urandom(32), now - 1,
                         now - 1, now + 3600, now + 3600)  # fmt: skip
            keys = work / "keys.json"
            keys.write_text(json.dumps({"generation": 1, "rows": [row.to_json(with_key=True)]}))
            for ns in (bed.a, bed.b):
                status = work / f"status-{ns}.json"
                status.unlink(missing_ok=True)
                args = ["-m", "mrkm.sinks.pim_ah", "--keys", str(keys), "--status", str(status),
                        "--queue", str(QUEUE), "--tag", "bench"]  # fmt: skip
                procs.append(_popen(ns, args, subprocess.DEVNULL))
                deadline = time.monotonic() + 15
                while not (status.exists() and json.loads(status.read_text()).get("generation")):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the shim in {ns} did not start")
                    time.sleep(0.05)
        yield
    finally:
        for ns in rules:
            for args in (["-D", "INPUT", "-p", "51", "-j", "MRKM-AH-bench"],
                         ["-D", "INPUT", "-p", "103", "-j", "MRKM-AH-bench"],
                         ["-D", "OUTPUT", "-p", "103", "-j", "MRKM-AH-bench"],
                         ["-F", "MRKM-AH-bench"], ["-X", "MRKM-AH-bench"]):  # fmt: skip
                sh("ip", "netns", "exec", ns, "iptables", "-w", "-t", "mangle", *args, check=False)
        for proc in procs:
            _stop(proc)


def run_once(bed: Bed, kind: str, count: int, gap: float) -> dict[str, Any]:
    """One latency (``kind="paced"``) or throughput (``"flood"``) run from a to b."""
    receiver = _popen(bed.b, ["-c", RECEIVER])
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
    sender = _popen(bed.a, ["-c", SENDER, kind, ADDR_B, str(count), str(gap)])
    sent_out, _ = sender.communicate(timeout=120)
    out, _ = receiver.communicate(timeout=120)
    result: dict[str, Any] = json.loads(out)
    result["sent"] = int(sent_out.strip() or 0)
    return result


def pure_work(n: int = 5000) -> dict[str, float]:
    """µs per packet of the shim's packet logic (protect + verify/strip), next to one HMAC."""
    now = time.time()
    row = KeyRow("bench", "pim-ah", SPI, "hmac-sha-256-128", os.urandom(32), 0, 0, now * 2, now * 2)
    sender, receiver = AhShim(), AhShim()
    sender.load([row])
    receiver.load([row])
    header = bytes.fromhex("4500001e00004000016700000a4f00010a4f0002")
    packet = header + bytes([0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105])
    start = time.perf_counter()
    for _ in range(n):
        wire = sender.outbound(packet, now)
        assert wire is not None and receiver.inbound(wire, now) is not None
    shim_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n):
        hmac.new(row.key, packet + bytes(28), hashlib.sha256).digest()
    hmac_us = (time.perf_counter() - start) / n * 1e6
    return {
        "shim_protect_and_verify_us": round(shim_us, 2),
        "bare_hmac_sha256_us": round(hmac_us, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per path")
    parser.add_argument("--paced", type=int, default=300, help="packets per latency run")
    parser.add_argument("--flood", type=float, default=2.0, help="s of each throughput run")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (namespaces, iptables, NFQUEUE)", file=sys.stderr)
        return 2
    modes = ("kernel", "nfqueue", "shim")
    lat: dict[str, list[float]] = {m: [] for m in modes}
    pps: dict[str, list[float]] = {m: [] for m in modes}
    lost: dict[str, int] = dict.fromkeys(modes, 0)
    with tempfile.TemporaryDirectory() as tmp, Bed(f"mkbq{os.getpid() % 1000}") as bed:
        for _ in range(args.rounds):
            for mode in modes:
                with path(bed, mode, Path(tmp)):
                    paced = run_once(bed, "paced", args.paced, 0.002)
                    lat[mode] += paced["lat_us"]
                    lost[mode] += paced["sent"] - paced["n"]
                    flood = run_once(bed, "flood", 0, args.flood)
                    if flood["span_s"] > 0:
                        pps[mode].append(flood["n"] / flood["span_s"])
    table: dict[str, Any] = {}
    for mode in modes:
        ordered = sorted(lat[mode])
        table[mode] = {
            "latency_median_us": round(statistics.median(ordered), 1),
            "latency_p90_us": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
            "paced_lost": lost[mode],
            "pps_median": round(statistics.median(pps[mode])) if pps[mode] else 0,
        }
    shim, queue, kernel = table["shim"], table["nfqueue"], table["kernel"]
    summary = {
        "added_latency_us_vs_kernel": round(
            shim["latency_median_us"] - kernel["latency_median_us"], 1
        ),
        "added_latency_us_vs_nfqueue": round(
            shim["latency_median_us"] - queue["latency_median_us"], 1
        ),
        "latency_ratio_vs_kernel": round(
            shim["latency_median_us"] / kernel["latency_median_us"], 2
        ),
        "latency_ratio_vs_nfqueue": round(
            shim["latency_median_us"] / queue["latency_median_us"], 2
        ),
        "pps_ratio_vs_kernel": round(shim["pps_median"] / max(1, kernel["pps_median"]), 3),
        "pps_ratio_vs_nfqueue": round(shim["pps_median"] / max(1, queue["pps_median"]), 3),
    }
    work = pure_work()
    print(f"{'path':<8} {'lat med µs':>11} {'lat p90 µs':>11} {'lost':>5} {'pkts/s':>9}")
    for mode in modes:
        row = table[mode]
        print(
            f"{mode:<8} {row['latency_median_us']:>11} {row['latency_p90_us']:>11} "
            f"{row['paced_lost']:>5} {row['pps_median']:>9}"
        )
    for key, value in {**summary, **work}.items():
        print(f"{key}: {value}")
    out = REPO / "results" / "bench" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "host": {
            "python": platform.python_version(),
            "load": os.getloadavg(),
            "cpus": os.cpu_count(),
        },
        "rounds": args.rounds,
        "paths": table,
        "summary": summary,
        "pure_work": work,
    }
    (out / "bench-pim-ah.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out / 'bench-pim-ah.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
