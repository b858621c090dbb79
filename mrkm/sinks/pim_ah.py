"""PIM protected with AH (RFC 5796, RFC 4302) in userspace: the ``pim_ah`` sink and its shim.

This kernel has no IPsec AH and FRR's pimd no authentication of its own, so a
small daemon in each router's namespace, the *shim*, does AH for pimd on
NFQUEUE (``python -m mrkm.sinks.pim_ah``):

* iptables (mangle table, chain ``MRKM-AH-<tag>``, removed on stop) queues
  every locally sent PIM packet (IP protocol 103, to 224.0.0.13 and unicast
  alike) and every locally received AH (51) or PIM (103) packet;
* outgoing PIM gets AH in transport mode with the current send SA
  (HMAC-SHA-256-128 or HMAC-SHA-1-96; the Sequence Number is a per-SA
  counter from 1, which with RFC 9838's "32-bit Unspecified Numbers" SN
  transform nobody checks);
* incoming AH is looked up by SPI among the SAs within their accept lifetime,
  verified, stripped and handed on as plain PIM, so pimd never sees AH;
* unprotected PIM, unknown or expired SPIs, bad ICVs and malformed packets
  are dropped and counted by reason. The shim fails closed: with no key (or
  when it is not running, since a queue without a reader drops) no PIM
  passes at all.

Keys come from the GM as a key file that the ``pim_ah`` sink writes
(atomic, mode 0600): the GM installs key table rows of protocol ``pim-ah``
(key id = SPI), and :meth:`PimAhSink.install` returns once the shim's status
file shows it loaded them, which makes ``t_install`` the moment the shim
holds the keys. A shim keeps its keys across GM restarts. The shim sleeps
until a packet, a signal or a new key file arrives (inotify on the key
file's directory, :mod:`mrkm.sinks.dirwatch`); without inotify it looks at
the file every 50 ms.

Rollover semantics (RFC 9838 §4.4.3, like the OSPFv3 key chain): every row
is kept with its absolute lifetimes and the shim judges each packet at its
own time. Inbound accepts every SA from ``accept_start`` to ``accept_end``,
so both SPIs during the overlap; outbound uses the newest SA whose send
window holds, so it switches at the activation time (received + ATD) on its
own, and no scheduled re-install is needed.

Replay: the SN transform of a multi-sender SA is "Unspecified", so there is
no anti-replay window (RFC 9838 §2.6): a captured packet replayed while its
SA is still accepted passes (pimd then sees a duplicate hello, which is
harmless); once the SA's accept lifetime ends it is dropped as
``unknown-spi``. Per-sender SAs with sequence checks are not implemented.

Sink configuration (GM side)::

    sinks:
      - type: pim_ah
        keys: pim-ah.keys.json        # the shim's --keys file
        status: pim-ah.status.json    # the shim's --status file (for the ack)
        group: pim-sm                 # optional: only this group's keys
        timeout: 5                    # optional, s to wait for the shim's ack (0: no wait)

Shim (in the router's namespace)::

    python -m mrkm.sinks.pim_ah --keys pim-ah.keys.json --status pim-ah.status.json \\
        --log pim-ah.jsonl --queue 7 --tag r1 --node r1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mrkm.config import ConfigError
from mrkm.crypto.routing_ah import (
    IPPROTO_AH,
    ah_parse_ipv4,
    ah_protect_ipv4,
    ah_strip_ipv4,
    ah_verify,
)
from mrkm.errors import IntegrityCheckFailed, MrkmError
from mrkm.fileio import atomic_write
from mrkm.keytable import KeyRow
from mrkm.sinks.base import InstallResult, Sink, SinkError, register_sink
from mrkm.sinks.dirwatch import watch_directory
from mrkm.wire.registry import IntegId

__all__ = [
    "ALGORITHMS",
    "PROTOCOL",
    "AhSa",
    "AhShim",
    "PimAhSink",
    "ShimDaemon",
    "iptables_rules",
    "main",
]

#: The key table protocol name of PIM AH keys (:data:`mrkm.keytable.PROTOCOL_NAMES`).
PROTOCOL = "pim-ah"
IPPROTO_PIM = 103
#: Key table algorithm names the shim takes, and their AH integrity transforms.
ALGORITHMS: dict[str, int] = {
    "hmac-sha-256-128": IntegId.AUTH_HMAC_SHA2_256_128,
    "hmac-sha-1-96": IntegId.AUTH_HMAC_SHA1_96,
}
_KEY_LEN: dict[int, int] = {IntegId.AUTH_HMAC_SHA2_256_128: 32, IntegId.AUTH_HMAC_SHA1_96: 20}
DROP_LOG_INTERVAL = 1.0  # s: at most one pim_ah_drop event per reason per interval
STATUS_INTERVAL = 0.5  # s between status file rewrites while counters change
POLL = 0.05  # s the shim waits for packets before looking at the key file again (no inotify)
POLL_WATCHED = 1.0  # s between looks at the key file when inotify wakes the shim on a new one


@dataclass(frozen=True)
class AhSa:
    """One AH SA of the group: SPI, transform, key and absolute lifetimes."""

    spi: int
    integ: int
    key: bytes
    accept_start: float
    send_start: float
    send_end: float
    accept_end: float

    @classmethod
    def from_row(cls, row: KeyRow) -> AhSa:
        """The SA of a ``pim-ah`` key table row; ValueError says what is wrong."""
        if row.protocol != PROTOCOL:
            raise ValueError(f"key {row.key_id}: protocol {row.protocol!r} is not {PROTOCOL}")
        integ = ALGORITHMS.get(row.algorithm)
        if integ is None:
            raise ValueError(
                f"key {row.key_id}: algorithm {row.algorithm!r} is not one of "
                f"{', '.join(ALGORITHMS)}"
            )
        if len(row.key) != _KEY_LEN[integ]:
            raise ValueError(
                f"key {row.key_id}: {len(row.key)} octets, {row.algorithm} needs {_KEY_LEN[integ]}"
            )
        if not 256 <= row.key_id <= 0xFFFFFFFF:
            raise ValueError(f"key {row.key_id}: an AH SPI is 256 to 2^32-1 (RFC 4302 §2.4)")
        return cls(
            row.key_id,
            integ,
            row.key,
            row.accept_start,
            row.send_start,
            row.send_end,
            row.accept_end,
        )


class AhShim:
    """The shim's packet logic, without IO: protect outgoing PIM, verify incoming AH.

    :meth:`outbound` and :meth:`inbound` return the packet to pass on, or
    None to drop it; the reason of the last drop is in :attr:`last_drop`,
    and :attr:`counters` counts everything by name.
    """

    def __init__(self) -> None:
        self.sas: dict[int, AhSa] = {}
        self.counters: dict[str, int] = {}
        self._sequence: dict[int, int] = {}
        self.last_drop = ""
        self.sending_spi: int | None = None  # the SPI of the last protected packet

    def load(self, rows: Sequence[KeyRow]) -> list[int]:
        """Replace the SAs with those of ``rows`` (``pim-ah`` rows only); return their SPIs.

        A bad row raises ValueError and changes nothing. Sequence counters of
        SAs that stay are kept.
        """
        sas = {sa.spi: sa for sa in (AhSa.from_row(r) for r in rows if r.protocol == PROTOCOL)}
        self.sas = sas
        self._sequence = {spi: n for spi, n in self._sequence.items() if spi in sas}
        return sorted(sas)

    def send_sa(self, now: float) -> AhSa | None:
        """The SA to send with at ``now``: the newest whose send window holds."""
        live = [sa for sa in self.sas.values() if sa.send_start <= now < sa.send_end]
        return max(live, key=lambda sa: sa.send_start, default=None)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _drop(self, direction: str, reason: str) -> None:
        self.last_drop = reason
        self._count(f"{direction}_dropped.{reason}")

    def outbound(self, packet: bytes, now: float) -> bytes | None:
        """Outgoing PIM with AH inserted, or None (``no-send-sa``, ``malformed``)."""
        sa = self.send_sa(now)
        if sa is None:
            self._drop("out", "no-send-sa")
            return None
        sequence = self._sequence.get(sa.spi, 0) % 0xFFFFFFFF + 1  # 1..2^32-1, then wraps
        try:
            protected = ah_protect_ipv4(sa.integ, sa.key, packet, spi=sa.spi, sequence=sequence)
        except (MrkmError, ValueError):
            self._drop("out", "malformed")
            return None
        self._sequence[sa.spi] = sequence
        self.sending_spi = sa.spi
        self._count("out_protected")
        return protected

    def inbound(self, packet: bytes, now: float) -> bytes | None:
        """Incoming AH verified and stripped to plain PIM, or None.

        Drop reasons: ``unprotected`` (PIM without AH), ``malformed``,
        ``unknown-spi`` (no SA with that SPI is accepted now: never known,
        not yet valid, or expired), ``bad-icv``, ``not-pim`` (AH around
        something other than PIM).
        """
        protocol = packet[9] if len(packet) >= 20 else -1
        if protocol == IPPROTO_PIM:
            self._drop("in", "unprotected")
            return None
        if protocol != IPPROTO_AH:
            self._drop("in", "malformed")
            return None
        try:
            header = ah_parse_ipv4(packet)
        except MrkmError:
            self._drop("in", "malformed")
            return None
        sa = self.sas.get(header.spi)
        if sa is None or not sa.accept_start <= now < sa.accept_end:
            self._drop("in", "unknown-spi")
            return None
        try:
            ah_verify(sa.integ, sa.key, packet)
        except IntegrityCheckFailed:
            self._drop("in", "bad-icv")
            return None
        except (MrkmError, ValueError):
            self._drop("in", "malformed")
            return None
        if header.next_header != IPPROTO_PIM:
            self._drop("in", "not-pim")
            return None
        self._count("in_accepted")
        return ah_strip_ipv4(packet)


# -- the daemon -------------------------------------------------------------------------------


def iptables_rules(chain: str, queue: int) -> list[list[str]]:
    """The iptables commands (mangle table) that send PIM and AH through queue ``queue``.

    Native nft ``queue`` is missing from this kernel; iptables' NFQUEUE target
    works (``reference/routers.md``). Outgoing: PIM only. Incoming: AH and PIM.
    """
    q = ["-j", "NFQUEUE", "--queue-num", str(queue)]
    return [
        ["-N", chain],
        ["-A", chain, "-p", str(IPPROTO_AH), *q],
        ["-A", chain, "-p", str(IPPROTO_PIM), *q],
        ["-I", "INPUT", "1", "-p", str(IPPROTO_AH), "-j", chain],
        ["-I", "INPUT", "1", "-p", str(IPPROTO_PIM), "-j", chain],
        ["-I", "OUTPUT", "1", "-p", str(IPPROTO_PIM), "-j", chain],
    ]


def _removal(chain: str) -> list[list[str]]:
    return [
        ["-D", "INPUT", "-p", str(IPPROTO_AH), "-j", chain],
        ["-D", "INPUT", "-p", str(IPPROTO_PIM), "-j", chain],
        ["-D", "OUTPUT", "-p", str(IPPROTO_PIM), "-j", chain],
        ["-F", chain],
        ["-X", chain],
    ]


class _JsonLines:
    """The shim's event log: one JSON object per line, ``t``/``event``/``node`` first,
    the same shape as the GM's log (:mod:`mrkm.runtime.eventlog`)."""

    def __init__(self, path: Path | None, node: str) -> None:
        self.node = node
        self._out: TextIO | None = path.open("a", buffering=1) if path is not None else None

    def write(self, t: float, event: str, **fields: Any) -> None:
        if self._out is not None:
            record = {"t": round(t, 6), "event": event, "node": self.node, **fields}
            self._out.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


class ShimDaemon:
    """The shim process: rules, the queue, the key file, the status file, the event log."""

    def __init__(
        self,
        keys: Path,
        status: Path,
        queue: int = 7,
        tag: str = "0",
        log: Path | None = None,
        node: str = "",
        clock: Callable[[], float] = time.time,
        iptables: str = "iptables",
    ) -> None:
        if not tag or len(tag) > 20 or not tag.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"--tag: {tag!r} must be 1 to 20 letters, digits, - or _")
        self.keys, self.status, self.queue_number = keys, status, queue
        self.chain = f"MRKM-AH-{tag}"
        self.clock, self.iptables = clock, iptables
        self.shim = AhShim()
        self.log = _JsonLines(log, node or os.uname().nodename)
        self.started = clock()
        self.generation: int | None = None
        self._key_stamp: tuple[int, int] | None = None
        self._last_drop_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._status_at = 0.0
        self._status_counters: dict[str, int] | None = None
        self._stop = False
        self._last_sending: int | None = None
        self._queue: Any = None

    # -- rules --

    def _ipt(self, args: list[str], check: bool) -> None:
        cmd = [self.iptables, "-w", "-t", "mangle", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise MrkmError(f"{' '.join(cmd)}: {result.stderr.strip()}")

    def install_rules(self) -> None:
        """Add the chain and its jumps (after removing any left by a crashed shim)."""
        self.remove_rules()
        for args in iptables_rules(self.chain, self.queue_number):
            self._ipt(args, check=True)

    def remove_rules(self) -> None:
        """Remove the chain and its jumps; missing pieces are fine."""
        for args in _removal(self.chain):
            self._ipt(args, check=False)

    # -- keys and status --

    def reload(self) -> bool:
        """Load the key file if it changed; True if new keys were taken."""
        try:
            st = self.keys.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self._key_stamp:
            return False
        self._key_stamp = stamp
        now = self.clock()
        try:
            data = json.loads(self.keys.read_text())
            rows = [KeyRow.from_json(r) for r in data["rows"]]
            spis = self.shim.load(rows)
            generation = int(data.get("generation", 0))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log.write(now, "pim_ah_keys_rejected", reason=str(exc))
            return False
        self.generation = generation
        self.log.write(now, "pim_ah_keys_loaded", generation=generation, spis=spis)
        self.write_status(now)
        return True

    def status_record(self, now: float) -> dict[str, Any]:
        """What the status file holds (also the shim's answer to ``mrkm status``-like tools)."""
        send = self.shim.send_sa(now)
        return {
            "pid": os.getpid(),
            "started": self.started,
            "updated": round(now, 6),
            "queue": self.queue_number,
            "chain": self.chain,
            "generation": self.generation,
            "send_spi": send.spi if send else None,
            "accept_spis": sorted(
                s.spi for s in self.shim.sas.values() if s.accept_start <= now < s.accept_end
            ),
            "counters": dict(sorted(self.shim.counters.items())),
            "overruns": self._queue.overruns if self._queue is not None else 0,
        }

    def write_status(self, now: float) -> None:
        """Rewrite the status file atomically (mode 0644: it holds no key)."""
        atomic_write(
            self.status, json.dumps(self.status_record(now), indent=1).encode() + b"\n", 0o644
        )
        self._status_at = now
        self._status_counters = dict(self.shim.counters)

    # -- packets --

    def handle(self, packet: Any) -> Any:
        """The queue's handler: one verdict per packet, drops logged (rate-limited)."""
        from mrkm.sinks.nfqueue import NF_ACCEPT, NF_DROP, NF_INET_LOCAL_OUT, Verdict

        now = self.clock()
        if packet.hook == NF_INET_LOCAL_OUT:
            out = self.shim.outbound(packet.payload, now)
            direction = "out"
            if out is not None and self.shim.sending_spi != self._last_sending:
                self.log.write(
                    now,
                    "pim_ah_send_switch",
                    spi=self.shim.sending_spi,
                    previous=self._last_sending,
                )
                self._last_sending = self.shim.sending_spi
        else:
            out = self.shim.inbound(packet.payload, now)
            direction = "in"
        if out is not None:
            return Verdict(NF_ACCEPT, out)
        self._log_drop(now, direction, packet.payload)
        return Verdict(NF_DROP)

    def _log_drop(self, now: float, direction: str, payload: bytes) -> None:
        reason = f"{direction}:{self.shim.last_drop}"
        if now - self._last_drop_log.get(reason, -1e9) < DROP_LOG_INTERVAL:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last_drop_log[reason] = now
        ihl = (payload[0] & 0x0F) * 4 if payload else 0
        spi = None
        if len(payload) >= ihl + 8 and payload[9:10] == bytes([IPPROTO_AH]):
            spi = int.from_bytes(payload[ihl + 4 : ihl + 8], "big")
        self.log.write(
            now,
            "pim_ah_drop",
            direction=direction,
            reason=self.shim.last_drop,
            src=".".join(str(b) for b in payload[12:16]) if len(payload) >= 20 else "",
            dst=".".join(str(b) for b in payload[16:20]) if len(payload) >= 20 else "",
            spi=spi,
            suppressed=self._suppressed.pop(reason, 0),
        )

    def _on_error(self, exc: BaseException) -> None:
        self.log.write(self.clock(), "pim_ah_error", reason=f"{type(exc).__name__}: {exc}")

    # -- lifecycle --

    def stop(self, *_args: object) -> None:
        """Ask the loop to end (signal handler)."""
        self._stop = True

    def run(self) -> int:
        """Bind the queue, add the rules, serve until SIGTERM/SIGINT, remove the rules."""
        from mrkm.sinks.nfqueue import Queue

        self._queue = Queue(self.queue_number, self.handle, self._on_error)
        # Sleep in select until a packet, a new key file (inotify on its directory) or a
        # signal (the wake-up pipe: SIGTERM must not wait out the timeout) arrives.
        watch = watch_directory(self.keys.parent)
        signal_r, signal_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous_wakeup = signal.set_wakeup_fd(signal_w, warn_on_full_buffer=False)
        wake = [signal_r] if watch is None else [signal_r, watch.fileno()]
        timeout = POLL if watch is None else POLL_WATCHED
        try:
            self.install_rules()
            self.reload()
            now = self.clock()
            self.write_status(now)
            self.log.write(
                now,
                "pim_ah_started",
                queue=self.queue_number,
                chain=self.chain,
                key_watch="inotify" if watch else f"poll {POLL} s",
            )
            while not self._stop:
                self._queue.poll(timeout, wake)
                if watch is not None:
                    watch.drain()  # before reload: a file renamed in after this wakes us again
                with contextlib.suppress(BlockingIOError):
                    os.read(signal_r, 512)
                self.reload()
                now = self.clock()
                changed = self.shim.counters != self._status_counters
                if changed and now - self._status_at >= STATUS_INTERVAL:
                    self.write_status(now)
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            os.close(signal_r)
            os.close(signal_w)
            if watch is not None:
                watch.close()
            self.remove_rules()
            self._queue.close()
            now = self.clock()
            self.write_status(now)
            self.log.write(now, "pim_ah_stopped", counters=dict(self.shim.counters))
            self.log.close()
        return 0


# -- the sink ---------------------------------------------------------------------------------


class PimAhSink(Sink):
    """Hand ``pim-ah`` key table rows to the shim through its key file; wait for its ack."""

    kind = "pim_ah"

    def __init__(
        self, name: str, keys: Path, status: Path, group: str | None = None, timeout: float = 5.0
    ) -> None:
        super().__init__(name)
        self.keys, self.status, self.group, self.timeout = keys, status, group, timeout
        self._generation = time.time_ns()

    def relevant(self, rows: Sequence[KeyRow]) -> list[KeyRow]:
        """The ``pim-ah`` rows (of ``group``, if set)."""
        return [
            r
            for r in rows
            if r.protocol == PROTOCOL and (self.group is None or r.group == self.group)
        ]

    def check(self, row: KeyRow) -> None:
        """Refuse rows the shim cannot use (algorithm, key length, SPI range)."""
        try:
            AhSa.from_row(row)
        except ValueError as exc:
            raise SinkError(f"{self.name}: {exc}") from None

    def _read_status(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.status.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def install(self, rows: Sequence[KeyRow], now: float) -> InstallResult:
        """Write the key file; return when the shim reports that generation loaded."""
        self._generation = max(self._generation + 1, time.time_ns())
        generation = self._generation
        table = {
            "generation": generation,
            "written": round(now, 6),
            "rows": [r.to_json(with_key=True) for r in rows],
        }
        start = time.perf_counter()
        try:
            atomic_write(self.keys, json.dumps(table, indent=1).encode() + b"\n")
        except OSError as exc:
            raise SinkError(f"{self.name}: cannot write {self.keys}: {exc.strerror}") from None
        key_ids = tuple(r.key_id for r in rows)
        keys = tuple(f"{r.protocol}:{r.key_id}" for r in rows)
        if self.timeout <= 0:
            return InstallResult(self.name, True, time.perf_counter() - start, 1, key_ids, "", keys)
        deadline = start + self.timeout
        while time.perf_counter() < deadline:
            status = self._read_status()
            if status is not None and status.get("generation") == generation:
                took = time.perf_counter() - start
                return InstallResult(self.name, True, took, 1, key_ids, "", keys)
            time.sleep(0.005)
        raise SinkError(
            f"{self.name}: the PIM AH shim did not load {self.keys} within {self.timeout} s "
            f"(is it running? status file {self.status})"
        )

    def router_epoch(self) -> str | None:
        """The shim's PID and start time: a restarted shim re-reads the key file anyway."""
        status = self._read_status()
        if status is None:
            return None
        return f"{status.get('pid')}@{status.get('started')}"


@register_sink("pim_ah")
def _build(name: str, entry: Mapping[str, Any], where: str) -> Sink:
    extra = sorted(set(entry) - {"type", "name", "keys", "status", "group", "timeout"})
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(extra)}")
    for key in ("keys", "status"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise ConfigError(f"{where}.{key}: missing (a path shared with the shim)")
    timeout = entry.get("timeout", 5.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout < 0:
        raise ConfigError(f"{where}.timeout: {timeout!r} is not a number of seconds >= 0")
    group = entry.get("group")
    return PimAhSink(
        name,
        Path(entry["keys"]),
        Path(entry["status"]),
        str(group) if group is not None else None,
        float(timeout),
    )


# -- command line -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mrkm.sinks.pim_ah``: run the shim in the current network namespace."""
    parser = argparse.ArgumentParser(
        prog="python -m mrkm.sinks.pim_ah",
        description="Userspace AH (RFC 4302) for PIM (RFC 5796) on NFQUEUE, keyed by MRKM.",
    )
    parser.add_argument("--keys", type=Path, required=True, help="key file the pim_ah sink writes")
    parser.add_argument("--status", type=Path, required=True, help="status file to write")
    parser.add_argument("--log", type=Path, help="JSON-lines event log")
    parser.add_argument("--queue", type=int, default=7, help="NFQUEUE number (default 7)")
    parser.add_argument("--tag", default="0", help="names the iptables chain MRKM-AH-<tag>")
    parser.add_argument("--node", default="", help="node name in the event log")
    args = parser.parse_args(argv)
    try:
        daemon = ShimDaemon(args.keys, args.status, args.queue, args.tag, args.log, args.node or "")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, daemon.stop)
    signal.signal(signal.SIGINT, daemon.stop)
    try:
        return daemon.run()
    except (MrkmError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
