"""IKE SA cipher suites and their proposals (RFC 7296 §3.3, RFC 9838 §2.1).

An :class:`IkeSuite` is one fully chosen set of transforms. It converts to an
SA proposal for IKE_SA_INIT and back, and it tells the crypto layer how long
each key is. MRKM's default is RFC 9838's usual profile: AES-GCM-16-256,
PRF_HMAC_SHA2_256, X25519 and KW_5649_256 (ARCHITECTURE.md, "Defaults").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mrkm.crypto.keywrap import kwk_len
from mrkm.crypto.prf import prf_output_len
from mrkm.crypto.sk import SkSuite
from mrkm.wire import Attribute, Proposal, Transform
from mrkm.wire.registry import (
    DhGroup,
    EncrId,
    IntegId,
    KwaId,
    PrfId,
    ProtocolId,
    TransformAttr,
    TransformType,
)

__all__ = ["DEFAULT_SUITE", "IkeSuite", "choose_suite"]


@dataclass(frozen=True)
class IkeSuite:
    """One IKE SA proposal with exactly one transform of each type.

    ``kwa`` is G-IKEv2's Key Wrap Algorithm transform (type 13, RFC 9838
    §2.1); ``None`` leaves it out, as a plain IKEv2 peer such as strongSwan
    expects.
    """

    encr: int = EncrId.ENCR_AES_GCM_16
    encr_key_bits: int = 256
    prf: int = PrfId.PRF_HMAC_SHA2_256
    integ: int = IntegId.NONE
    dh: int = DhGroup.CURVE25519
    kwa: int | None = KwaId.KW_5649_256

    def __post_init__(self) -> None:
        # Building the SkSuite validates the ENCR/INTEG pair and key size.
        self.sk_suite()
        prf_output_len(self.prf)
        if self.kwa is not None:
            kwk_len(self.kwa)

    def sk_suite(self) -> SkSuite:
        """The SK payload protection this suite implies."""
        return SkSuite(self.encr, self.encr_key_bits, self.integ)

    @property
    def kwk_len(self) -> int:
        """Length of GSK_w, the registration SA's default KWK (RFC 9838 §3.1.1)."""
        return kwk_len(self.kwa if self.kwa is not None else KwaId.KW_5649_256)

    def to_proposal(self, num: int = 1, spi: bytes = b"") -> Proposal:
        """This suite as an IKE proposal."""
        transforms = [
            Transform(
                TransformType.ENCR,
                self.encr,
                (Attribute(TransformAttr.KEY_LENGTH, self.encr_key_bits),),
            ),
            Transform(TransformType.PRF, self.prf),
        ]
        if self.integ != IntegId.NONE:
            transforms.append(Transform(TransformType.INTEG, self.integ))
        transforms.append(Transform(TransformType.KE, self.dh))
        if self.kwa is not None:
            transforms.append(Transform(TransformType.KWA, self.kwa))
        return Proposal(num, ProtocolId.IKE, spi, tuple(transforms))

    @classmethod
    def from_proposal(cls, proposal: Proposal) -> IkeSuite | None:
        """The suite a single-choice proposal names, or None if MRKM cannot use it."""
        if proposal.protocol != ProtocolId.IKE:
            return None
        chosen: dict[int, Transform] = {}
        for transform in proposal.transforms:
            if transform.type in chosen:
                return None  # a response must carry exactly one of each type
            chosen[transform.type] = transform
        try:
            encr, prf, dh = (
                chosen[t] for t in (TransformType.ENCR, TransformType.PRF, TransformType.KE)
            )
            integ = chosen.get(TransformType.INTEG)
            kwa = chosen.get(TransformType.KWA)
            return cls(
                encr=encr.id,
                encr_key_bits=encr.key_length or 0,
                prf=prf.id,
                integ=integ.id if integ else IntegId.NONE,
                dh=dh.id,
                kwa=kwa.id if kwa else None,
            )
        except (KeyError, ValueError):
            return None


DEFAULT_SUITE = IkeSuite()


def choose_suite(offered: Iterable[Proposal], acceptable: Iterable[IkeSuite]) -> IkeSuite | None:
    """Pick the first acceptable suite contained in an offered proposal (RFC 7296 §2.7).

    A proposal offers every combination of its transforms; a suite matches
    when each of its transforms is among the proposal's with the same key
    length, and it has a KWA exactly when the proposal offers one.
    """
    suites = list(acceptable)
    for proposal in offered:
        if proposal.protocol != ProtocolId.IKE:
            continue
        offered_set = {(t.type, t.id, t.key_length) for t in proposal.transforms}
        offers_kwa = any(t.type == TransformType.KWA for t in proposal.transforms)
        for suite in suites:
            if (suite.kwa is not None) != offers_kwa:
                continue
            wanted = suite.to_proposal().transforms
            if all((t.type, t.id, t.key_length) in offered_set for t in wanted):
                return suite
    return None
