"""Data attributes and traffic selectors, shared by SA, GSA and KD payloads.

* Attributes use the RFC 7296 §3.3.5 format: the top bit of the 16-bit type
  (AF) says TV (a 2-octet value follows) or TLV (a 2-octet length and that
  many octets follow). RFC 9838 reuses it for GSA attributes (§4.4.2.2),
  group-wide policy attributes (§4.4.3) and key bag attributes (§4.5).
* A traffic selector is the RFC 7296 §3.13.1 structure. RFC 9838 §4.4.2
  embeds single selectors, with no count header, in GSA policies.
"""

from __future__ import annotations

from dataclasses import dataclass

from mrkm.errors import BadLength, BadValue
from mrkm.wire.buffer import Buffer
from mrkm.wire.registry import TsType

__all__ = [
    "Attribute",
    "TrafficSelector",
    "pull_attributes",
    "pull_protocol_zero_block",
    "push_attributes",
    "push_protocol_zero_block",
]

_AF_TV = 0x8000


@dataclass(frozen=True)
class Attribute:
    """One data attribute: an ``int`` value is encoded TV, a ``bytes`` value TLV."""

    type: int
    value: int | bytes

    def __post_init__(self) -> None:
        if not 0 <= self.type < _AF_TV:
            raise BadValue(f"attribute type {self.type} does not fit 15 bits")
        if isinstance(self.value, int) and not 0 <= self.value <= 0xFFFF:
            raise BadValue(f"TV attribute {self.type}: value {self.value} does not fit 16 bits")

    @property
    def is_tv(self) -> bool:
        """True for the fixed 2-octet (TV) format."""
        return isinstance(self.value, int)

    def as_bytes(self) -> bytes:
        """The TLV value; a TV attribute where bytes are expected is a protocol error."""
        if isinstance(self.value, int):
            raise BadValue(f"attribute {self.type} must be TLV, got TV")
        return self.value

    def as_int(self) -> int:
        """The value as an unsigned integer (TV value, or a big-endian TLV value)."""
        if isinstance(self.value, int):
            return self.value
        if not self.value or len(self.value) > 8:
            raise BadValue(f"attribute {self.type}: {len(self.value)}-octet value is not a number")
        return int.from_bytes(self.value, "big")

    @classmethod
    def pull(cls, buf: Buffer) -> Attribute:
        """Decode one attribute (RFC 7296 §3.3.5)."""
        word = buf.pull_uint16("attribute type")
        if word & _AF_TV:
            return cls(word & ~_AF_TV, buf.pull_uint16("TV attribute value"))
        length = buf.pull_uint16("TLV attribute length")
        return cls(word, buf.pull_bytes(length, f"attribute {word} value"))

    def push(self, buf: Buffer) -> None:
        """Encode this attribute."""
        if isinstance(self.value, int):
            buf.push_uint16(self.type | _AF_TV)
            buf.push_uint16(self.value)
        else:
            if len(self.value) > 0xFFFF:
                raise BadValue(f"attribute {self.type}: value too long")
            buf.push_uint16(self.type)
            buf.push_uint16(len(self.value))
            buf.push_bytes(self.value)


def pull_attributes(buf: Buffer) -> tuple[Attribute, ...]:
    """Decode attributes until ``buf`` is exhausted."""
    out = []
    while not buf.eof():
        out.append(Attribute.pull(buf))
    return tuple(out)


def push_attributes(buf: Buffer, attributes: tuple[Attribute, ...]) -> None:
    """Encode attributes back to back."""
    for attribute in attributes:
        attribute.push(buf)


def pull_protocol_zero_block(buf: Buffer, what: str) -> tuple[Attribute, ...]:
    """Attributes of a ``Protocol=0 | RESERVED | Length | attributes`` substructure.

    RFC 9838 uses that shape twice: the group-wide policy (§4.4.3) and the
    member key bag (§4.5.3). The Protocol octet has already been read.
    """
    buf.pull_uint8(f"{what} RESERVED")
    length = buf.pull_uint16(f"{what} length")
    with buf.pull_block(length - 4, what) as body:
        return pull_attributes(body)


def push_protocol_zero_block(buf: Buffer, attributes: tuple[Attribute, ...]) -> None:
    """Encode a ``Protocol=0 | RESERVED | Length | attributes`` substructure."""
    with buf.push_block(2):
        buf.push_uint8(0)
        buf.push_uint8(0)
        buf.push_uint16(0)
        push_attributes(buf, attributes)


_ADDR_LEN: dict[int, int] = {TsType.TS_IPV4_ADDR_RANGE: 4, TsType.TS_IPV6_ADDR_RANGE: 16}


@dataclass(frozen=True)
class TrafficSelector:
    """An address range, IP protocol and port range (RFC 7296 §3.13.1).

    ``ip_protocol`` 0 means any protocol; ports 0..65535 mean any port.
    """

    ts_type: int
    ip_protocol: int
    start_port: int
    end_port: int
    start_address: bytes
    end_address: bytes

    def __post_init__(self) -> None:
        size = _ADDR_LEN.get(self.ts_type)
        if size is None:
            raise BadValue(f"traffic selector type {self.ts_type} is not 7 (IPv4) or 8 (IPv6)")
        if len(self.start_address) != size or len(self.end_address) != size:
            raise BadValue(f"traffic selector type {self.ts_type} needs {size}-octet addresses")
        if not 0 <= self.ip_protocol <= 0xFF:
            raise BadValue(f"IP protocol {self.ip_protocol} does not fit one octet")
        for port in (self.start_port, self.end_port):
            if not 0 <= port <= 0xFFFF:
                raise BadValue(f"port {port} does not fit 16 bits")

    @classmethod
    def pull(cls, buf: Buffer) -> TrafficSelector:
        """Decode one selector, checking Selector Length against its type."""
        ts_type = buf.pull_uint8("TS type")
        ip_protocol = buf.pull_uint8("TS IP protocol")
        length = buf.pull_uint16("TS selector length")
        size = _ADDR_LEN.get(ts_type)
        if size is None:
            raise BadValue(f"traffic selector type {ts_type} is not 7 (IPv4) or 8 (IPv6)")
        if length != 8 + 2 * size:
            raise BadLength(
                f"traffic selector type {ts_type}: length {length}, want {8 + 2 * size}"
            )
        start_port = buf.pull_uint16("TS start port")
        end_port = buf.pull_uint16("TS end port")
        start = buf.pull_bytes(size, "TS start address")
        end = buf.pull_bytes(size, "TS end address")
        return cls(ts_type, ip_protocol, start_port, end_port, start, end)

    def push(self, buf: Buffer) -> None:
        """Encode this selector."""
        buf.push_uint8(self.ts_type)
        buf.push_uint8(self.ip_protocol)
        buf.push_uint16(8 + 2 * len(self.start_address))
        buf.push_uint16(self.start_port)
        buf.push_uint16(self.end_port)
        buf.push_bytes(self.start_address)
        buf.push_bytes(self.end_address)
