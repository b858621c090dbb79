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
      certificate: gcks.pem          # optional: authenticate with this certificate...
      ca: ca.pem                     # ...and accept member certificates from this CA
      rekey_interface: lo            # IP_MULTICAST_IF for GSA_REKEY (interface name)
      rekey_source: 127.0.0.1        # source address of rekeys (routable for PIM RPF)
      multicast_ttl: 16              # IP_MULTICAST_TTL of GSA_REKEY
    groups:
      - name: ospfv2-area0           # the IDg (ID_KEY_ID) members register for
        protocol: ospfv2             # ospfv2 | ospfv3 | pim (AH, RFC 5796)
        algorithm: hmac-sha-256      # md5 | hmac-sha-1 | hmac-sha-256 | -384 | -512
                                     # pim: hmac-sha-256 (AUTH_HMAC_SHA2_256_128)
                                     #      or hmac-sha-1 (AUTH_HMAC_SHA1_96)
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

A GM file::

    gm:
      identity: r1.mrkm
      gcks: 127.0.0.1:848            # where to register
      groups: [ospfv2-area0]
      psk: 6d726b6d...               # or certificate + key + ca below
      certificate: r1.mrkm.pem
      key: r1.mrkm.key
      ca: ca.pem
      gcks_identity: gcks.mrkm       # optional: accept only this GCKS identity
      listen: 0.0.0.0:0              # unicast address:port (0 = any port)
      interface: lo                  # the one interface the rekey groups are joined on
      interface_address: 127.0.0.1   # or: join by the interface's address
      rekey_groups: [239.192.0.1:848]  # multicast groups to join (RFC 9838 §4.4.2)

The runtime fields (paths, interfaces, TTL) are read by :mod:`mrkm.runtime`;
the protocol cores ignore them.
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
    "IKE_PORT",
    "PIM_ALGORITHMS",
    "PROTOCOLS",
    "ConfigError",
    "GcksConfig",
    "GmConfig",
    "GroupConfig",
    "MemberConfig",
    "load_gcks_config",
    "load_gm_config",
    "parse_endpoint",
    "parse_group",
]

# Routing digest name -> key length in octets (RFC 5709 §3.3: L octets; MD5 16).
ALGORITHMS: dict[str, int] = {
    "md5": 16,
    "hmac-sha-1": 20,
    "hmac-sha-256": 32,
    "hmac-sha-384": 48,
    "hmac-sha-512": 64,
}
PROTOCOLS = ("ospfv2", "ospfv3", "pim")
# PIM is protected with AH (RFC 5796 §3, RFC 4302), whose integrity transforms are
# the truncated IPsec HMACs: hmac-sha-256 means AUTH_HMAC_SHA2_256_128 (RFC 4868)
# and hmac-sha-1 AUTH_HMAC_SHA1_96 (RFC 2404); the keys are as long as for OSPF.
PIM_ALGORITHMS = ("hmac-sha-256", "hmac-sha-1")


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the field."""


def _need(cond: bool, where: str, reason: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {reason}")


def parse_endpoint(
    text: str, where: str, default_port: int | None = None, any_port: bool = False
) -> tuple[str, int]:
    """``"address:port"`` -> (address, port), with a clear error.

    With ``default_port`` a bare IPv4 address is accepted; ``any_port``
    allows port 0 (the kernel picks one).
    """
    if default_port is not None and ":" not in text:
        text = f"{text}:{default_port}"
    host, sep, port = text.rpartition(":")
    _need(bool(sep) and port.isdigit(), where, f"{text!r} is not ADDRESS:PORT")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{where}: {host!r} is not an IP address") from None
    low = 0 if any_port else 1
    _need(low <= int(port) < 65536, where, f"port {port} out of range")
    return host, int(port)


def _ipv4(text: str, where: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not an IPv4 address") from None


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
    # s between signed heartbeats on the rekey group when nothing else is sent:
    # keeps PIM (S,G) state (keepalive 210 s) so a rekey is not the first packet
    # of a new (S,G), which FRR 8.4.4 loses (pim-local-and-tshark.md §6). 0 = off.
    heartbeat: float = 60.0
    prime: float = 1.0  # s before each periodic rekey: one heartbeat primes (S,G); 0 = off
    where: str = field(default="group", compare=False, repr=False)

    def __post_init__(self) -> None:
        w = self.where
        _need(
            isinstance(self.name, str) and 1 <= len(self.name) <= 64,
            f"{w}.name",
            "1 to 64 characters of text",
        )
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
        _need(
            self.protocol != "pim" or self.algorithm in PIM_ALGORITHMS,
            f"{w}.algorithm",
            f"{self.algorithm!r} cannot protect PIM: AH (RFC 5796, RFC 4302) takes "
            "hmac-sha-256 (AUTH_HMAC_SHA2_256_128) or hmac-sha-1 (AUTH_HMAC_SHA1_96)"
            + (", and has no Keyed-MD5" if self.algorithm == "md5" else ""),
        )
        _need(self.lifetime >= 10, f"{w}.lifetime", "must be at least 10 seconds")
        for name in ("atd", "dtd"):
            value = getattr(self, name)
            _need(
                isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF,
                f"{w}.{name}",
                f"{value!r}: GWP_ATD and GWP_DTD are whole 16-bit seconds "
                "(0 to 65535, RFC 9838 §4.4.3)",
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
        # Whether a PSK is needed depends on the GCKS's certificates: GcksConfig checks it.

        _need(
            self.heartbeat == 0 or 1 <= self.heartbeat < 210,
            f"{w}.heartbeat",
            "0 (off) or 1 to 209 seconds: PIM forgets an (S,G) after 210 s without traffic",
        )
        _need(
            0 <= self.prime < self.rekey_margin - self.copies[-1],
            f"{w}.prime",
            "must be 0 (off) or leave the rekey and its copies inside rekey_margin",
        )

    @property
    def key_len(self) -> int:
        """Octets of each routing key (exactly L for HMAC-SHA; 16 for MD5)."""
        return ALGORITHMS[self.algorithm]


@dataclass(frozen=True)
class GcksConfig:
    """The key server: identity, where it listens, its signing key, its groups.

    The last fields are for :mod:`mrkm.runtime` only: certificate files, and
    how GSA_REKEY leaves the host (IP_MULTICAST_IF by interface name or by
    local address, IP_MULTICAST_TTL in hops).
    """

    identity: str
    listen: tuple[str, int]
    groups: tuple[GroupConfig, ...]
    signing_key: Path | None = None
    state: Path | None = None
    cookie_threshold: int = 64  # half-open IKE SAs before COOKIEs are demanded
    max_half_open: int = 4096
    certificate: Path | None = None  # PEM; the GCKS then authenticates by signature
    ca: Path | None = None  # PEM; members may then authenticate with certificates
    rekey_interface: str | None = None  # IP_MULTICAST_IF by interface name
    rekey_source: str | None = None  # IPv4 source of GSA_REKEY (own socket bound to it)
    multicast_ttl: int = 16  # hops, IP_MULTICAST_TTL of GSA_REKEY
    multicast_loop: bool = True  # IP_MULTICAST_LOOP: members on this host hear rekeys

    def __post_init__(self) -> None:
        _need(bool(self.groups), "groups", "at least one group")
        names = [g.name for g in self.groups]
        _need(len(set(names)) == len(names), "groups", "group names must be unique")
        _need(
            0 < self.cookie_threshold <= self.max_half_open,
            "gcks.cookie_threshold",
            "must be between 1 and max_half_open",
        )
        # Without a CA, members can only prove themselves with a PSK.
        if self.ca is None:
            for g in self.groups:
                _need(
                    g.psk is not None or all(m.psk for m in g.members),
                    f"{g.where}.psk",
                    "needed unless every member has its own psk (or gcks.ca is set)",
                )
        # Without a certificate, the GCKS proves itself with a group PSK.
        _need(
            self.certificate is not None
            or any(g.psk is not None or any(m.psk for m in g.members) for g in self.groups),
            "gcks.certificate",
            "needed when no group or member has a psk",
        )
        _need(
            self.certificate is None or self.signing_key is not None,
            "gcks.signing_key",
            "needed with gcks.certificate (it is the certificate's private key)",
        )
        _need(
            self.state is None or self.signing_key is not None,
            "gcks.signing_key",
            "needed with gcks.state: a restarted GCKS must sign rekeys with the same key",
        )
        if self.rekey_source is not None:
            _ipv4(self.rekey_source, "gcks.rekey_source")
        _need(0 <= self.multicast_ttl <= 255, "gcks.multicast_ttl", "must be 0 to 255 hops")

    def group(self, name: str) -> GroupConfig | None:
        """The group of that name."""
        return next((g for g in self.groups if g.name == name), None)


@dataclass(frozen=True)
class GmConfig:
    """A group member: identity, the GCKS, the groups to join, retry timers.

    Credentials are a PSK, or a certificate with its private key and the CA
    that issued the GCKS's certificate. ``listen``, ``interface``,
    ``interface_address`` and ``rekey_groups`` are for :mod:`mrkm.runtime`:
    the GM joins every rekey group on that one interface
    (``reference/pim-local-and-tshark.md`` §3).
    """

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
    # s without any authenticated GSA_REKEY or heartbeat of a group before the GM
    # registers again (a partition or a lost rekey tree); 0 = off. Set it above
    # the GCKS's heartbeat interval (groups[].heartbeat), e.g. 2.5 times it.
    liveness: float = 0.0
    certificate: Path | None = None  # PEM, our certificate (SAN dNSName = identity)
    key: Path | None = None  # PEM, its private key (Ed25519 or ECDSA P-256)
    ca: Path | None = None  # PEM, the CA that issued the GCKS's certificate
    gcks_identity: str | None = None  # accept only this GCKS identity (ID_FQDN)
    listen: tuple[str, int] = ("0.0.0.0", 0)  # unicast socket; port 0 = any
    interface_address: str | None = None  # join rekey groups by this local address
    rekey_groups: tuple[tuple[str, int], ...] = (("239.192.0.1", 848),)
    # Router sinks, as written under gm.sinks; mrkm.sinks.build_sinks checks them.
    sinks: tuple[Mapping[str, Any], ...] = ()

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
        _need(self.liveness >= 0, "gm.liveness", "must be 0 (off) or seconds > 0")
        _need(
            (self.certificate is None) == (self.key is None),
            "gm.key" if self.key is None else "gm.certificate",
            "certificate and key go together",
        )
        _need(
            self.psk is not None or (self.certificate is not None and self.ca is not None),
            "gm.psk",
            "needed unless certificate, key and ca are given",
        )
        _need(
            self.interface is None or self.interface_address is None,
            "gm.interface_address",
            "give interface or interface_address, not both",
        )
        if self.interface_address is not None:
            _ipv4(self.interface_address, "gm.interface_address")
        for i, (address, _port) in enumerate(self.rekey_groups):
            group = _ipv4(address, f"gm.rekey_groups[{i}]")
            _need(group.is_multicast, f"gm.rekey_groups[{i}]", "must be a multicast group")


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


# Group fields that must be numbers (seconds, or the port); atd and dtd are
# checked as whole seconds by GroupConfig itself.
_GROUP_NUMBERS = ("lifetime", "rekey_margin", "heartbeat", "prime", "rekey_port")


def parse_group(data: Any, where: str) -> GroupConfig:
    """One ``groups[]`` entry, checked; ConfigError names the field (e.g. ``groups[0].atd``).

    The testbed checks a scenario's groups with it before building anything."""
    return _group(_mapping(data, where), where)


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
        "heartbeat",
        "prime",
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
    for key in _GROUP_NUMBERS:
        value = data.get(key, 0)
        _need(
            isinstance(value, int | float) and not isinstance(value, bool),
            f"{where}.{key}",
            f"{value!r} is not a number",
        )
    raw_copies = data.get("copies", GroupConfig.copies)
    _need(isinstance(raw_copies, list | tuple), f"{where}.copies", "expected a list of seconds")
    try:
        copies = tuple(float(c) for c in raw_copies)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.copies: {raw_copies!r} is not a list of seconds") from None
    try:
        return GroupConfig(
            **kwargs,
            copies=copies,
            psk=_hex(data["psk"], f"{where}.psk") if "psk" in data else None,
            members=tuple(members),
            where=where,
        )
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


IKE_PORT = 848  # G-IKEv2 registration and rekey port (RFC 9838 §2.1, the GDOI port)


def _path(base: Path, data: Mapping[str, Any], key: str) -> Path | None:
    """A path from the file, relative to the file's folder."""
    return base / str(data[key]) if key in data else None


def _number(data: Mapping[str, Any], key: str, where: str, kind: type[Any]) -> Any:
    try:
        return kind(data[key])
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.{key}: {data[key]!r} is not a {kind.__name__}") from None


def _bool(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data[key]
    _need(isinstance(value, bool), f"{where}.{key}", f"{value!r} is not true or false")
    return bool(value)


def load_gcks_config(path: Path) -> GcksConfig:
    """Read and check a GCKS configuration file."""
    data = _read_yaml(path)
    _known(data, {"gcks", "groups"}, str(path))
    gcks = _mapping(data.get("gcks"), "gcks")
    _known(
        gcks,
        {
            "identity",
            "listen",
            "signing_key",
            "state",
            "cookie_threshold",
            "max_half_open",
            "certificate",
            "ca",
            "rekey_interface",
            "rekey_source",
            "multicast_ttl",
            "multicast_loop",
        },
        "gcks",
    )
    _need("identity" in gcks, "gcks.identity", "missing")
    groups = data.get("groups")
    if not isinstance(groups, list):
        raise ConfigError("groups: expected a list")
    base = path.parent
    return GcksConfig(
        identity=str(gcks["identity"]),
        listen=parse_endpoint(
            str(gcks.get("listen", "0.0.0.0")), "gcks.listen", default_port=IKE_PORT
        ),
        groups=tuple(
            _group(_mapping(g, f"groups[{i}]"), f"groups[{i}]") for i, g in enumerate(groups)
        ),
        signing_key=_path(base, gcks, "signing_key"),
        state=_path(base, gcks, "state"),
        cookie_threshold=_number(gcks, "cookie_threshold", "gcks", int)
        if "cookie_threshold" in gcks
        else 64,
        max_half_open=_number(gcks, "max_half_open", "gcks", int)
        if "max_half_open" in gcks
        else 4096,
        certificate=_path(base, gcks, "certificate"),
        ca=_path(base, gcks, "ca"),
        rekey_interface=str(gcks["rekey_interface"]) if "rekey_interface" in gcks else None,
        rekey_source=str(gcks["rekey_source"]) if "rekey_source" in gcks else None,
        multicast_ttl=_number(gcks, "multicast_ttl", "gcks", int)
        if "multicast_ttl" in gcks
        else 16,
        multicast_loop=_bool(gcks, "multicast_loop", "gcks") if "multicast_loop" in gcks else True,
    )


# Fields of gm.sinks entries that name files or sockets.
_SINK_PATHS = frozenset(
    {"path", "vty_socket", "socket", "config", "include", "pid_file", "keys", "status"}
)


def load_gm_config(path: Path) -> GmConfig:
    """Read and check a GM configuration file (``gm:`` mapping)."""
    data = _read_yaml(path)
    _known(data, {"gm"}, str(path))
    gm = _mapping(data.get("gm"), "gm")
    timers = {
        "retransmit_initial",
        "retransmit_max",
        "registration_timeout",
        "retry_delay",
        "repair_margin",
        "liveness",
    }
    allowed = timers | {
        "identity",
        "gcks",
        "groups",
        "psk",
        "interface",
        "certificate",
        "key",
        "ca",
        "gcks_identity",
        "listen",
        "interface_address",
        "rekey_groups",
        "sinks",
    }
    _known(gm, allowed, "gm")
    for key in ("identity", "gcks", "groups"):
        _need(key in gm, f"gm.{key}", "missing")
    _need(isinstance(gm["groups"], list), "gm.groups", "expected a list of group names")
    base = path.parent
    optional: dict[str, Any] = {k: _number(gm, k, "gm", float) for k in timers if k in gm}
    for key in ("certificate", "key", "ca"):
        optional[key] = _path(base, gm, key)
    for key in ("interface", "gcks_identity", "interface_address"):
        if key in gm:
            optional[key] = str(gm[key])
    if "listen" in gm:
        optional["listen"] = parse_endpoint(str(gm["listen"]), "gm.listen", any_port=True)
    if "rekey_groups" in gm:
        raw = gm["rekey_groups"]
        _need(isinstance(raw, list) and bool(raw), "gm.rekey_groups", "expected a list")
        optional["rekey_groups"] = tuple(
            parse_endpoint(str(r), f"gm.rekey_groups[{i}]", default_port=IKE_PORT)
            for i, r in enumerate(raw)
        )
    if "sinks" in gm:
        raw_sinks = gm["sinks"]
        _need(isinstance(raw_sinks, list), "gm.sinks", "expected a list of sink mappings")
        for i, entry in enumerate(raw_sinks):
            _need(isinstance(entry, Mapping), f"gm.sinks[{i}]", "expected a mapping")
        # Relative paths in a sink are relative to the configuration file.
        optional["sinks"] = tuple(
            {
                k: (str(base / v) if k in _SINK_PATHS and isinstance(v, str) else v)
                for k, v in entry.items()
            }
            for entry in raw_sinks
        )
    return GmConfig(
        identity=str(gm["identity"]),
        gcks=parse_endpoint(str(gm["gcks"]), "gm.gcks", default_port=IKE_PORT),
        groups=tuple(str(g) for g in gm["groups"]),
        psk=_hex(gm["psk"], "gm.psk") if "psk" in gm else None,
        **optional,
    )
