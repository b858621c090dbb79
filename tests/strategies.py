"""Hypothesis strategies for every wire payload, shared by property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from mrkm.wire import (
    Attribute,
    AuthPayload,
    CertPayload,
    CertReqPayload,
    DeletePayload,
    EncryptedPayload,
    GroupKeyBag,
    GroupWidePolicy,
    GsaPayload,
    GsaPolicy,
    IdgPayload,
    IdiPayload,
    IdrPayload,
    IkeHeader,
    KdPayload,
    KePayload,
    MemberKeyBag,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    TrafficSelector,
    Transform,
    TsiPayload,
    TsrPayload,
    UnknownPayload,
    VendorIdPayload,
    WrappedKey,
)
from mrkm.wire.registry import AuthMethod, ProtocolId

small_bytes = st.binary(max_size=40)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

attributes = st.builds(
    Attribute, st.integers(0, 0x7FFF), st.one_of(u16, st.binary(max_size=24))
).map(lambda a: a)
attribute_lists = st.lists(attributes, max_size=3).map(tuple)

transforms = st.builds(Transform, u8, u16, attribute_lists)
transform_lists = st.lists(transforms, min_size=1, max_size=4).map(tuple)
proposals = st.builds(Proposal, u8, u8, st.binary(max_size=16), transform_lists)
sa_payloads = st.builds(SaPayload, st.lists(proposals, min_size=1, max_size=3).map(tuple))


@st.composite
def traffic_selectors(draw: st.DrawFn) -> TrafficSelector:
    ts_type = draw(st.sampled_from([7, 8]))
    size = 4 if ts_type == 7 else 16
    return TrafficSelector(
        ts_type,
        draw(u8),
        draw(u16),
        draw(u16),
        draw(st.binary(min_size=size, max_size=size)),
        draw(st.binary(min_size=size, max_size=size)),
    )


_SPI_SIZES = {
    ProtocolId.GIKE_UPDATE: 16,
    ProtocolId.AH: 4,
    ProtocolId.ESP: 4,
    ProtocolId.OSPFV2: 1,
    ProtocolId.OSPFV3_TRAILER: 2,
}


@st.composite
def gsa_policies(draw: st.DrawFn) -> GsaPolicy:
    protocol = draw(st.one_of(st.sampled_from(sorted(_SPI_SIZES)), st.integers(7, 200)))
    size = _SPI_SIZES.get(protocol, draw(st.integers(0, 8)))
    spi = draw(st.binary(min_size=size, max_size=size))
    return GsaPolicy(
        protocol,
        spi,
        draw(traffic_selectors()),
        draw(traffic_selectors()),
        draw(transform_lists),
        draw(attribute_lists),
    )


group_wide = st.builds(
    GroupWidePolicy,
    st.lists(st.builds(Attribute, st.integers(0, 0x7FFF), u16), max_size=3).map(tuple),
)
gsa_payloads = st.builds(
    GsaPayload, st.lists(st.one_of(gsa_policies(), group_wide), max_size=4).map(tuple)
)

wrapped_keys = st.builds(
    WrappedKey,
    u32,
    u32,
    st.integers(2, 6).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n)),
)
group_bags = st.builds(GroupKeyBag, st.integers(1, 255), st.binary(max_size=16), attribute_lists)
member_bags = st.builds(MemberKeyBag, attribute_lists)
kd_payloads = st.builds(
    KdPayload, st.lists(st.one_of(group_bags, member_bags), max_size=4).map(tuple)
)

ids = (
    st.tuples(u8, small_bytes)
    .map(
        # RFC 7296 §3.5: address identities have fixed sizes.
        lambda t: (t[0], (t[1] * 16)[: {1: 4, 5: 16}[t[0]]] if t[0] in (1, 5) else t[1])
    )
    .filter(lambda t: t[0] not in (1, 5) or len(t[1]) == {1: 4, 5: 16}[t[0]])
)
auth_payloads = st.one_of(
    st.builds(AuthPayload, st.sampled_from([1, 2]), small_bytes),
    st.builds(
        lambda sig, alg: AuthPayload(AuthMethod.DIGITAL_SIGNATURE, sig, alg),
        small_bytes,
        st.binary(max_size=20).map(lambda b: bytes([0x30, len(b)]) + b),
    ),
)


@st.composite
def delete_payloads(draw: st.DrawFn) -> DeletePayload:
    size = draw(st.sampled_from([0, 1, 2, 4, 16]))
    spis = draw(st.lists(st.binary(min_size=size, max_size=size), max_size=3))
    return DeletePayload(draw(u8), size, tuple(spis))


simple_payloads = st.one_of(
    st.builds(KePayload, u16, small_bytes),
    st.builds(NoncePayload, st.binary(min_size=16, max_size=64)),
    ids.map(lambda t: IdiPayload(*t)),
    ids.map(lambda t: IdrPayload(*t)),
    ids.map(lambda t: IdgPayload(*t)),
    auth_payloads,
    st.builds(CertPayload, u8, small_bytes),
    st.builds(CertReqPayload, u8, small_bytes),
    st.builds(NotifyPayload, u16, small_bytes, u8, st.binary(max_size=16)),
    delete_payloads(),
    st.builds(VendorIdPayload, small_bytes),
    st.builds(TsiPayload, st.lists(traffic_selectors(), max_size=2).map(tuple)),
    st.builds(TsrPayload, st.lists(traffic_selectors(), max_size=2).map(tuple)),
    st.builds(UnknownPayload, st.integers(1, 32), small_bytes, st.just(False)),
)

payloads = st.one_of(simple_payloads, sa_payloads, gsa_payloads, kd_payloads)


@st.composite
def payload_chains(draw: st.DrawFn) -> tuple[object, ...]:
    chain = draw(st.lists(payloads, max_size=5))
    if draw(st.booleans()):
        chain.append(
            EncryptedPayload(
                draw(st.sampled_from([0, 35, 39, 50, 51])), draw(st.binary(max_size=48))
            )
        )
    return tuple(chain)


headers = st.builds(
    IkeHeader, st.binary(min_size=8, max_size=8), st.binary(min_size=8, max_size=8), u8, u8, u32
)
