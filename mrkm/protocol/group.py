"""A group's policy and keys as GSA and KD payloads, and back (RFC 9838 §4.4, §4.5).

The GCKS side turns a :class:`GroupPolicy` and the current :class:`GroupKeys`
into the GSA and KD payloads of GSA_AUTH and GSA_REKEY; the GM side reads
them back into a :class:`ReceivedGroup`: the Rekey SA and one routing key
per Data-Security policy. Every key in KD is wrapped (RFC 9838 §4.5.4): in
GSA_AUTH under the registration SA's GSK_w, in GSA_REKEY under the Rekey
SA's GSK_w.

MRKM's routing TEKs use private protocol IDs: OSPFv2 (201) with the Key ID
as a 1-octet SPI, the OSPFv3 trailer (202) with the SA ID as a 2-octet SPI.
PIM uses IANA's AH (2) as RFC 5796 does: a 4-octet SPI, transport mode,
selector 224.0.0.13 / IP protocol 103, an IPsec integrity transform and the
SN transform "32-bit Unspecified Numbers", which RFC 9838 §4.4.2.1.3
requires for SAs with many senders (every PIM router sends on it).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field

from mrkm.crypto import keywrap
from mrkm.crypto.sk import SkSuite
from mrkm.errors import BadValue
from mrkm.protocol.keytree import KeyPath
from mrkm.protocol.rekey import RekeySa
from mrkm.wire import (
    Attribute,
    GroupKeyBag,
    GroupWidePolicy,
    GsaPayload,
    GsaPolicy,
    KdPayload,
    MemberKeyBag,
    TrafficSelector,
    Transform,
    WrappedKey,
)
from mrkm.wire.registry import (
    EncrId,
    GcauthId,
    GroupKeyBagAttr,
    GsaAttr,
    GwpAttr,
    IntegId,
    KwaId,
    MemberKeyBagAttr,
    ProtocolId,
    SnId,
    TransformAttr,
    TransformType,
    TsType,
)

__all__ = [
    "GroupKeys",
    "GroupPolicy",
    "ReceivedGroup",
    "RoutingKey",
    "TekPolicy",
    "make_gsa",
    "make_kd",
    "read_group",
]

IPPROTO_UDP = 17
IPPROTO_OSPF = 89
IPPROTO_PIM = 103
ALL_PIM_ROUTERS = "224.0.0.13"  # RFC 7761 §4.9, the destination AH protects (RFC 5796 §3)

# Key length of each routing digest: RFC 5709 §3.3 wants L octets for HMAC-SHA
# (BIRD 2.0.12 and RFC 5709 only agree on such keys); Keyed-MD5 takes 16.
ROUTING_KEY_LEN: dict[int, int] = {
    IntegId.ROUTING_KEYED_MD5: 16,
    IntegId.ROUTING_HMAC_SHA1: 20,
    IntegId.ROUTING_HMAC_SHA256: 32,
    IntegId.ROUTING_HMAC_SHA384: 48,
    IntegId.ROUTING_HMAC_SHA512: 64,
    # AH for PIM (RFC 5796): the IPsec HMACs take keys of the hash's length
    # (RFC 2404 §3, RFC 4868 §2.1.1).
    IntegId.AUTH_HMAC_SHA1_96: 20,
    IntegId.AUTH_HMAC_SHA2_256_128: 32,
}
_AH_INTEG = frozenset({IntegId.AUTH_HMAC_SHA1_96, IntegId.AUTH_HMAC_SHA2_256_128})
# RFC 9838 §4.4.2.1.3: AH/ESP SAs carry an SN transform; ESN must not be used for
# multicast. MRKM sends "Unspecified" (many senders) and accepts 32-bit Sequential.
_AH_SN_OK = frozenset({SnId.SEQ_32, SnId.UNSPECIFIED_32})


@functools.lru_cache(maxsize=256)
def _v4_selector(first: str, last: str, protocol: int, port: int = 0) -> TrafficSelector:
    lo = ipaddress.IPv4Address(first).packed
    hi = ipaddress.IPv4Address(last).packed
    return TrafficSelector(
        TsType.TS_IPV4_ADDR_RANGE, protocol, port, port if port else 0xFFFF, lo, hi
    )


@dataclass(frozen=True)
class TekPolicy:
    """One Data-Security policy: which routing protocol, which digest, how long."""

    protocol: int = ProtocolId.OSPFV2
    integ: int = IntegId.ROUTING_HMAC_SHA256
    lifetime: int = 3600  # seconds, GSA_KEY_LIFETIME

    def __post_init__(self) -> None:
        if self.integ not in ROUTING_KEY_LEN:
            raise ValueError(f"integ {self.integ}: not a routing digest MRKM can key")
        if self.protocol not in (ProtocolId.OSPFV2, ProtocolId.OSPFV3_TRAILER, ProtocolId.AH):
            raise ValueError(f"protocol {self.protocol}: not a routing protocol MRKM keys")
        if (self.protocol == ProtocolId.AH) != (self.integ in _AH_INTEG):
            raise ValueError(
                f"integ {self.integ} with protocol {self.protocol}: AH takes exactly the "
                "IPsec HMACs (AUTH_HMAC_SHA1_96, AUTH_HMAC_SHA2_256_128)"
            )
        if self.lifetime <= 0:
            raise ValueError("lifetime must be positive seconds")

    @property
    def key_len(self) -> int:
        """Octets of the routing key."""
        return ROUTING_KEY_LEN[self.integ]


@dataclass(frozen=True)
class GroupPolicy:
    """Everything the GCKS tells members about one group, less the keys."""

    gcks_address: str
    rekey_address: str = "239.192.0.1"
    rekey_port: int = 848
    rekey_suite: SkSuite = field(default_factory=lambda: SkSuite(EncrId.ENCR_AES_GCM_16, 256))
    kwa: int = KwaId.KW_5649_256
    rekey_lifetime: int = 86400
    signature_alg_id: bytes | None = None  # None: Implicit GCAUTH
    teks: tuple[TekPolicy, ...] = (TekPolicy(),)
    atd: int = 2  # seconds, GWP_ATD
    dtd: int = 4  # seconds, GWP_DTD

    def __post_init__(self) -> None:
        if not ipaddress.IPv4Address(self.rekey_address).is_multicast:
            raise ValueError(f"rekey_address {self.rekey_address} is not multicast")
        if self.atd >= min(t.lifetime for t in self.teks):
            raise ValueError("atd must be shorter than every TEK lifetime")


@dataclass(frozen=True)
class RoutingKey:
    """One routing key as the group holds it; ``spi`` is the Key ID or SA ID."""

    protocol: int
    spi: bytes
    integ: int
    key: bytes = field(repr=False)
    lifetime: int
    next_spi: bytes | None = None  # GSA_NEXT_SPI: the id reserved for the successor


@dataclass(frozen=True)
class GroupKeys:
    """The current keys of a group on the GCKS."""

    rekey_spi: bytes
    rekey_keymat: bytes = field(repr=False)
    teks: tuple[RoutingKey, ...]
    next_message_id: int = 0


def _rekey_policy(policy: GroupPolicy, keys: GroupKeys, registration: bool) -> GsaPolicy:
    suite = policy.rekey_suite
    transforms = [
        Transform(
            TransformType.ENCR,
            suite.encr_id,
            (Attribute(TransformAttr.KEY_LENGTH, suite.encr_key_bits),),
        )
    ]
    if suite.integ_id:
        transforms.append(Transform(TransformType.INTEG, suite.integ_id))
    transforms.append(Transform(TransformType.KWA, policy.kwa))
    if registration:  # GCAUTH never appears in rekeys (RFC 9838 §4.4.2.1.1)
        if policy.signature_alg_id is None:
            transforms.append(Transform(TransformType.GCAUTH, GcauthId.IMPLICIT))
        else:
            alg = Attribute(TransformAttr.SIGNATURE_ALGORITHM_IDENTIFIER, policy.signature_alg_id)
            transforms.append(Transform(TransformType.GCAUTH, GcauthId.DIGITAL_SIGNATURE, (alg,)))
    attributes = [Attribute(GsaAttr.GSA_KEY_LIFETIME, policy.rekey_lifetime.to_bytes(4, "big"))]
    if keys.next_message_id:
        attributes.append(
            Attribute(GsaAttr.GSA_INITIAL_MESSAGE_ID, keys.next_message_id.to_bytes(4, "big"))
        )
    return GsaPolicy(
        ProtocolId.GIKE_UPDATE,
        keys.rekey_spi,
        # Source: the GCKS address, any port (RFC 9838 §4.4.2 allows a wildcard);
        # the runtime sends rekeys from whatever port its socket has.
        _v4_selector(policy.gcks_address, policy.gcks_address, IPPROTO_UDP),
        _v4_selector(policy.rekey_address, policy.rekey_address, IPPROTO_UDP, policy.rekey_port),
        tuple(transforms),
        tuple(attributes),
    )


def _tek_policy(tek: RoutingKey) -> GsaPolicy:
    if tek.protocol == ProtocolId.AH:
        # RFC 5796 §3: PIM link-local messages go to ALL-PIM-ROUTERS from any
        # router of the link; transport-mode AH with INTEG and SN (RFC 9838
        # §4.4.2.1: both mandatory for AH).
        source = _v4_selector("0.0.0.0", "255.255.255.255", IPPROTO_PIM)
        destination = _v4_selector(ALL_PIM_ROUTERS, ALL_PIM_ROUTERS, IPPROTO_PIM)
        transforms: tuple[Transform, ...] = (
            Transform(TransformType.INTEG, tek.integ),
            Transform(TransformType.SN, SnId.UNSPECIFIED_32),
        )
    else:
        # OSPFv2 hellos go to AllSPFRouters / AllDRouters (RFC 2328 App. A.1).
        source = _v4_selector("0.0.0.0", "255.255.255.255", IPPROTO_OSPF)
        destination = _v4_selector("224.0.0.5", "224.0.0.6", IPPROTO_OSPF)
        transforms = (Transform(TransformType.INTEG, tek.integ),)
    return GsaPolicy(
        tek.protocol,
        tek.spi,
        source,
        destination,
        transforms,
        (
            Attribute(GsaAttr.GSA_KEY_LIFETIME, tek.lifetime.to_bytes(4, "big")),
            # RFC 9838 §4.4.2.2.3: lets a GM that sees this SPI in use, without
            # holding its key, know it missed a rekey.
            *((Attribute(GsaAttr.GSA_NEXT_SPI, tek.next_spi),) if tek.next_spi else ()),
        ),
    )


def make_gsa(policy: GroupPolicy, keys: GroupKeys, registration: bool) -> GsaPayload:
    """The GSA payload: Rekey SA policy, one policy per TEK, group-wide policy."""
    return GsaPayload(
        (
            _rekey_policy(policy, keys, registration),
            *(_tek_policy(tek) for tek in keys.teks),
            GroupWidePolicy(
                (Attribute(GwpAttr.GWP_ATD, policy.atd), Attribute(GwpAttr.GWP_DTD, policy.dtd))
            ),
        )
    )


def make_kd(
    policy: GroupPolicy,
    keys: GroupKeys,
    kwk: bytes,
    kwa: int,
    auth_key: bytes | None,
    wrap_keys: tuple[WrappedKey, ...] = (),
    rekey_sa_keys: tuple[WrappedKey, ...] | None = None,
) -> KdPayload:
    """The KD payload: every key wrapped under ``kwk`` (KWK ID 0, RFC 9838 §4.5.4).

    ``auth_key`` (the GCKS public key, DER) and ``wrap_keys`` (key-tree
    WRAP_KEYs) go in a member key bag. ``rekey_sa_keys`` replaces the default
    SA_KEY of the Rekey SA, for an eviction rekey whose new Rekey SA keymat is
    wrapped under key-tree nodes (Appendix A).
    """

    def bag(protocol: int, spi: bytes, wrapped: tuple[WrappedKey, ...]) -> GroupKeyBag:
        attributes = tuple(Attribute(GroupKeyBagAttr.SA_KEY, w.encode()) for w in wrapped)
        return GroupKeyBag(protocol, spi, attributes)

    def default(secret: bytes) -> tuple[WrappedKey, ...]:
        return (WrappedKey(0, 0, keywrap.wrap(kwa, kwk, secret)),)

    rekey = rekey_sa_keys if rekey_sa_keys is not None else default(keys.rekey_keymat)
    bags: list[GroupKeyBag | MemberKeyBag] = [bag(ProtocolId.GIKE_UPDATE, keys.rekey_spi, rekey)]
    bags += [bag(t.protocol, t.spi, default(t.key)) for t in keys.teks]
    member = [Attribute(MemberKeyBagAttr.WRAP_KEY, w.encode()) for w in wrap_keys]
    if auth_key is not None:
        member.append(Attribute(MemberKeyBagAttr.AUTH_KEY, auth_key))
    if member:
        bags.append(MemberKeyBag(tuple(member)))
    return KdPayload(tuple(bags))


@dataclass(frozen=True)
class ReceivedGroup:
    """What a GM learned from one GSA + KD pair."""

    rekey_sa: RekeySa | None
    teks: tuple[RoutingKey, ...]
    atd: int | None
    dtd: int | None
    auth_key: bytes | None
    signature_alg_id: bytes | None
    initial_message_id: int


def read_group(
    gsa: GsaPayload,
    kd: KdPayload,
    kwk: bytes,
    kwa: int,
    previous_rekey: RekeySa | None = None,
    key_path: KeyPath | None = None,
) -> ReceivedGroup:
    """Unwrap every key of ``kd`` that ``gsa`` has a policy for.

    ``kwk``/``kwa`` are the key wrap key in force: the registration SA's
    GSK_w in GSA_AUTH, the Rekey SA's GSK_w in GSA_REKEY. A policy without a
    key, or a key that fails to unwrap, raises an error naming it.
    """
    rekey_sa = previous_rekey
    signature_alg: bytes | None = None
    initial = 0
    policy = gsa.rekey_policy
    if policy is not None:
        suite = _suite_of(policy)
        rekey_kwa = _transform_id(policy, TransformType.KWA)
        keymat = _unwrap_rekey_keymat(kd, policy, kwk, kwa, key_path)
        if len(keymat) != RekeySa.keymat_len(suite, rekey_kwa):
            raise BadValue("Rekey SA keying material has the wrong length")
        rekey_sa = RekeySa.from_keymat(policy.spi, suite, rekey_kwa, keymat)
        gcauth = policy.transform(TransformType.GCAUTH)
        if gcauth is not None and gcauth.id == GcauthId.DIGITAL_SIGNATURE:
            signature_alg = next(
                (
                    a.as_bytes()
                    for a in gcauth.attributes
                    if a.type == TransformAttr.SIGNATURE_ALGORITHM_IDENTIFIER
                ),
                None,
            )
            if signature_alg is None:
                raise BadValue("GCAUTH Digital Signature lacks its AlgorithmIdentifier")
        attribute = policy.attribute(GsaAttr.GSA_INITIAL_MESSAGE_ID)
        initial = attribute.as_int() if attribute is not None else 0
    teks = []
    for tek in gsa.data_policies:
        integ = _transform_id(tek, TransformType.INTEG)
        if tek.protocol == ProtocolId.AH:
            _check_ah(tek, integ)
        key = _unwrap_for(kd, tek, kwk, kwa)
        teks.append(RoutingKey(tek.protocol, tek.spi, integ, key, tek.lifetime or 0))
    wide = gsa.group_wide
    member = kd.member_bag
    return ReceivedGroup(
        rekey_sa,
        tuple(teks),
        wide.atd if wide else None,
        wide.dtd if wide else None,
        member.auth_key if member else None,
        signature_alg,
        initial,
    )


def _check_ah(policy: GsaPolicy, integ: int) -> None:
    """An AH policy MRKM can use: an IPsec HMAC and a multicast-safe SN (RFC 9838 §4.4.2.1)."""
    if integ not in _AH_INTEG:
        raise BadValue(f"AH policy SPI {policy.spi.hex()}: INTEG {integ} is not an AH HMAC")
    sn = _transform_id(policy, TransformType.SN)
    if sn not in _AH_SN_OK:
        raise BadValue(
            f"AH policy SPI {policy.spi.hex()}: SN transform {sn} cannot be used for a "
            "multicast SA (RFC 9838 §4.4.2.1.3)"
        )


def _transform_id(policy: GsaPolicy, ttype: int) -> int:
    transform = policy.transform(ttype)
    if transform is None:
        raise BadValue(f"GSA policy for protocol {policy.protocol} lacks transform type {ttype}")
    return transform.id


def _suite_of(policy: GsaPolicy) -> SkSuite:
    encr = policy.transform(TransformType.ENCR)
    if encr is None or encr.key_length is None:
        raise BadValue("Rekey SA policy lacks ENCR with a key length")
    integ = policy.transform(TransformType.INTEG)
    try:
        return SkSuite(encr.id, encr.key_length, integ.id if integ else 0)
    except ValueError as exc:
        raise BadValue(f"Rekey SA policy: {exc}") from None


def _unwrap_rekey_keymat(
    kd: KdPayload, policy: GsaPolicy, kwk: bytes, kwa: int, key_path: KeyPath | None
) -> bytes:
    """The Rekey SA keymat: under the default KWK, or down a key-tree path (§3.3)."""
    bag = kd.bag_for(policy.protocol, policy.spi)
    if bag is None or not bag.sa_keys:
        raise BadValue(f"KD has no key for the Rekey SA {policy.spi.hex()}")
    if any(w.kwk_id == 0 for w in bag.sa_keys) or key_path is None:
        return _unwrap_for(kd, policy, kwk, kwa)
    member = kd.member_bag
    wrap_keys = member.wrap_keys if member is not None else ()
    return key_path.resolve(bag.sa_keys, wrap_keys, kwk, kwa)


def _unwrap_for(kd: KdPayload, policy: GsaPolicy, kwk: bytes, kwa: int) -> bytes:
    bag = kd.bag_for(policy.protocol, policy.spi)
    if bag is None or not bag.sa_keys:
        raise BadValue(f"KD has no key for protocol {policy.protocol} SPI {policy.spi.hex()}")
    wrapped = next((w for w in bag.sa_keys if w.kwk_id == 0), None)
    if wrapped is None:
        raise BadValue("no SA_KEY wrapped under the default KWK (key trees come later)")
    return keywrap.unwrap(kwa, kwk, wrapped.encrypted)
