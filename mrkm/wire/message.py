"""IKE header, the generic payload header chain, and whole messages (RFC 7296 §3.1-3.2).

:func:`decode_message` turns any byte string into a :class:`Message` or raises
a :class:`~mrkm.errors.DecodeError`. An SK payload stays sealed as an
:class:`~mrkm.wire.payloads.EncryptedPayload`; once it is opened, its
plaintext is a payload chain of its own, decoded by :func:`decode_chain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from mrkm.errors import BadLength, BadValue, UnsupportedCriticalPayload
from mrkm.wire.buffer import Buffer
from mrkm.wire.gsa import GsaPayload
from mrkm.wire.kd import KdPayload
from mrkm.wire.payloads import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    DeletePayload,
    EncryptedPayload,
    IdgPayload,
    IdiPayload,
    IdrPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    TsiPayload,
    TsrPayload,
    UnknownPayload,
    VendorIdPayload,
)
from mrkm.wire.registry import PayloadType
from mrkm.wire.sa import SaPayload

__all__ = [
    "FLAG_INITIATOR",
    "FLAG_RESPONSE",
    "FLAG_VERSION",
    "HEADER_LEN",
    "IkeHeader",
    "Message",
    "Payload",
    "decode_chain",
    "decode_message",
    "encode_chain",
    "encode_message",
    "find",
]

HEADER_LEN = 28
FLAG_INITIATOR = 0x08
FLAG_VERSION = 0x10
FLAG_RESPONSE = 0x20
_CRITICAL = 0x80

Payload = (
    SaPayload
    | KePayload
    | IdiPayload
    | IdrPayload
    | CertPayload
    | CertReqPayload
    | AuthPayload
    | NoncePayload
    | NotifyPayload
    | DeletePayload
    | VendorIdPayload
    | TsiPayload
    | TsrPayload
    | EncryptedPayload
    | IdgPayload
    | GsaPayload
    | KdPayload
    | UnknownPayload
)

# Payload number -> codec (every class has ``pull(buf)``). SK is special-cased.
_CODECS = {
    cls.payload_type: cls
    for cls in (
        SaPayload,
        KePayload,
        IdiPayload,
        IdrPayload,
        CertPayload,
        CertReqPayload,
        AuthPayload,
        NoncePayload,
        NotifyPayload,
        DeletePayload,
        VendorIdPayload,
        TsiPayload,
        TsrPayload,
        IdgPayload,
        GsaPayload,
        KdPayload,
    )
}


@dataclass(frozen=True)
class IkeHeader:
    """The fixed 28-octet IKE header, less Next Payload and Length (§3.1).

    Those two are derived from the payloads when a message is encoded, and
    checked when one is decoded.
    """

    spi_i: bytes
    spi_r: bytes
    exchange_type: int
    flags: int
    message_id: int
    major_version: int = 2
    minor_version: int = 0

    def __post_init__(self) -> None:
        if len(self.spi_i) != 8 or len(self.spi_r) != 8:
            raise BadValue("IKE SPIs are 8 octets each")
        if not 0 <= self.message_id <= 0xFFFFFFFF:
            raise BadValue(f"Message ID {self.message_id} does not fit 32 bits")

    @property
    def is_response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def is_initiator(self) -> bool:
        return bool(self.flags & FLAG_INITIATOR)

    def encode(self, next_payload: int, length: int) -> bytes:
        """The header octets for a message of ``length`` octets."""
        buf = Buffer()
        buf.push_bytes(self.spi_i)
        buf.push_bytes(self.spi_r)
        buf.push_uint8(next_payload)
        buf.push_uint8((self.major_version << 4) | self.minor_version)
        buf.push_uint8(self.exchange_type)
        buf.push_uint8(self.flags)
        buf.push_uint32(self.message_id)
        buf.push_uint32(length)
        return buf.data()

    @classmethod
    def pull(cls, buf: Buffer) -> tuple[IkeHeader, int, int]:
        """Decode a header; also return its Next Payload and Length fields."""
        spi_i = buf.pull_bytes(8, "IKE SPIi")
        spi_r = buf.pull_bytes(8, "IKE SPIr")
        next_payload = buf.pull_uint8("IKE next payload")
        version = buf.pull_uint8("IKE version")
        exchange_type = buf.pull_uint8("IKE exchange type")
        flags = buf.pull_uint8("IKE flags")
        message_id = buf.pull_uint32("IKE message ID")
        length = buf.pull_uint32("IKE length")
        if version >> 4 != 2:
            raise BadValue(f"IKE major version {version >> 4}, not 2")
        header = cls(spi_i, spi_r, exchange_type, flags, message_id, version >> 4, version & 0xF)
        return header, next_payload, length


@dataclass(frozen=True)
class Message:
    """One IKE message: header and payloads (the SK payload, if any, sealed)."""

    header: IkeHeader
    payloads: tuple[Payload, ...] = field(default=())

    def find(self, cls: type[_P]) -> _P | None:
        """The first payload of the given class, if any."""
        return find(self.payloads, cls)


class _HasType(Protocol):
    @property
    def payload_type(self) -> int: ...


_P = TypeVar("_P", bound=_HasType)


def find(payloads: tuple[Payload, ...], cls: type[_P]) -> _P | None:
    """The first payload of class ``cls`` in ``payloads``."""
    for payload in payloads:
        if isinstance(payload, cls):
            return payload
    return None


def encode_chain(payloads: tuple[Payload, ...]) -> tuple[int, bytes]:
    """Encode payloads with their generic headers; return (first type, octets).

    An SK payload must be last: its Next Payload names the first *inner*
    payload (§3.14).
    """
    buf = Buffer()
    for i, payload in enumerate(payloads):
        if i + 1 < len(payloads):
            if isinstance(payload, EncryptedPayload):
                raise BadValue("the SK payload must be the last payload")
            next_type = payloads[i + 1].payload_type
        elif isinstance(payload, EncryptedPayload):
            next_type = payload.first_inner
        else:
            next_type = PayloadType.NONE
        critical = isinstance(payload, UnknownPayload) and payload.critical
        with buf.push_block(2):
            buf.push_uint8(next_type)
            buf.push_uint8(_CRITICAL if critical else 0)
            buf.push_uint16(0)
            payload.push(buf)
    first = payloads[0].payload_type if payloads else PayloadType.NONE
    return first, buf.data()


def decode_chain(first_type: int, data: bytes) -> tuple[Payload, ...]:
    """Decode a payload chain that starts with ``first_type`` and fills ``data``."""
    buf = Buffer(data)
    payloads: list[Payload] = []
    current = first_type
    while current != PayloadType.NONE:
        next_type = buf.pull_uint8("payload next payload")
        flags = buf.pull_uint8("payload flags")
        length = buf.pull_uint16("payload length")
        if current == PayloadType.SK:
            if length < 4:
                raise BadLength("SK payload length smaller than its header")
            body = buf.pull_bytes(length - 4, "SK payload")
            if not buf.eof():
                raise BadLength("octets follow the SK payload, which must be last")
            payloads.append(EncryptedPayload(next_type, body))
            return tuple(payloads)
        with buf.pull_block(length - 4, f"payload {current}") as body_buf:
            codec = _CODECS.get(current)
            if codec is not None:
                payloads.append(codec.pull(body_buf))
            elif flags & _CRITICAL:
                raise UnsupportedCriticalPayload(current)
            else:
                payloads.append(UnknownPayload(current, body_buf.pull_rest(), False))
        current = next_type
    if not buf.eof():
        raise BadLength(f"{buf.remaining()} octets after the last payload")
    return tuple(payloads)


def encode_message(header: IkeHeader, payloads: tuple[Payload, ...]) -> bytes:
    """Encode a whole message, filling in Next Payload and Length."""
    first, chain = encode_chain(payloads)
    return header.encode(first, HEADER_LEN + len(chain)) + chain


def decode_message(data: bytes) -> Message:
    """Decode a whole message; the Length field must match the datagram."""
    buf = Buffer(data)
    header, next_payload, length = IkeHeader.pull(buf)
    if length != len(data):
        raise BadLength(f"IKE Length field says {length}, datagram has {len(data)} octets")
    return Message(header, decode_chain(next_payload, buf.pull_rest()))
