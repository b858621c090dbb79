"""The ``bird`` sink: OSPF password blocks in an included file, then BIRD's ``configure``.

BIRD 2.0.12 (reference/routers.md §4) reads its OSPF keys from ``password``
blocks inside each interface block of ``protocol ospf v2`` (RFC 2328 App. D,
RFC 5709) and ``protocol ospf v3`` (RFC 7166 trailer). The operator's
``bird.conf`` says ``authentication cryptographic;`` and
``include "<file>";`` in every interface block that MRKM keys; this sink owns
those files, one per protocol::

    interface "r1-r2" { type ptp; authentication cryptographic;
                        include "/etc/bird/mrkm-ospfv2.conf"; };

Rollover semantics: BIRD switches by itself. Every row becomes one block::

    password 5a:01:...:e7 {      # the key octets (BIRD "bytestring")
      id 7;                     # key_id (OSPFv2 Key ID, OSPFv3 SA ID)
      algorithm hmac sha256;
      generate from "2026-11-27 08:18:03.391303";   # send_start
      generate to "2026-11-27 08:28:03.391304";     # send_end (+1 µs, see below)
      accept from "2026-11-27 08:18:02.391302";     # accept_start
      accept to "2026-11-27 08:28:13.391304";       # accept_end
    };

BIRD sends with the password whose ``generate from < now < generate to``
has the latest ``generate from`` and accepts a packet whose id matches a
password with ``accept from <= now < accept to`` (nest/password.c), so the
switch to a new key happens inside BIRD at its ``send_start`` with no
further router call: :meth:`BirdSink.next_change` is None. An install writes
the files atomically and makes ONE router call, BIRD's ``configure`` (what
``birdc -s SOCKET configure`` sends; about 2 ms; OSPF is not restarted by a
password change). If BIRD refuses the new configuration it keeps the old
one; the sink then puts the old files back and raises :class:`SinkError`
with BIRD's message. Files whose text did not change are not rewritten.

Times are written in local time (BIRD parses them with mktime), to the
microsecond: ``accept from`` is rounded down and ``accept to`` up, so the
accept window never shrinks; ``generate from`` is rounded up (later, still
inside every peer's accept window). BIRD's send test is strict at both ends,
so ``generate to`` is one microsecond past ``send_end``: at the switch
instant the old key still covers it, and from then on the new one, with the
later ``generate from``, wins. The GM and BIRD must run with the same time
zone (UTC on the testbed; a local time inside a DST fold is ambiguous).

Key encoding: BIRD passwords are C strings unless written as a bytestring,
colon-separated hex octets (``password 00:1f:...``; 2.0.12 does not take
``hex:``), which BIRD stores with an explicit length. HMAC-SHA keys are
written that way: BIRD gets the exact key octets, zero octets included
(tests/test_sink_bird.py recomputes captured digests from the GM's keys).
Keyed-MD5 is different: BIRD 2.0.12 copies the password into the 16-octet
digest key with ``strncpy`` (measured), so octets after a zero octet would
be lost, and FRR takes MD5 keys only as text. Both sinks therefore use one
mapping for Keyed-MD5: the password is the text
:func:`mrkm.sinks.keystrings.md5_key_string` makes, the unpadded
base64url of the first 12 key octets (16 characters, 96 bits), so BIRD and
FRR routers of one group compute the same digests. Password ids are 0-255
in BIRD 2.0.12 (config grammar), also for the 16-bit OSPFv3 SA ID;
:meth:`BirdSink.check` refuses larger ones.

BIRD keys HMAC-SHA with plain RFC 2104 HMAC, without RFC 5709's (and RFC
7166's) hashing of keys longer than L (routers.md Addendum). With the
L-octet keys MRKM hands out, OSPFv2 agrees with RFC 5709; the OSPFv3 key
``K || 0x0001`` is L + 2 octets, which RFC 7166 hashes and BIRD does not, so
BIRD's trailer agrees only with BIRD (measured; FRR 8.4 disagrees anyway,
routers.md §2.3).

Configuration::

    sinks:
      - type: bird
        socket: /run/bird/bird.ctl        # BIRD's control socket (bird -s)
        ospfv2:                           # at least one of ospfv2 / ospfv3
          include: /etc/bird/mrkm-ospfv2.conf
          group: ospfv2-area0             # optional: only this group's keys
        ospfv3:
          include: /etc/bird/mrkm-ospfv3.conf
          group: ospfv3-area0
        pidfile: /run/bird/bird.pid       # optional: restart detection by pid + start time
        client: socket                    # socket (default) | birdc
        birdc: birdc                      # with client birdc: the program
        timeout: 10                       # s, optional: longest router call

The router call is BIRD's CLI command ``configure``, on the control socket.
``client: socket`` (the default) speaks birdc's line protocol itself: connect,
read the ``0001`` greeting, send ``configure``, read up to the last line
(``0003 Reconfigured``; ``8002 file:line:col message`` when refused). It
makes the same call as ``birdc -s SOCKET configure`` without starting a
process each time, which costs about as much as BIRD's reconfiguration
itself (tools/bench_sinks.py); ``client: birdc`` runs the program instead.

Restart detection (:meth:`BirdSink.router_epoch`): with ``pidfile``, BIRD's
pid and its start time from ``/proc``; without it, the identity (inode and
change time) of the control socket, which BIRD creates anew at every start.
"""

from __future__ import annotations

import math
import os
import socket as _socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from mrkm.config import ALGORITHMS, ConfigError
from mrkm.fileio import atomic_write
from mrkm.keytable import KeyRow
from mrkm.sinks.base import InstallResult, Sink, SinkError, register_sink
from mrkm.sinks.keystrings import md5_key_string

__all__ = [
    "BIRD_ALGORITHMS",
    "BirdCliReader",
    "BirdProtocol",
    "BirdSink",
    "bird_time",
    "password",
    "render_passwords",
]

#: MRKM algorithm name -> BIRD ``algorithm`` keyword, per protocol. OSPFv3 (RFC 7166)
#: has HMAC-SHA only; BIRD refuses keyed algorithms there.
BIRD_ALGORITHMS: dict[str, dict[str, str]] = {
    "ospfv2": {
        "md5": "keyed md5",
        "hmac-sha-1": "hmac sha1",
        "hmac-sha-256": "hmac sha256",
        "hmac-sha-384": "hmac sha384",
        "hmac-sha-512": "hmac sha512",
    },
    "ospfv3": {
        "hmac-sha-1": "hmac sha1",
        "hmac-sha-256": "hmac sha256",
        "hmac-sha-384": "hmac sha384",
        "hmac-sha-512": "hmac sha512",
    },
}
MAX_PASSWORD_ID = 255  # BIRD 2.0.12 nest/config.Y: "Password ID must be in range 0-255"
#: What ``birdc configure`` prints when BIRD took the new configuration.
_ACCEPTED = ("Reconfigured", "Reconfiguration in progress", "queueing new config")
_MICRO = 1_000_000


@dataclass(frozen=True)
class BirdProtocol:
    """One OSPF instance's keys: the file BIRD includes, and which group feeds it."""

    protocol: str  # "ospfv2" | "ospfv3"
    include: Path
    group: str | None = None  # None: every group of this protocol

    def wants(self, row: KeyRow) -> bool:
        """True if ``row`` belongs in this file."""
        return row.protocol == self.protocol and self.group in (None, row.group)


def _micros(t: float, up: bool) -> int:
    """``t`` in whole microseconds, rounded down or ``up`` exactly (no float error)."""
    exact = Fraction(t) * _MICRO
    return math.ceil(exact) if up else math.floor(exact)


def _format(micros: int) -> str:
    seconds, frac = divmod(micros, _MICRO)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{frac:06d}"


def bird_time(t: float, up: bool) -> str:
    """``t`` (unix seconds) as BIRD's ``"yyyy-mm-dd HH:MM:SS.ffffff"``, local time.

    Rounded to the microsecond, down or ``up``.
    """
    return _format(_micros(t, up))


def _generate_to(row: KeyRow) -> str:
    """``send_end`` + 1 µs (BIRD's ``now < generate to`` is strict), at most ``accept_end``."""
    if row.send_end <= row.send_start:
        return bird_time(row.send_start, up=True)  # empty window: BIRD never sends it
    return _format(min(_micros(row.send_end, True) + 1, _micros(row.accept_end, True)))


def password(row: KeyRow) -> str:
    """The ``password`` value for ``row``: key octets as a bytestring; MD5 as FRR's text."""
    if row.algorithm == "md5":
        return f'"{md5_key_string(row.key)}"'  # base64url: no quote or backslash to escape
    return row.key.hex(":")


def render_passwords(rows: Sequence[KeyRow], header: str = "") -> str:
    """The text of one include file: a ``password`` block per row, in row order."""
    lines = [
        "# Written by MRKM (mrkm.sinks.bird); every change is replaced. Do not edit.",
    ]
    if header:
        lines.append(f"# {header}")
    for row in rows:
        algorithm = BIRD_ALGORITHMS[row.protocol][row.algorithm]
        lines += [
            f"password {password(row)} {{",
            f"  id {row.key_id};",
            f"  algorithm {algorithm};",
            f'  generate from "{bird_time(row.send_start, up=True)}";',
            f'  generate to "{_generate_to(row)}";',
            f'  accept from "{bird_time(row.accept_start, up=False)}";',
            f'  accept to "{bird_time(row.accept_end, up=True)}";',
            "};",
        ]
    return "\n".join(lines) + "\n"


class BirdSink(Sink):
    """Keep BIRD's OSPF password files equal to the key table; one ``configure`` each time."""

    kind = "bird"

    def __init__(
        self,
        name: str,
        socket: Path,
        protocols: Sequence[BirdProtocol],
        pidfile: Path | None = None,
        birdc: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(name)
        self.socket, self.protocols = socket, tuple(protocols)
        #: None: speak to the control socket directly; else the birdc program to run.
        self.pidfile, self.birdc, self.timeout = pidfile, birdc, timeout

    # -- what BIRD can use ---------------------------------------------------------------

    def _protocol(self, row: KeyRow) -> BirdProtocol | None:
        return next((p for p in self.protocols if p.wants(row)), None)

    def relevant(self, rows: Sequence[KeyRow]) -> list[KeyRow]:
        """The rows of the configured protocols (and groups)."""
        return [r for r in rows if self._protocol(r) is not None]

    def check(self, row: KeyRow) -> None:
        """Refuse algorithms, key lengths and ids BIRD 2.0.12 cannot use."""
        what = f"{self.name}: {row.protocol} key {row.key_id} ({row.algorithm})"
        if self._protocol(row) is None:
            raise SinkError(
                f"{what}: this sink has no {row.protocol} section for group {row.group}"
            )
        algorithms = BIRD_ALGORITHMS[row.protocol]
        if row.algorithm not in algorithms:
            raise SinkError(
                f"{what}: BIRD cannot use {row.algorithm} for {row.protocol}; it takes "
                f"{', '.join(algorithms)}"
                + (" (the RFC 7166 trailer has no Keyed-MD5)" if row.protocol == "ospfv3" else "")
            )
        want = ALGORITHMS[row.algorithm]
        if len(row.key) != want:
            raise SinkError(
                f"{what}: key of {len(row.key)} octets; {row.algorithm} keys must be exactly "
                f"{want} octets (BIRD keys HMAC without RFC 5709's preparation, which agrees "
                "only for L-octet keys; Keyed-MD5 keys are 16 octets)"
            )
        if not 0 <= row.key_id <= MAX_PASSWORD_ID:
            raise SinkError(
                f"{what}: BIRD 2.0.12 password ids are 0-{MAX_PASSWORD_ID}; "
                f"key id {row.key_id} cannot be configured"
            )
        times = (row.accept_start, row.send_start, row.send_end, row.accept_end)
        if not all(math.isfinite(t) and t > 86400 for t in times):
            raise SinkError(f"{what}: lifetimes {times} are not dates BIRD can parse")

    # -- installing ----------------------------------------------------------------------

    def render(self, rows: Sequence[KeyRow], now: float) -> dict[Path, str]:
        """Each include file's text for ``rows`` at ``now`` (expired rows left out)."""
        live = [r for r in rows if r.accept_end > now]
        texts: dict[Path, str] = {}
        for proto in self.protocols:
            mine = sorted((r for r in live if proto.wants(r)), key=lambda r: r.send_start)
            header = f"{proto.protocol} keys" + (f" of group {proto.group}" if proto.group else "")
            texts[proto.include] = render_passwords(mine, header)
        return texts

    def install(self, rows: Sequence[KeyRow], now: float) -> InstallResult:
        """Write the password files (only those that changed), then one ``configure``.

        ``seconds`` in the result is the whole install: render, write, router call.
        """
        start = time.perf_counter()
        texts = self.render(rows, now)
        previous: dict[Path, bytes | None] = {}
        for path, text in texts.items():
            data = text.encode()
            try:
                old: bytes | None = path.read_bytes()
            except FileNotFoundError:
                old = None
            except OSError as exc:
                raise SinkError(f"{self.name}: cannot read {path}: {exc.strerror}") from None
            if old == data:
                continue
            previous[path] = old
            self._write(path, data)
        reply = self._configure()
        if not reply.accepted:
            if reply.reached:
                # BIRD refused and runs the old configuration: put the old files
                # back so that a restart reads what runs now. (When BIRD is not
                # running, the new files stay: it reads them when it starts.)
                for path, old in previous.items():
                    if old is not None:
                        self._write(path, old)
            raise SinkError(f"{self.name}: BIRD configure failed: {reply.message}")
        live = [r for r in rows if r.accept_end > now and self._protocol(r) is not None]
        return InstallResult(
            self.name,
            True,
            time.perf_counter() - start,
            1,
            tuple(r.key_id for r in live),
            reply.message,
            tuple(f"{r.protocol}:{r.key_id}" for r in live),
        )

    def _write(self, path: Path, data: bytes) -> None:
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise SinkError(f"{self.name}: cannot write {path}: {exc.strerror}") from None

    def _configure(self) -> _Reply:
        """The one router call: BIRD's ``configure``, directly or through birdc."""
        return self._configure_birdc() if self.birdc else self._configure_socket()

    def _configure_birdc(self) -> _Reply:
        assert self.birdc is not None
        cmd = [self.birdc, "-s", str(self.socket), "configure"]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except FileNotFoundError:
            raise SinkError(f"{self.name}: {self.birdc}: program not found") from None
        except subprocess.TimeoutExpired:
            raise SinkError(
                f"{self.name}: birdc configure gave no answer within {self.timeout} s"
            ) from None
        return _Reply.parse(done.returncode, done.stdout + done.stderr)

    def _configure_socket(self) -> _Reply:
        """``configure`` over BIRD's control socket, as birdc sends it."""
        try:
            with _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                try:
                    sock.connect(str(self.socket))
                except OSError as exc:
                    message = (
                        f"Unable to connect to server control socket ({self.socket}): "
                        f"{exc.strerror}"
                    )
                    return _Reply.parse(1, message)
                reader = BirdCliReader(sock)
                reader.reply()  # 0001 BIRD 2.0.12 ready.
                sock.sendall(b"configure\n")
                code, text = reader.reply()
        except TimeoutError:
            raise SinkError(
                f"{self.name}: BIRD gave no answer to configure within {self.timeout} s"
            ) from None
        except OSError as exc:
            raise SinkError(f"{self.name}: BIRD control socket {self.socket}: {exc}") from None
        # Reply codes 0xxx are success, 8xxx/9xxx errors (BIRD doc/prog: CLI).
        return _Reply.parse(0 if code < 8000 else 1, text)

    # -- restarts ------------------------------------------------------------------------

    def router_epoch(self) -> str | None:
        """BIRD's pid and start time (with ``pidfile``), else the control socket's identity."""
        if self.pidfile is not None:
            try:
                pid = int(self.pidfile.read_text().split()[0])
                stat = Path(f"/proc/{pid}/stat").read_text()
            except (OSError, ValueError, IndexError):
                return None
            # Field 22 (starttime) counts from after the parenthesised command name.
            fields = stat.rpartition(")")[2].split()
            return f"pid {pid} started {fields[19]}" if len(fields) > 19 else None
        try:
            st = os.stat(self.socket)
        except OSError:
            return None
        return f"socket {st.st_dev}:{st.st_ino}:{st.st_ctime_ns}"


@dataclass(frozen=True)
class _Reply:
    accepted: bool  # BIRD took the configuration
    reached: bool  # birdc reached BIRD (False: BIRD is not running)
    message: str

    @classmethod
    def parse(cls, returncode: int, output: str) -> _Reply:
        """Did BIRD take the configuration? The message drops birdc's banner lines."""
        lines = [
            line.strip()
            for line in output.splitlines()
            if line.strip() and not line.startswith(("BIRD ", "Reading configuration"))
        ]
        message = "; ".join(lines) or f"no answer (exit status {returncode})"
        accepted = returncode == 0 and any(a in line for line in lines for a in _ACCEPTED)
        reached = not any(line.startswith("Unable to connect") for line in lines)
        return cls(accepted, reached, message)


class BirdCliReader:
    """Read BIRD CLI replies: ``NNNN-text`` continues, `` text`` too, ``NNNN text`` ends.

    Used by this sink and by the testbed's BIRD routers (``testbed.bird_router``).
    """

    def __init__(self, sock: _socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def reply(self) -> tuple[int, str]:
        """(code of the last line, the reply's text without codes, one line each)."""
        lines: list[str] = []
        while True:
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError("BIRD closed the control socket")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\n", 1)
            line = raw.decode(errors="replace")
            if len(line) >= 5 and line[:4].isdigit() and line[4] in "- ":
                lines.append(line[5:])
                if line[4] == " ":
                    return int(line[:4]), "\n".join(lines)
            else:
                lines.append(line[1:])


_FIELDS = {"type", "name", "socket", "ospfv2", "ospfv3", "pidfile", "client", "birdc", "timeout"}


def _protocol_section(value: Any, protocol: str, where: str) -> BirdProtocol:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'include' (and optional 'group')")
    extra = sorted(set(value) - {"include", "group"})
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(extra)}")
    include = value.get("include")
    if not include or not isinstance(include, str | os.PathLike):
        raise ConfigError(f"{where}.include: missing (the file BIRD includes in its interfaces)")
    group = value.get("group")
    if group is not None and (not isinstance(group, str) or not group):
        raise ConfigError(f"{where}.group: a group name")
    return BirdProtocol(protocol, Path(include), group)


@register_sink("bird")
def _build(name: str, entry: Mapping[str, Any], where: str) -> Sink:
    extra = sorted(set(entry) - _FIELDS)
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(extra)}")
    socket = entry.get("socket")
    if not socket or not isinstance(socket, str | os.PathLike):
        raise ConfigError(f"{where}.socket: missing (BIRD's control socket, bird -s)")
    protocols = [
        _protocol_section(entry[p], p, f"{where}.{p}") for p in ("ospfv2", "ospfv3") if p in entry
    ]
    if not protocols:
        raise ConfigError(f"{where}: needs an ospfv2 or ospfv3 section (include file, group)")
    if len({p.include for p in protocols}) != len(protocols):
        raise ConfigError(f"{where}.ospfv3.include: OSPFv2 and OSPFv3 need different files")
    pidfile = entry.get("pidfile")
    if pidfile is not None and (not pidfile or not isinstance(pidfile, str | os.PathLike)):
        raise ConfigError(f"{where}.pidfile: a path")
    client = entry.get("client", "socket")
    if client not in ("socket", "birdc"):
        raise ConfigError(f"{where}.client: {client!r} is not socket or birdc")
    birdc = entry.get("birdc", "birdc" if client == "birdc" else None)
    if client == "socket" and birdc is not None:
        raise ConfigError(f"{where}.birdc: only with client: birdc")
    if client == "birdc" and (not isinstance(birdc, str) or not birdc):
        raise ConfigError(f"{where}.birdc: a program name or path")
    timeout = entry.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        raise ConfigError(f"{where}.timeout: seconds, more than 0 and at most 300")
    return BirdSink(
        name,
        Path(socket),
        protocols,
        Path(pidfile) if pidfile is not None else None,
        birdc,
        float(timeout),
    )
