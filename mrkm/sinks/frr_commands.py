"""The ``frr`` sink's pure half: key strings, lifetimes, desired state, vtysh command batches.

Nothing here talks to a router; :mod:`mrkm.sinks.frr` runs what this module
computes. Measured FRR 8.4.4 behaviour this relies on
(``reference/routers.md`` §1.3–1.4, §2.2, and this module's tests):

* ospfd sends AND accepts only the **last** ``message-digest-key`` of an
  interface. ``ip ospf message-digest-key N md5 S`` on an id that exists
  replaces it and moves it to the end, so that one command always makes
  ``N``/``S`` the key in use. ``no ip ospf message-digest-key N`` fails when
  ``N`` is absent, which stops a ``vtysh -c`` batch.
* ospfd with ``ip ospf authentication message-digest`` and an **empty** key
  list falls back to null authentication (AuType 0) and accepts unauthenticated
  neighbors. The sink therefore never leaves the list empty: with no key to
  send it installs a lock key, a random secret nobody else holds (fail closed).
* ospf6d key chains: the sender takes the first key in index order whose
  ``send-lifetime`` holds, the receiver the first key with index >= the SA ID
  whose ``accept-lifetime`` holds. Lifetimes are whole seconds of local time,
  years 1993–2035, and the end must be later than the start. Without a valid
  key ospf6d sends packets with the AT-bit but no trailer; the chain
  therefore always ends with a lock key, index 65536 (above every SA ID, so
  it is picked only when no MRKM key holds; it goes out as SA ID 0), whose
  random secret nobody else holds.

Key strings: FRR takes keys as text, never as octets; the mapping
(base64url of 12 octets for Keyed-MD5, hex for HMAC) is
:mod:`mrkm.sinks.keystrings`, shared with the BIRD sink.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mrkm.keytable import KeyRow
from mrkm.sinks.keystrings import MD5_KEY_OCTETS, hmac_key_string, md5_key_string

__all__ = [
    "ALWAYS",
    "LOCK_CHAIN_INDEX",
    "LOCK_KEY_ID",
    "MD5_KEY_OCTETS",
    "ChainKey",
    "Desired",
    "KnownState",
    "daemon_batches",
    "desired_state",
    "format_lifetime",
    "hmac_key_string",
    "key_string",
    "md5_key_string",
    "parse_running_config",
    "vtysh_batch",
]

#: Key octets that make up an OSPFv2 Keyed-MD5 key string (16 base64url characters).
#: Key ID of the lock key ospfd holds while no MRKM key may be sent.
LOCK_KEY_ID = 255
#: Index of the key chain's lock key: above every 16-bit SA ID.
LOCK_CHAIN_INDEX = 0x10000
#: FRR 8.4 ``(1993-2035)`` year range of key chain lifetimes.
YEAR_MIN, YEAR_MAX = 1993, 2035
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: A lifetime that never holds (FRR needs end > start): one second of 1993.
NEVER = "00:00:00 1 Jan 1993 00:00:01 1 Jan 1993"
#: A lifetime that always holds (the lock key's).
ALWAYS = "00:00:00 1 Jan 1993 infinite"
#: FRR ``cryptographic-algorithm`` names of the algorithms ospf6d 8.4.4 (Debian) can use.
CHAIN_ALGORITHMS = {"hmac-sha-256": "hmac-sha-256", "md5": "md5"}


def key_string(row: KeyRow) -> str:
    """The text FRR is given for ``row``'s key (see the module docstring)."""
    return md5_key_string(row.key) if row.protocol == "ospfv2" else hmac_key_string(row.key)


# -- lifetimes --------------------------------------------------------------------------------


def _year(t: float) -> int:
    return time.localtime(t).tm_year


def _local(t: int) -> str:
    tm = time.localtime(t)
    return (
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} "
        f"{tm.tm_mday} {_MONTHS[tm.tm_mon - 1]} {tm.tm_year}"
    )


def _floor_1993() -> int:
    return int(time.mktime((YEAR_MIN, 1, 1, 0, 0, 0, 0, 0, -1)))


def format_lifetime(start: float, end: float, *, exact_start: bool) -> str:
    """FRR lifetime text for the half-open interval [start, end) of unix time.

    FRR checks whole seconds (``time(NULL)``) against an inclusive [S, E], so
    [S, E] covers real time [S, E + 1). The send interval is rounded so that
    it never starts early: S = ceil(start), E = ceil(end) - 1, and one key's
    send end and the next key's send start never share a second.
    ``exact_start=False`` (accept) rounds the start down instead: accepting
    a key slightly early is harmless. Years past 2035 become ``infinite``;
    an interval FRR cannot hold (shorter than two seconds after rounding)
    becomes :data:`NEVER`.
    """
    first = math.ceil(start) if exact_start else math.floor(start)
    first = max(first, _floor_1993())
    if _year(first) > YEAR_MAX:
        return NEVER
    if math.isinf(end) or _year(end) > YEAR_MAX:
        return f"{_local(first)} infinite"
    last = math.ceil(end) - 1
    if last <= first:
        if exact_start:
            return NEVER
        last = first + 1
    return f"{_local(first)} {_local(last)}"


def _inert_after(row: KeyRow) -> float:
    """When the row's own lifetimes end (FRR's rounded ones end < 1 s later)."""
    return max(row.send_end, row.accept_end)


# -- desired state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainKey:
    """One ``key N`` of the OSPFv3 key chain."""

    index: int
    string: str = field(repr=False)
    algorithm: str
    send: str
    accept: str
    #: After this unix time FRR no longer uses the key (its removal may wait).
    inert_after: float = math.inf


@dataclass(frozen=True)
class Desired:
    """What the router should hold now."""

    #: (key id, key string) that must be the last message-digest-key; None: no OSPFv2.
    md5: tuple[int, str] | None
    #: The MRKM key sent with now, if any (the lock key otherwise).
    md5_row: KeyRow | None
    chain: dict[int, ChainKey]


@dataclass
class Md5Known:
    """The message-digest-keys of one interface, as far as the sink knows."""

    ids: set[int] = field(default_factory=set)
    #: (id, string) known to be the last key; None when unknown (after a read).
    last: tuple[int, str] | None = None


@dataclass
class KnownState:
    """What the router holds, as far as the sink knows."""

    md5: dict[str, Md5Known] = field(default_factory=dict)
    #: Key chain entries; None = present with unknown contents (after a read).
    chain: dict[int, ChainKey | None] = field(default_factory=dict)
    #: True right after a read: re-assert interface authentication settings.
    resync: bool = False


def sending_row(rows: Iterable[KeyRow], protocol: str, now: float) -> KeyRow | None:
    """The newest row of ``protocol`` whose send window holds ``now``."""
    live = [r for r in rows if r.protocol == protocol and r.sending(now)]
    return max(live, key=lambda r: r.send_start, default=None)


def chain_key(row: KeyRow) -> ChainKey:
    """The key chain entry of an OSPFv3 row."""
    return ChainKey(
        index=row.key_id,
        string=hmac_key_string(row.key),
        algorithm=CHAIN_ALGORITHMS[row.algorithm],
        send=format_lifetime(row.send_start, row.send_end, exact_start=True),
        accept=format_lifetime(row.accept_start, row.accept_end, exact_start=False),
        inert_after=_inert_after(row),
    )


def desired_state(
    rows: Sequence[KeyRow],
    now: float,
    *,
    ospfv2: bool,
    ospfv3: bool,
    lock: str,
    chain_lock: str = "",
) -> Desired:
    """The router state ``rows`` call for at ``now`` (rows already checked and relevant).

    ``lock`` is the Keyed-MD5 lock key string, ``chain_lock`` the key chain's
    (hex; no chain lock when empty).
    """
    md5: tuple[int, str] | None = None
    md5_row = None
    if ospfv2:
        md5_row = sending_row(rows, "ospfv2", now)
        if md5_row is not None:
            md5 = (md5_row.key_id, md5_key_string(md5_row.key))
        else:
            md5 = (LOCK_KEY_ID, lock)
    chain: dict[int, ChainKey] = {}
    if ospfv3:
        for row in rows:
            if row.protocol == "ospfv3" and row.accept_end > now:
                chain[row.key_id] = chain_key(row)
        if chain_lock:
            chain[LOCK_CHAIN_INDEX] = ChainKey(
                LOCK_CHAIN_INDEX, chain_lock, "hmac-sha-256", ALWAYS, ALWAYS
            )
    return Desired(md5, md5_row, chain)


# -- command batches --------------------------------------------------------------------------


def _md5_lines(known: Md5Known, want: tuple[int, str], resync: bool) -> list[str]:
    lines = ["ip ospf authentication message-digest"] if resync else []
    if known.last != want:
        lines.append(f"ip ospf message-digest-key {want[0]} md5 {want[1]}")
    lines += [f"no ip ospf message-digest-key {i}" for i in sorted(known.ids - {want[0]})]
    return lines


def _key_lines(old: ChainKey | None, new: ChainKey) -> list[str]:
    """Lifetimes first: a fresh ``key N`` without lifetimes is valid at once."""
    lines = []
    if old is None or old.send != new.send:
        lines.append(f"send-lifetime {new.send}")
    if old is None or old.accept != new.accept:
        lines.append(f"accept-lifetime {new.accept}")
    if old is None or old.algorithm != new.algorithm:
        lines.append(f"cryptographic-algorithm {new.algorithm}")
    if old is None or old.string != new.string:
        lines.append(f"key-string {new.string}")
    return lines


def daemon_batches(
    known: KnownState,
    desired: Desired,
    now: float,
    *,
    ospfv2_interfaces: Sequence[str],
    ospfv3_interfaces: Sequence[str],
    keychain: str,
) -> dict[str, list[str]]:
    """The commands that turn ``known`` into ``desired``, by the daemon that takes them
    ({} when nothing changes): ospfd gets the Keyed-MD5 interface blocks, ospf6d
    the key chain and the OSPFv3 interface resync. Each list starts with
    ``configure terminal``. A sink on the vty transport sends each daemon its
    list (:mod:`mrkm.sinks.frr_vty`); vtysh gets :func:`vtysh_batch` of them.

    Keys of the chain that FRR no longer uses by their own lifetimes are
    removed together with the next real change, never in a call of their own
    (one router call per rekey).
    """
    v2: list[str] = []
    if desired.md5 is not None:
        for ifname in ospfv2_interfaces:
            lines = _md5_lines(known.md5.get(ifname, Md5Known()), desired.md5, known.resync)
            if lines:
                v2 += [f"interface {ifname}", *lines, "exit"]
    v3: list[str] = []
    chain_lines: list[str] = []
    for index in sorted(desired.chain):
        lines = _key_lines(known.chain.get(index), desired.chain[index])
        if lines:
            chain_lines += [f"key {index}", *lines, "exit"]
    stale = sorted(set(known.chain) - set(desired.chain))
    urgent = [i for i in stale if (k := known.chain[i]) is None or k.inert_after > now]
    if stale and (v2 or chain_lines or urgent):
        chain_lines += [f"no key {i}" for i in stale]
    if chain_lines:
        v3 += [f"key chain {keychain}", *chain_lines, "exit"]
    for ifname in ospfv3_interfaces if known.resync else ():
        v3 += [f"interface {ifname}", f"ipv6 ospf6 authentication keychain {keychain}", "exit"]
    return {
        daemon: ["configure terminal", *lines]
        for daemon, lines in (("ospfd", v2), ("ospf6d", v3))
        if lines
    }


def vtysh_batch(parts: Mapping[str, Sequence[str]]) -> list[str]:
    """The per-daemon lists of :func:`daemon_batches` as one vtysh command list
    ([] when nothing changes): vtysh forwards each line to the daemons that know it."""
    out = [line for lines in parts.values() for line in lines[1:]]  # one configure terminal
    while out and out[-1] == "exit":  # vtysh leaves every node when it ends
        out.pop()
    return ["configure terminal", *out] if out else []


def after_batch(
    known: KnownState,
    desired: Desired,
    commands: Sequence[str],
    *,
    ospfv2_interfaces: Sequence[str],
) -> KnownState:
    """What the router holds once ``commands`` (from :func:`daemon_batches`) succeeded."""
    md5 = dict(known.md5)
    if desired.md5 is not None:
        for ifname in ospfv2_interfaces:
            md5[ifname] = Md5Known({desired.md5[0]}, desired.md5)
    removed = {int(c.split()[2]) for c in commands if c.startswith("no key ")}
    chain: dict[int, ChainKey | None] = {
        i: k for i, k in known.chain.items() if i not in removed and i not in desired.chain
    }
    chain.update(desired.chain)
    return KnownState(md5, chain, resync=False)


# -- reading the running configuration -------------------------------------------------------

_MD5_LINE = re.compile(r"^ ip ospf message-digest-key (\d+) md5 (\S+)")
_KEY_LINE = re.compile(r"^ key (\d+)$")


def parse_running_config(
    text: str, ospfv2_interfaces: Sequence[str], keychain: str | None
) -> KnownState:
    """The keys ``show running-config`` lists (vtysh sorts lines: the order is lost).

    Each OSPFv2 interface gets its set of message-digest-key ids (which one is
    last is unknown), the key chain its key indices (contents unknown).
    """
    state = KnownState(resync=True)
    for ifname in ospfv2_interfaces:
        state.md5[ifname] = Md5Known()
    block: tuple[str, str] | None = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            words = line.split()
            if words[:1] == ["interface"] and len(words) >= 2:
                block = ("interface", words[1])
            elif words[:2] == ["key", "chain"] and len(words) >= 3:
                block = ("chain", words[2])
            else:
                block = None
            continue
        if block is None:
            continue
        kind, name = block
        if kind == "interface" and name in state.md5 and (m := _MD5_LINE.match(line)):
            state.md5[name].ids.add(int(m.group(1)))
        elif kind == "chain" and name == keychain and (m := _KEY_LINE.match(line)):
            state.chain[int(m.group(1))] = None
    return state
