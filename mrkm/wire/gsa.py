"""Group Security Association payload, GSA (RFC 9838 §4.4).

A GSA payload is a list of substructures: at most one Rekey SA policy
(protocol GIKE_UPDATE), any number of Data-Security SA policies (AH, ESP,
and MRKM's private routing protocols), and at most one group-wide policy
(protocol 0). The first octet of each substructure tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mrkm.errors import BadValue
from mrkm.wire.attributes import (
    Attribute,
    TrafficSelector,
    pull_attributes,
    pull_protocol_zero_block,
    push_attributes,
    push_protocol_zero_block,
)
from mrkm.wire.buffer import Buffer
from mrkm.wire.registry import GsaAttr, GwpAttr, PayloadType, ProtocolId
from mrkm.wire.sa import Transform, pull_transform_list, push_transform_list

__all__ = ["GroupWidePolicy", "GsaPayload", "GsaPolicy", "expected_spi_size"]

# RFC 9838 §4.4.2: GIKE_UPDATE SPIs are the 16-octet IKE SPI pair, AH/ESP 4
# octets; MRKM's routing protocols use the routing key identifier's size.
_SPI_SIZE: dict[int, int] = {
    ProtocolId.GIKE_UPDATE: 16,
    ProtocolId.AH: 4,
    ProtocolId.ESP: 4,
    ProtocolId.OSPFV2: 1,
    ProtocolId.OSPFV3_TRAILER: 2,
}


def expected_spi_size(protocol: int) -> int | None:
    """The SPI size a policy of ``protocol`` must have, or None if MRKM does not fix it."""
    return _SPI_SIZE.get(protocol)


@dataclass(frozen=True)
class GsaPolicy:
    """A Rekey SA or Data-Security SA policy substructure (RFC 9838 §4.4.2)."""

    protocol: int
    spi: bytes
    source: TrafficSelector
    destination: TrafficSelector
    transforms: tuple[Transform, ...]
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        if self.protocol == 0:
            raise BadValue("protocol 0 is the group-wide policy, not an SA policy")
        want = expected_spi_size(self.protocol)
        if want is not None and len(self.spi) != want:
            raise BadValue(
                f"GSA policy protocol {self.protocol}: SPI of {len(self.spi)} octets, want {want}"
            )

    def transform(self, ttype: int) -> Transform | None:
        """The transform of the given type, if present."""
        return next((t for t in self.transforms if t.type == ttype), None)

    def attribute(self, atype: int) -> Attribute | None:
        """The first attribute of the given type, if present."""
        return next((a for a in self.attributes if a.type == atype), None)

    @property
    def lifetime(self) -> int | None:
        """GSA_KEY_LIFETIME in seconds (§4.4.2.2.1)."""
        attribute = self.attribute(GsaAttr.GSA_KEY_LIFETIME)
        return None if attribute is None else attribute.as_int()

    @property
    def next_spis(self) -> tuple[bytes, ...]:
        """SPIs reserved for the following SAs, GSA_NEXT_SPI (§4.4.2.2.3)."""
        return tuple(a.as_bytes() for a in self.attributes if a.type == GsaAttr.GSA_NEXT_SPI)

    @classmethod
    def pull(cls, buf: Buffer, protocol: int) -> GsaPolicy:
        """Decode the substructure after its Protocol octet."""
        spi_size = buf.pull_uint8("GSA policy SPI size")
        length = buf.pull_uint16("GSA policy length")
        with buf.pull_block(length - 4, "GSA policy") as body:
            spi = body.pull_bytes(spi_size, "GSA policy SPI")
            source = TrafficSelector.pull(body)
            destination = TrafficSelector.pull(body)
            transforms = pull_transform_list(body)
            attributes = pull_attributes(body)
        return cls(protocol, spi, source, destination, transforms, attributes)

    def push(self, buf: Buffer) -> None:
        with buf.push_block(2):
            buf.push_uint8(self.protocol)
            buf.push_uint8(len(self.spi))
            buf.push_uint16(0)
            buf.push_bytes(self.spi)
            self.source.push(buf)
            self.destination.push(buf)
            push_transform_list(buf, self.transforms)
            push_attributes(buf, self.attributes)


@dataclass(frozen=True)
class GroupWidePolicy:
    """Group-wide policy substructure, protocol 0 (RFC 9838 §4.4.3); attributes are TV."""

    attributes: tuple[Attribute, ...] = ()

    def _value(self, atype: int) -> int | None:
        attribute = next((a for a in self.attributes if a.type == atype), None)
        return None if attribute is None else attribute.as_int()

    @property
    def atd(self) -> int | None:
        """GWP_ATD, activation time delay in seconds."""
        return self._value(GwpAttr.GWP_ATD)

    @property
    def dtd(self) -> int | None:
        """GWP_DTD, deactivation time delay in seconds."""
        return self._value(GwpAttr.GWP_DTD)

    @classmethod
    def pull(cls, buf: Buffer) -> GroupWidePolicy:
        """Decode the substructure after its Protocol octet."""
        return cls(pull_protocol_zero_block(buf, "group-wide policy"))

    def push(self, buf: Buffer) -> None:
        push_protocol_zero_block(buf, self.attributes)


@dataclass(frozen=True)
class GsaPayload:
    """Group Security Association payload (RFC 9838 §4.4)."""

    payload_type: ClassVar[int] = PayloadType.GSA
    policies: tuple[GsaPolicy | GroupWidePolicy, ...]

    @property
    def rekey_policy(self) -> GsaPolicy | None:
        """The GIKE_UPDATE (Rekey SA) policy, if present."""
        return next((p for p in self.sa_policies if p.protocol == ProtocolId.GIKE_UPDATE), None)

    @property
    def sa_policies(self) -> tuple[GsaPolicy, ...]:
        """Every SA policy, Rekey SA included."""
        return tuple(p for p in self.policies if isinstance(p, GsaPolicy))

    @property
    def data_policies(self) -> tuple[GsaPolicy, ...]:
        """The Data-Security SA policies (TEKs)."""
        return tuple(p for p in self.sa_policies if p.protocol != ProtocolId.GIKE_UPDATE)

    @property
    def group_wide(self) -> GroupWidePolicy | None:
        """The group-wide policy, if present."""
        return next((p for p in self.policies if isinstance(p, GroupWidePolicy)), None)

    @classmethod
    def pull(cls, buf: Buffer) -> GsaPayload:
        policies: list[GsaPolicy | GroupWidePolicy] = []
        while not buf.eof():
            protocol = buf.pull_uint8("GSA substructure protocol")
            if protocol == 0:
                policies.append(GroupWidePolicy.pull(buf))
            else:
                policies.append(GsaPolicy.pull(buf, protocol))
        return cls(tuple(policies))

    def push(self, buf: Buffer) -> None:
        for policy in self.policies:
            policy.push(buf)
