"""The simple IKEv2 payloads: KE, Nonce, ID/IDg, AUTH, CERT, CERTREQ, N, D, V, TS, SK.

Each is one frozen dataclass with a ``payload_type`` and a ``pull`` / ``push``
pair over the payload *body* (the generic header is handled by
:mod:`mrkm.wire.message`). Section numbers are RFC 7296's unless noted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mrkm.errors import BadLength, BadValue
from mrkm.wire.attributes import TrafficSelector
from mrkm.wire.buffer import Buffer
from mrkm.wire.registry import AuthMethod, IdType, PayloadType

__all__ = [
    "AuthPayload",
    "CertPayload",
    "CertReqPayload",
    "DeletePayload",
    "EncryptedPayload",
    "IdgPayload",
    "IdiPayload",
    "IdrPayload",
    "KePayload",
    "NoncePayload",
    "NotifyPayload",
    "TsiPayload",
    "TsrPayload",
    "UnknownPayload",
    "VendorIdPayload",
]


@dataclass(frozen=True)
class KePayload:
    """Key Exchange payload: DH group and public value (§3.4)."""

    payload_type: ClassVar[int] = PayloadType.KE
    group: int
    data: bytes

    @classmethod
    def pull(cls, buf: Buffer) -> KePayload:
        group = buf.pull_uint16("KE group")
        buf.pull_uint16("KE RESERVED")
        return cls(group, buf.pull_rest())

    def push(self, buf: Buffer) -> None:
        buf.push_uint16(self.group)
        buf.push_uint16(0)
        buf.push_bytes(self.data)


@dataclass(frozen=True)
class NoncePayload:
    """Nonce payload, 16 to 256 octets (§3.9)."""

    payload_type: ClassVar[int] = PayloadType.NONCE
    data: bytes

    def __post_init__(self) -> None:
        if not 16 <= len(self.data) <= 256:
            raise BadLength(f"nonce of {len(self.data)} octets; RFC 7296 §3.9 wants 16 to 256")

    @classmethod
    def pull(cls, buf: Buffer) -> NoncePayload:
        return cls(buf.pull_rest())

    def push(self, buf: Buffer) -> None:
        buf.push_bytes(self.data)


_ID_ADDRESS_LEN: dict[int, int] = {IdType.ID_IPV4_ADDR: 4, IdType.ID_IPV6_ADDR: 16}


@dataclass(frozen=True)
class _Identification:
    """ID Type, 3 reserved octets, data (§3.5); shared by IDi, IDr and IDg."""

    id_type: int
    data: bytes

    def __post_init__(self) -> None:
        # RFC 7296 §3.5: ID_IPV4_ADDR is 4 octets, ID_IPV6_ADDR 16.
        size = _ID_ADDRESS_LEN.get(self.id_type)
        if size is not None and len(self.data) != size:
            raise BadLength(f"ID type {self.id_type} needs {size} octets, got {len(self.data)}")

    @property
    def body(self) -> bytes:
        """The payload without its generic header: what AUTH computations use (§2.15)."""
        buf = Buffer()
        self.push(buf)
        return buf.data()

    @classmethod
    def _pull_fields(cls, buf: Buffer) -> tuple[int, bytes]:
        id_type = buf.pull_uint8("ID type")
        buf.pull_bytes(3, "ID RESERVED")
        return id_type, buf.pull_rest()

    def push(self, buf: Buffer) -> None:
        buf.push_uint8(self.id_type)
        buf.push_bytes(b"\0\0\0")
        buf.push_bytes(self.data)


@dataclass(frozen=True)
class IdiPayload(_Identification):
    """Initiator identification (§3.5)."""

    payload_type: ClassVar[int] = PayloadType.IDI

    @classmethod
    def pull(cls, buf: Buffer) -> IdiPayload:
        return cls(*cls._pull_fields(buf))


@dataclass(frozen=True)
class IdrPayload(_Identification):
    """Responder identification (§3.5)."""

    payload_type: ClassVar[int] = PayloadType.IDR

    @classmethod
    def pull(cls, buf: Buffer) -> IdrPayload:
        return cls(*cls._pull_fields(buf))


@dataclass(frozen=True)
class IdgPayload(_Identification):
    """Group identification (RFC 9838 §4.2): the ID payload format, type 50."""

    payload_type: ClassVar[int] = PayloadType.IDG

    @classmethod
    def pull(cls, buf: Buffer) -> IdgPayload:
        return cls(*cls._pull_fields(buf))


@dataclass(frozen=True)
class AuthPayload:
    """Authentication payload (§3.8).

    For method 14, Digital Signature (RFC 7427 §3), the Authentication Data is
    a 1-octet ASN.1 length, a DER AlgorithmIdentifier and the signature; they
    are kept apart in ``algorithm_id`` and ``data``. For other methods
    ``algorithm_id`` is empty and ``data`` is the whole Authentication Data.
    """

    payload_type: ClassVar[int] = PayloadType.AUTH
    method: int
    data: bytes
    algorithm_id: bytes = b""

    def __post_init__(self) -> None:
        if self.method != AuthMethod.DIGITAL_SIGNATURE and self.algorithm_id:
            raise BadValue(f"AUTH method {self.method} carries no AlgorithmIdentifier")
        if len(self.algorithm_id) > 0xFF:
            raise BadValue("AlgorithmIdentifier longer than 255 octets")

    @classmethod
    def pull(cls, buf: Buffer) -> AuthPayload:
        method = buf.pull_uint8("AUTH method")
        buf.pull_bytes(3, "AUTH RESERVED")
        if method != AuthMethod.DIGITAL_SIGNATURE:
            return cls(method, buf.pull_rest())
        alg_len = buf.pull_uint8("RFC 7427 ASN.1 length")
        algorithm_id = buf.pull_bytes(alg_len, "RFC 7427 AlgorithmIdentifier")
        if alg_len < 2 or algorithm_id[0] != 0x30 or algorithm_id[1] + 2 != alg_len:
            raise BadValue("RFC 7427 AlgorithmIdentifier is not one DER SEQUENCE of that length")
        return cls(method, buf.pull_rest(), algorithm_id)

    def push(self, buf: Buffer) -> None:
        buf.push_uint8(self.method)
        buf.push_bytes(b"\0\0\0")
        if self.method == AuthMethod.DIGITAL_SIGNATURE:
            buf.push_uint8(len(self.algorithm_id))
            buf.push_bytes(self.algorithm_id)
        buf.push_bytes(self.data)


@dataclass(frozen=True)
class CertPayload:
    """Certificate payload: encoding and data (§3.6); 4 = X.509 signature, DER."""

    payload_type: ClassVar[int] = PayloadType.CERT
    encoding: int
    data: bytes

    @classmethod
    def pull(cls, buf: Buffer) -> CertPayload:
        return cls(buf.pull_uint8("certificate encoding"), buf.pull_rest())

    def push(self, buf: Buffer) -> None:
        buf.push_uint8(self.encoding)
        buf.push_bytes(self.data)


@dataclass(frozen=True)
class CertReqPayload:
    """Certificate request payload: encoding and CA key hashes (§3.7)."""

    payload_type: ClassVar[int] = PayloadType.CERTREQ
    encoding: int
    data: bytes

    @classmethod
    def pull(cls, buf: Buffer) -> CertReqPayload:
        return cls(buf.pull_uint8("certificate request encoding"), buf.pull_rest())

    def push(self, buf: Buffer) -> None:
        buf.push_uint8(self.encoding)
        buf.push_bytes(self.data)


@dataclass(frozen=True)
class NotifyPayload:
    """Notify payload (§3.10); G-IKEv2 types in RFC 9838 §4.7."""

    payload_type: ClassVar[int] = PayloadType.NOTIFY
    notify_type: int
    data: bytes = b""
    protocol: int = 0
    spi: bytes = b""

    @property
    def is_error(self) -> bool:
        """Types below 16384 report errors (§3.10.1)."""
        return self.notify_type < 16384

    @classmethod
    def pull(cls, buf: Buffer) -> NotifyPayload:
        protocol = buf.pull_uint8("notify protocol ID")
        spi_size = buf.pull_uint8("notify SPI size")
        notify_type = buf.pull_uint16("notify type")
        spi = buf.pull_bytes(spi_size, "notify SPI")
        return cls(notify_type, buf.pull_rest(), protocol, spi)

    def push(self, buf: Buffer) -> None:
        if len(self.spi) > 0xFF:
            raise BadValue("notify SPI longer than 255 octets")
        buf.push_uint8(self.protocol)
        buf.push_uint8(len(self.spi))
        buf.push_uint16(self.notify_type)
        buf.push_bytes(self.spi)
        buf.push_bytes(self.data)


@dataclass(frozen=True)
class DeletePayload:
    """Delete payload (§3.11; RFC 9838 §4.6: SPI 0 deletes every SA of the protocol)."""

    payload_type: ClassVar[int] = PayloadType.DELETE
    protocol: int
    spi_size: int
    spis: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if any(len(spi) != self.spi_size for spi in self.spis):
            raise BadValue(f"every SPI of a Delete payload must be {self.spi_size} octets")

    @classmethod
    def pull(cls, buf: Buffer) -> DeletePayload:
        protocol = buf.pull_uint8("delete protocol ID")
        spi_size = buf.pull_uint8("delete SPI size")
        count = buf.pull_uint16("delete SPI count")
        if buf.remaining() != spi_size * count:
            raise BadLength(f"delete payload: {count} SPIs of {spi_size} octets do not fill it")
        return cls(protocol, spi_size, tuple(buf.pull_bytes(spi_size) for _ in range(count)))

    def push(self, buf: Buffer) -> None:
        buf.push_uint8(self.protocol)
        buf.push_uint8(self.spi_size)
        buf.push_uint16(len(self.spis))
        for spi in self.spis:
            buf.push_bytes(spi)


@dataclass(frozen=True)
class VendorIdPayload:
    """Vendor ID payload (§3.12)."""

    payload_type: ClassVar[int] = PayloadType.VENDOR_ID
    data: bytes

    @classmethod
    def pull(cls, buf: Buffer) -> VendorIdPayload:
        return cls(buf.pull_rest())

    def push(self, buf: Buffer) -> None:
        buf.push_bytes(self.data)


@dataclass(frozen=True)
class _TrafficSelectors:
    """Number of TSs, 3 reserved octets, selectors (§3.13)."""

    selectors: tuple[TrafficSelector, ...]

    @classmethod
    def _pull_selectors(cls, buf: Buffer) -> tuple[TrafficSelector, ...]:
        count = buf.pull_uint8("number of TSs")
        buf.pull_bytes(3, "TS RESERVED")
        return tuple(TrafficSelector.pull(buf) for _ in range(count))

    def push(self, buf: Buffer) -> None:
        buf.push_uint8(len(self.selectors))
        buf.push_bytes(b"\0\0\0")
        for selector in self.selectors:
            selector.push(buf)


@dataclass(frozen=True)
class TsiPayload(_TrafficSelectors):
    """Traffic selectors, initiator (§3.13)."""

    payload_type: ClassVar[int] = PayloadType.TSI

    @classmethod
    def pull(cls, buf: Buffer) -> TsiPayload:
        return cls(cls._pull_selectors(buf))


@dataclass(frozen=True)
class TsrPayload(_TrafficSelectors):
    """Traffic selectors, responder (§3.13)."""

    payload_type: ClassVar[int] = PayloadType.TSR

    @classmethod
    def pull(cls, buf: Buffer) -> TsrPayload:
        return cls(cls._pull_selectors(buf))


@dataclass(frozen=True)
class EncryptedPayload:
    """Encrypted and Authenticated payload, SK (§3.14), still sealed.

    ``first_inner`` is the type of the first payload inside (the SK generic
    header's Next Payload); ``body`` is IV | ciphertext | ICV. Sealing and
    opening are :mod:`mrkm.crypto.sk`'s job.
    """

    payload_type: ClassVar[int] = PayloadType.SK
    first_inner: int
    body: bytes

    def push(self, buf: Buffer) -> None:
        buf.push_bytes(self.body)


@dataclass(frozen=True)
class UnknownPayload:
    """A non-critical payload type MRKM does not know, kept opaque (§2.5)."""

    type: int
    data: bytes
    critical: bool = False

    @property
    def payload_type(self) -> int:
        return self.type

    def push(self, buf: Buffer) -> None:
        buf.push_bytes(self.data)
