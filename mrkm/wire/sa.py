"""SA payload: proposals, transforms and their attributes (RFC 7296 §3.3).

The same encoding serves as SAg, the GM's supported transforms (RFC 9838
§4.3), and the transform substructures reappear inside GSA policies
(RFC 9838 §4.4.2.1), which is why :class:`Transform` and
:func:`pull_transform_list` are public.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mrkm.errors import BadValue
from mrkm.wire.attributes import Attribute, pull_attributes, push_attributes
from mrkm.wire.buffer import Buffer
from mrkm.wire.registry import PayloadType, TransformAttr

__all__ = [
    "Proposal",
    "SaPayload",
    "Transform",
    "pull_transform_list",
    "push_transform_list",
]

_LAST = 0
_MORE_PROPOSALS = 2  # RFC 7296 §3.3.1: "Last Substruc" of a proposal
_MORE_TRANSFORMS = 3  # RFC 7296 §3.3.2: "Last Substruc" of a transform


@dataclass(frozen=True)
class Transform:
    """One transform: type, ID and attributes (RFC 7296 §3.3.2)."""

    type: int
    id: int
    attributes: tuple[Attribute, ...] = ()

    @property
    def key_length(self) -> int | None:
        """The Key Length attribute (bits), if present (RFC 7296 §3.3.5)."""
        for attribute in self.attributes:
            if attribute.type == TransformAttr.KEY_LENGTH:
                return attribute.as_int()
        return None

    @classmethod
    def pull(cls, buf: Buffer) -> tuple[Transform, bool]:
        """Decode one transform; also return whether more transforms follow."""
        last = buf.pull_uint8("transform Last Substruc")
        if last not in (_LAST, _MORE_TRANSFORMS):
            raise BadValue(f"transform Last Substruc is {last}, not 0 or 3")
        buf.pull_uint8("transform RESERVED")
        length = buf.pull_uint16("transform length")
        with buf.pull_block(length - 4, "transform") as body:
            ttype = body.pull_uint8("transform type")
            body.pull_uint8("transform RESERVED")
            tid = body.pull_uint16("transform ID")
            attributes = pull_attributes(body)
        return cls(ttype, tid, attributes), last == _MORE_TRANSFORMS

    def push(self, buf: Buffer, last: bool) -> None:
        """Encode this transform with the given Last Substruc marker."""
        with buf.push_block(2):
            buf.push_uint8(_LAST if last else _MORE_TRANSFORMS)
            buf.push_uint8(0)
            buf.push_uint16(0)
            buf.push_uint8(self.type)
            buf.push_uint8(0)
            buf.push_uint16(self.id)
            push_attributes(buf, self.attributes)


def pull_transform_list(buf: Buffer) -> tuple[Transform, ...]:
    """Decode transforms until one says it is the last (RFC 9838 §4.4.2)."""
    out = []
    more = True
    while more:
        transform, more = Transform.pull(buf)
        out.append(transform)
    return tuple(out)


def push_transform_list(buf: Buffer, transforms: tuple[Transform, ...]) -> None:
    """Encode a non-empty transform list, marking the last one."""
    if not transforms:
        raise BadValue("a transform list needs at least one transform")
    for i, transform in enumerate(transforms):
        transform.push(buf, last=i == len(transforms) - 1)


@dataclass(frozen=True)
class Proposal:
    """One proposal: number, protocol, SPI and transforms (RFC 7296 §3.3.1)."""

    num: int
    protocol: int
    spi: bytes
    transforms: tuple[Transform, ...]

    def transform(self, ttype: int) -> Transform | None:
        """The first transform of the given type, if any."""
        return next((t for t in self.transforms if t.type == ttype), None)

    @classmethod
    def pull(cls, buf: Buffer) -> tuple[Proposal, bool]:
        """Decode one proposal; also return whether more proposals follow."""
        last = buf.pull_uint8("proposal Last Substruc")
        if last not in (_LAST, _MORE_PROPOSALS):
            raise BadValue(f"proposal Last Substruc is {last}, not 0 or 2")
        buf.pull_uint8("proposal RESERVED")
        length = buf.pull_uint16("proposal length")
        with buf.pull_block(length - 4, "proposal") as body:
            num = body.pull_uint8("proposal number")
            protocol = body.pull_uint8("proposal protocol ID")
            spi_size = body.pull_uint8("proposal SPI size")
            count = body.pull_uint8("proposal transform count")
            spi = body.pull_bytes(spi_size, "proposal SPI")
            transforms = []
            for i in range(count):
                transform, more = Transform.pull(body)
                transforms.append(transform)
                if more != (i < count - 1):
                    raise BadValue("transform Last Substruc disagrees with the transform count")
        return cls(num, protocol, spi, tuple(transforms)), last == _MORE_PROPOSALS

    def push(self, buf: Buffer, last: bool) -> None:
        """Encode this proposal with the given Last Substruc marker."""
        if len(self.transforms) > 0xFF or len(self.spi) > 0xFF:
            raise BadValue("proposal has too many transforms or too long an SPI")
        with buf.push_block(2):
            buf.push_uint8(_LAST if last else _MORE_PROPOSALS)
            buf.push_uint8(0)
            buf.push_uint16(0)
            buf.push_uint8(self.num)
            buf.push_uint8(self.protocol)
            buf.push_uint8(len(self.spi))
            buf.push_uint8(len(self.transforms))
            buf.push_bytes(self.spi)
            for i, transform in enumerate(self.transforms):
                transform.push(buf, last=i == len(self.transforms) - 1)


@dataclass(frozen=True)
class SaPayload:
    """Security Association payload, or SAg in GSA_AUTH (RFC 7296 §3.3, RFC 9838 §4.3)."""

    payload_type: ClassVar[int] = PayloadType.SA
    proposals: tuple[Proposal, ...]

    @classmethod
    def pull(cls, buf: Buffer) -> SaPayload:
        """Decode the payload body: one or more proposals."""
        proposals = []
        more = True
        while more:
            proposal, more = Proposal.pull(buf)
            proposals.append(proposal)
        return cls(tuple(proposals))

    def push(self, buf: Buffer) -> None:
        """Encode the payload body."""
        if not self.proposals:
            raise BadValue("an SA payload needs at least one proposal")
        for i, proposal in enumerate(self.proposals):
            proposal.push(buf, last=i == len(self.proposals) - 1)
