"""GCKS and GM configuration: documented dataclasses loaded from YAML (STYLE.md item 11).

Every field carries its unit in its name or comment. ``__post_init__`` checks
raise :class:`ConfigError` with the path of the offending field (for example
``groups[0].atd``) and the reason, including impossible timer combinations.

A GCKS file::

    gcks:
      identity: gcks.mrkm            # ID_FQDN
      listen: 127.0.0.1:848          # registration address and UDP port
      signing_key: gcks.key          # PEM; Ed25519 (default) or ECDSA P-256
      state: gcks-state.json         # persisted atomically after every change
    groups:
      - name: ospfv2-area0           # the IDg (ID_KEY_ID) members register for
        protocol: ospfv2             # ospfv2 | ospfv3
        algorithm: hmac-sha-256      # md5 | hmac-sha-1 | hmac-sha-256 | -384 | -512
        lifetime: 600                # s, GSA_KEY_LIFETIME of each routing key
        rekey_margin: 60             # s before a key expires that its successor is sent
        atd: 5                       # s, GWP_ATD: receivers start sending the new key
        dtd: 10                      # s, GWP_DTD: old key still accepted after that
        rekey_address: 239.192.0.1   # multicast group of GSA_REKEY
        rekey_port: 848
        copies: [0, 0.25, 0.5, 1, 2] # s after the first copy; bitwise-identical copies
        psk: 6d726b6d...             # hex group PSK (or per member below)
        members:                     # authorization list
          - id: r1.mrkm
          - id: r2.mrkm
            psk: 0123...             # per-member PSK overrides the group's
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ALGORITHMS",
    "ConfigError",
    "GcksConfig",
    "GmConfig",
    "GroupConfig",
    "MemberConfig",
    "load_gcks_config",
    "load_gm_config",
    "parse_endpoint",
]

# Routing digest name -> key length in octets (RFC 5709 §3.3: L octets; MD5 16).
ALGORITHMS: dict[str, int] = {
    "md5": 16,
    "hmac-sha-1": 20,
    "hmac-sha-256": 32,
    "hmac-sha-384": 48,
    "hmac-sha-512": 64,
}
PROTOCOLS = ("ospfv2", "ospfv3")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field."""


def _need(cond: bool, where: str, reason: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {reason}")


def parse_endpoint(text: str, where: str) -> tuple[str, int]:
    """``"address:port"`` -> (address, port), with a clear error."""
    host, sep, port = text.rpartition(":")
    _need(bool(sep) and port.isdigit(), where, f"{text!r} is not ADDRESS:PORT")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{where}: {host!r} is not an IP address") from None
    _need(0 < int(port) < 65536, where, f"port {port} out of range")
    return host, int(port)


def _hex(text: Any, where: str) -> bytes:
    try:
        value = bytes.fromhex(str(text))
    except ValueError:
        raise ConfigError(f"{where}: not a hex string") from None
    _need(len(value) >= 16, where, "a PSK needs at least 16 octets")
    return value


@dataclass(frozen=True)
class MemberConfig:
    """One authorized member: its identity (ID_FQDN) and optional own PSK."""

    id: str
    psk: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GroupConfig:
    """One group: a routing protocol instance and how its keys roll."""

    name: str
    protocol: str = "ospfv2"
    algorithm: str = "hmac-sha-256"
    lifetime: float = 600.0
    rekey_margin: float = 60.0
    atd: int = 5
    dtd: int = 10
    rekey_address: str = "239.192.0.1"
    rekey_port: int = 848
    copies: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
    psk: bytes | None = field(default=None, repr=False)
    members: tuple[MemberConfig, ...] = ()
    where: str = field(default="group", compare=False, repr=False)

    def __post_init__(self) -> None:
        w = self.where
        _need(bool(self.name) and len(self.name) <= 64, f"{w}.name", "1 to 64 characters")
        _need(
            self.protocol in PROTOCOLS,
            f"{w}.protocol",
            f"{self.protocol!r} is not one of {', '.join(PROTOCOLS)}",
        )
        _need(
            self.algorithm in ALGORITHMS,
            f"{w}.algorithm",
            f"{self.algorithm!r} is not one of {', '.join(ALGORITHMS)}",
        )
        _need(
            not (self.protocol == "ospfv3" and self.algorithm == "md5"),
            f"{w}.algorithm",
            "the OSPFv3 trailer (RFC 7166) has no Keyed-MD5",
        )
        _need(self.lifetime >= 10, f"{w}.lifetime", "must be at least 10 seconds")
        _need(
            0 <= self.atd <= 0xFFFF and 0 <= self.dtd <= 0xFFFF,
            f"{w}.atd",
            "ATD and DTD are 16-bit seconds (RFC 9838 §4.4.3)",
        )
        _need(
            self.atd < self.lifetime,
            f"{w}.atd",
            f"ATD {self.atd} s must be shorter than the key lifetime {self.lifetime} s",
        )
        _need(
            self.copies == tuple(sorted(self.copies)) and bool(self.copies) and self.copies[0] == 0,
            f"{w}.copies",
            "an ascending schedule starting at 0",
        )
        window = self.copies[-1]
        _need(
            self.rekey_margin > self.atd + window,
            f"{w}.rekey_margin",
            f"{self.rekey_margin} s leaves no time: the successor must be sent, copied "
            f"({window} s) and activated (ATD {self.atd} s) before the old key expires",
        )
        _need(
            self.rekey_margin < self.lifetime,
            f"{w}.rekey_margin",
            "must be shorter than the key lifetime",
        )
        try:
            group = ipaddress.IPv4Address(self.rekey_address)
        except ValueError:
            raise ConfigError(f"{w}.rekey_address: not an IPv4 address") from None
        _need(group.is_multicast, f"{w}.rekey_address", "must be a multicast group")
        _need(0 < self.rekey_port < 65536, f"{w}.rekey_port", "out of range")
        _need(
            self.psk is not None or all(m.psk for m in self.members),
            f"{w}.psk",
            "needed unless every member has its own psk",
        )

    @property
    def key_len(self) -> int:
        """Octets of each routing key (exactly L for HMAC-SHA; 16 for MD5)."""
        return ALGORITHMS[self.algorithm]


@dataclass(frozen=True)
class GcksConfig:
    """The key server: identity, where it listens, its signing key, its groups."""

    identity: str
    listen: tuple[str, int]
    groups: tuple[GroupConfig, ...]
    signing_key: Path | None = None
    state: Path | None = None
    cookie_threshold: int = 64  # half-open IKE SAs before COOKIEs are demanded
    max_half_open: int = 4096

    def __post_init__(self) -> None:
        _need(bool(self.groups), "groups", "at least one group")
        names = [g.name for g in self.groups]
        _need(len(set(names)) == len(names), "groups", "group names must be unique")
        _need(
            0 < self.cookie_threshold <= self.max_half_open,
            "gcks.cookie_threshold",
            "must be between 1 and max_half_open",
        )

    def group(self, name: str) -> GroupConfig | None:
        """The group of that name."""
        return next((g for g in self.groups if g.name == name), None)


@dataclass(frozen=True)
class GmConfig:
    """A group member: identity, the GCKS, the groups to join, retry timers."""

    identity: str
    gcks: tuple[str, int]
    groups: tuple[str, ...]
    psk: bytes | None = field(default=None, repr=False)
    interface: str | None = None  # where the rekey multicast group is joined
    retransmit_initial: float = 0.5  # s, first retransmission; doubles, with jitter
    retransmit_max: float = 8.0  # s, cap of one retransmission interval
    registration_timeout: float = 30.0  # s, one attempt's budget before starting over
    retry_delay: float = 5.0  # s, base back-off before a new attempt after a failure
    repair_margin: float = 10.0  # s before a key expires without successor: re-register

    def __post_init__(self) -> None:
        _need(bool(self.groups), "gm.groups", "at least one group")
        _need(
            0 < self.retransmit_initial <= self.retransmit_max,
            "gm.retransmit_initial",
            "must be positive and at most retransmit_max",
        )
        _need(
            self.registration_timeout > self.retransmit_initial,
            "gm.registration_timeout",
            "must exceed the first retransmission",
        )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    _need(isinstance(value, Mapping), where, "expected a mapping")
    return value  # type: ignore[no-any-return]


def _known(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    _need(not extra, where, f"unknown field(s) {', '.join(extra)}")


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return _mapping(data, str(path))


def _group(data: Mapping[str, Any], where: str) -> GroupConfig:
    fields = {
        "name",
        "protocol",
        "algorithm",
        "lifetime",
        "rekey_margin",
        "atd",
        "dtd",
        "rekey_address",
        "rekey_port",
        "copies",
        "psk",
        "members",
    }
    _known(data, fields, where)
    members = []
    for i, raw in enumerate(data.get("members") or ()):
        m = _mapping(raw, f"{where}.members[{i}]")
        _known(m, {"id", "psk"}, f"{where}.members[{i}]")
        _need("id" in m, f"{where}.members[{i}].id", "missing")
        psk = _hex(m["psk"], f"{where}.members[{i}].psk") if "psk" in m else None
        members.append(MemberConfig(str(m["id"]), psk))
    kwargs: dict[str, Any] = {
        k: data[k] for k in fields - {"psk", "members", "copies"} if k in data
    }
    try:
        return GroupConfig(
            **kwargs,
            copies=tuple(float(c) for c in data.get("copies", GroupConfig.copies)),
            psk=_hex(data["psk"], f"{where}.psk") if "psk" in data else None,
            members=tuple(members),
            where=where,
        )
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_gcks_config(path: Path) -> GcksConfig:
    """Read and check a GCKS configuration file."""
    data = _read_yaml(path)
    _known(data, {"gcks", "groups"}, str(path))
    gcks = _mapping(data.get("gcks"), "gcks")
    _known(
        gcks,
        {"identity", "listen", "signing_key", "state", "cookie_threshold", "max_half_open"},
        "gcks",
    )
    _need("identity" in gcks, "gcks.identity", "missing")
    groups = data.get("groups")
    if not isinstance(groups, list):
        raise ConfigError("groups: expected a list")
    base = path.parent
    return GcksConfig(
        identity=str(gcks["identity"]),
        listen=parse_endpoint(str(gcks.get("listen", "0.0.0.0:848")), "gcks.listen"),
        groups=tuple(
            _group(_mapping(g, f"groups[{i}]"), f"groups[{i}]") for i, g in enumerate(groups)
        ),
        signing_key=base / gcks["signing_key"] if "signing_key" in gcks else None,
        state=base / gcks["state"] if "state" in gcks else None,
        cookie_threshold=int(gcks.get("cookie_threshold", 64)),
        max_half_open=int(gcks.get("max_half_open", 4096)),
    )


def load_gm_config(path: Path) -> GmConfig:
    """Read and check a GM configuration file (``gm:`` mapping)."""
    data = _read_yaml(path)
    _known(data, {"gm"}, str(path))
    gm = _mapping(data.get("gm"), "gm")
    allowed = {
        "identity",
        "gcks",
        "groups",
        "psk",
        "interface",
        "retransmit_initial",
        "retransmit_max",
        "registration_timeout",
        "retry_delay",
        "repair_margin",
    }
    _known(gm, allowed, "gm")
    for key in ("identity", "gcks", "groups"):
        _need(key in gm, f"gm.{key}", "missing")
    timers = {k: float(gm[k]) for k in allowed if k in gm and k.startswith(("re",))}
    return GmConfig(
        identity=str(gm["identity"]),
        gcks=parse_endpoint(str(gm["gcks"]), "gm.gcks"),
        groups=tuple(str(g) for g in gm["groups"]),
        psk=_hex(gm["psk"], "gm.psk") if "psk" in gm else None,
        interface=str(gm["interface"]) if "interface" in gm else None,
        **timers,
    )
