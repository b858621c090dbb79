"""``mrkm decode``: an IKE message as a header and a payload tree (RFC 7296 §3).

Decoding is :func:`mrkm.wire.decode_message`; this module only renders
what it returns. Numbers are shown with their registry names (exchange,
payload, notify, protocol and transform types, attributes by the structure
that holds them). An SK payload stays sealed: its first inner payload type
and the length of IV | ciphertext | ICV are shown (§3.14).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from enum import IntEnum
from typing import Any

from mrkm.errors import DecodeError
from mrkm.wire import (
    Attribute,
    GroupKeyBag,
    GroupWidePolicy,
    GsaPolicy,
    MemberKeyBag,
    Message,
    TrafficSelector,
    Transform,
    decode_message,
)
from mrkm.wire.registry import (
    AuthMethod,
    DhGroup,
    EncrId,
    ExchangeType,
    GcauthId,
    GroupKeyBagAttr,
    GsaAttr,
    GwpAttr,
    IdType,
    IntegId,
    KwaId,
    MemberKeyBagAttr,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    SnId,
    TransformAttr,
    TransformType,
    TsType,
)

__all__ = ["parse_input", "render_message"]

MAX_HEX = 48  # octets of a byte string shown before it is abbreviated

_BY_FIELD: dict[str, type[IntEnum]] = {
    "exchange_type": ExchangeType,
    "notify_type": NotifyType,
    "protocol": ProtocolId,
    "id_type": IdType,
    "method": AuthMethod,
    "first_inner": PayloadType,
    "group": DhGroup,
    "ts_type": TsType,
}
_TRANSFORM_IDS: dict[int, type[IntEnum]] = {
    TransformType.ENCR: EncrId,
    TransformType.PRF: PrfId,
    TransformType.INTEG: IntegId,
    TransformType.KE: DhGroup,
    TransformType.SN: SnId,
    TransformType.KWA: KwaId,
    TransformType.GCAUTH: GcauthId,
}
_ATTRIBUTES_OF: dict[type, type[IntEnum]] = {
    GsaPolicy: GsaAttr,
    GroupWidePolicy: GwpAttr,
    Transform: TransformAttr,
    GroupKeyBag: GroupKeyBagAttr,
    MemberKeyBag: MemberKeyBagAttr,
}
_FLAGS = ((0x08, "I"), (0x10, "V"), (0x20, "R"))


def parse_input(raw: bytes, hex_input: bool) -> bytes:
    """The message octets: ``raw`` itself, or ``raw`` read as hex (spaces, ``0x`` allowed)."""
    if not hex_input:
        return raw
    text = raw.decode("ascii", "replace").replace("0x", "")
    digits = "".join(text.split())
    try:
        return bytes.fromhex(digits)
    except ValueError as exc:
        raise DecodeError(f"input is not hex: {exc}") from None


def _named(enum: type[IntEnum] | None, value: int) -> str:
    if enum is not None:
        try:
            return f"{enum(value).name} ({value})"
        except ValueError:
            pass
    return str(value)


def _octets(data: bytes) -> str:
    if not data:
        return "(empty)"
    if len(data) <= MAX_HEX:
        return f"{data.hex()} ({len(data)} octets)"
    return f"{data[:MAX_HEX].hex()}... ({len(data)} octets)"


def _selector(ts: TrafficSelector) -> str:
    lo, hi = (str(ipaddress.ip_address(a)) for a in (ts.start_address, ts.end_address))
    addresses = lo if lo == hi else f"{lo}-{hi}"
    ports = "any" if (ts.start_port, ts.end_port) == (0, 0xFFFF) else f"{ts.start_port}"
    if ts.end_port not in (ts.start_port, 0xFFFF):
        ports += f"-{ts.end_port}"
    return f"{addresses} proto {ts.ip_protocol or 'any'} port {ports}"


def _attribute(attr: Attribute, enum: type[IntEnum] | None) -> str:
    value = attr.value if isinstance(attr.value, int) else _octets(attr.value)
    return f"{_named(enum, attr.type)} = {value}"


def _node(obj: Any, indent: int, parent: type | None = None) -> list[str]:
    pad = "  " * indent
    if isinstance(obj, TrafficSelector):
        return [f"{pad}{_selector(obj)}"]
    if isinstance(obj, Attribute):
        return [f"{pad}{_attribute(obj, _ATTRIBUTES_OF.get(parent) if parent else None)}"]
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return [f"{pad}{obj!r}"]
    title = type(obj).__name__.removesuffix("Payload")
    payload_type = getattr(obj, "payload_type", None)
    if isinstance(payload_type, int):
        title = _named(PayloadType, payload_type)
    lines = [f"{pad}{title}"]
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        label = f"{pad}  {f.name}:"
        if isinstance(value, bytes):
            lines.append(f"{label} {_octets(value)}")
        elif isinstance(value, bool):
            lines.append(f"{label} {value}")
        elif isinstance(value, int):
            enum = _BY_FIELD.get(f.name)
            if isinstance(obj, Transform):
                enum = TransformType if f.name == "type" else _TRANSFORM_IDS.get(obj.type)
            lines.append(f"{label} {_named(enum, value)}")
        elif isinstance(value, tuple):
            lines.append(f"{label}{' (none)' if not value else ''}")
            for item in value:
                lines += _node(item, indent + 2, type(obj))
        elif isinstance(value, TrafficSelector):
            lines.append(f"{label} {_selector(value)}")
        else:
            lines.append(label)
            lines += _node(value, indent + 2, type(obj))
    return lines


def render_message(data: bytes) -> list[str]:
    """Decode ``data`` and return the tree as lines; DecodeError names what is wrong."""
    message: Message = decode_message(data)
    h = message.header
    flags = "".join(name for bit, name in _FLAGS if h.flags & bit) or "-"
    lines = [
        f"IKE header ({len(data)} octets)",
        f"  SPIi: {h.spi_i.hex()}",
        f"  SPIr: {h.spi_r.hex()}",
        f"  exchange: {_named(ExchangeType, h.exchange_type)}",
        f"  flags: 0x{h.flags:02x} ({flags})",
        f"  message_id: {h.message_id}",
        f"  version: {h.major_version}.{h.minor_version}",
        f"payloads ({len(message.payloads)}):",
    ]
    for payload in message.payloads:
        lines += _node(payload, 1)
    return lines
