"""Key Download payload, KD (RFC 9838 §4.5): group and member key bags, wrapped keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mrkm.errors import BadLength
from mrkm.wire.attributes import (
    Attribute,
    pull_attributes,
    pull_protocol_zero_block,
    push_attributes,
    push_protocol_zero_block,
)
from mrkm.wire.buffer import Buffer
from mrkm.wire.registry import GroupKeyBagAttr, MemberKeyBagAttr, PayloadType

__all__ = ["GroupKeyBag", "KdPayload", "MemberKeyBag", "WrappedKey"]

# RFC 5649 output is at least 16 octets (one 64-bit block of data + the AIV).
_MIN_WRAPPED = 16


@dataclass(frozen=True)
class WrappedKey:
    """The value of SA_KEY and WRAP_KEY attributes (RFC 9838 §4.5.4).

    ``key_id`` 0 means SA keying material, otherwise the id of an intermediate
    key-wrap key; ``kwk_id`` 0 means wrapped with the default KWK (GSK_w),
    otherwise the ``key_id`` of the WRAP_KEY used.
    """

    key_id: int
    kwk_id: int
    encrypted: bytes

    @classmethod
    def decode(cls, data: bytes) -> WrappedKey:
        """Parse an attribute value."""
        buf = Buffer(data)
        key_id = buf.pull_uint32("wrapped key ID")
        kwk_id = buf.pull_uint32("wrapped key KWK ID")
        encrypted = buf.pull_rest()
        if len(encrypted) < _MIN_WRAPPED or len(encrypted) % 8:
            raise BadLength(f"wrapped key of {len(encrypted)} octets is not RFC 5649 output")
        return cls(key_id, kwk_id, encrypted)

    def encode(self) -> bytes:
        """Serialize as an attribute value."""
        buf = Buffer()
        buf.push_uint32(self.key_id)
        buf.push_uint32(self.kwk_id)
        buf.push_bytes(self.encrypted)
        return buf.data()


@dataclass(frozen=True)
class GroupKeyBag:
    """Keys of one SA policy, matched to it by protocol and SPI (RFC 9838 §4.5.2)."""

    protocol: int
    spi: bytes
    attributes: tuple[Attribute, ...]

    @property
    def sa_keys(self) -> tuple[WrappedKey, ...]:
        """Every SA_KEY attribute, decoded."""
        return tuple(
            WrappedKey.decode(a.as_bytes())
            for a in self.attributes
            if a.type == GroupKeyBagAttr.SA_KEY
        )

    @classmethod
    def pull(cls, buf: Buffer, protocol: int) -> GroupKeyBag:
        spi_size = buf.pull_uint8("group key bag SPI size")
        length = buf.pull_uint16("group key bag length")
        with buf.pull_block(length - 4, "group key bag") as body:
            spi = body.pull_bytes(spi_size, "group key bag SPI")
            return cls(protocol, spi, pull_attributes(body))

    def push(self, buf: Buffer) -> None:
        with buf.push_block(2):
            buf.push_uint8(self.protocol)
            buf.push_uint8(len(self.spi))
            buf.push_uint16(0)
            buf.push_bytes(self.spi)
            push_attributes(buf, self.attributes)


@dataclass(frozen=True)
class MemberKeyBag:
    """Keys for this member only, unicast only (RFC 9838 §4.5.3)."""

    attributes: tuple[Attribute, ...]

    @property
    def wrap_keys(self) -> tuple[WrappedKey, ...]:
        """WRAP_KEY attributes: the member's key-tree path."""
        return tuple(
            WrappedKey.decode(a.as_bytes())
            for a in self.attributes
            if a.type == MemberKeyBagAttr.WRAP_KEY
        )

    @property
    def auth_key(self) -> bytes | None:
        """AUTH_KEY: the GCKS public key as DER SubjectPublicKeyInfo."""
        found = [a.as_bytes() for a in self.attributes if a.type == MemberKeyBagAttr.AUTH_KEY]
        return found[0] if found else None

    @classmethod
    def pull(cls, buf: Buffer) -> MemberKeyBag:
        return cls(pull_protocol_zero_block(buf, "member key bag"))

    def push(self, buf: Buffer) -> None:
        push_protocol_zero_block(buf, self.attributes)


@dataclass(frozen=True)
class KdPayload:
    """Key Download payload: a list of key bags (RFC 9838 §4.5)."""

    payload_type: ClassVar[int] = PayloadType.KD
    bags: tuple[GroupKeyBag | MemberKeyBag, ...]

    @property
    def group_bags(self) -> tuple[GroupKeyBag, ...]:
        """Every group key bag."""
        return tuple(b for b in self.bags if isinstance(b, GroupKeyBag))

    @property
    def member_bag(self) -> MemberKeyBag | None:
        """The member key bag, if present."""
        return next((b for b in self.bags if isinstance(b, MemberKeyBag)), None)

    def bag_for(self, protocol: int, spi: bytes) -> GroupKeyBag | None:
        """The group key bag that matches an SA policy (§4.5.2)."""
        return next((b for b in self.group_bags if (b.protocol, b.spi) == (protocol, spi)), None)

    @classmethod
    def pull(cls, buf: Buffer) -> KdPayload:
        bags: list[GroupKeyBag | MemberKeyBag] = []
        while not buf.eof():
            protocol = buf.pull_uint8("key bag protocol")
            bags.append(
                MemberKeyBag.pull(buf) if protocol == 0 else GroupKeyBag.pull(buf, protocol)
            )
        return cls(tuple(bags))

    def push(self, buf: Buffer) -> None:
        for bag in self.bags:
            bag.push(buf)
