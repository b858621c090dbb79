"""Differential test: scapy's IKEv2 layer frames our messages exactly as we do.

scapy (``scapy.contrib.ikev2``) is an implementation nobody here wrote. For
generated messages it must see the same header fields, the same payload
types in the same order with the same lengths, and the same values in the
payloads it models; and messages scapy builds must decode to the same.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib import ikev2 as sc

from mrkm.wire import (
    Attribute,
    EncryptedPayload,
    IkeHeader,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    Transform,
    UnknownPayload,
    decode_message,
    encode_chain,
    encode_message,
)
from tests import strategies as s


def _scapy_chain(data: bytes) -> tuple[Any, list[tuple[int, int, Any]]]:
    """Parse with scapy; return the header layer and (type, length, layer) per payload."""
    pkt = sc.IKEv2(data)
    out = []
    layer = pkt.payload
    current = pkt.next_payload
    while current != 0 and layer is not None and hasattr(layer, "next_payload"):
        out.append((current, layer.length, layer))
        if current == 46:  # scapy keeps the SK body opaque, like us
            break
        current = layer.next_payload
        layer = layer.payload
    return pkt, out


# scapy stops at payload types it does not know, so opaque payloads are left out.
_known_chains = s.payload_chains().filter(
    lambda chain: not any(isinstance(p, UnknownPayload) for p in chain)
)


@settings(max_examples=300)
@given(s.headers, _known_chains)
def test_scapy_sees_our_framing(header: IkeHeader, chain: tuple[Any, ...]) -> None:
    data = encode_message(header, chain)
    pkt, seen = _scapy_chain(data)
    assert bytes(pkt.init_SPI) == header.spi_i and bytes(pkt.resp_SPI) == header.spi_r
    assert (pkt.exch_type, int(pkt.flags), pkt.id, pkt.length) == (
        header.exchange_type,
        header.flags,
        header.message_id,
        len(data),
    )
    ours = []
    for payload in chain:
        _, body = encode_chain((payload,))
        ours.append((payload.payload_type, len(body)))
    assert [(t, n) for t, n, _ in seen] == ours


@settings(max_examples=200)
@given(st.data())
def test_scapy_reads_our_payload_values(data: st.DataObject) -> None:
    ke = data.draw(st.builds(KePayload, s.u16, st.binary(min_size=1, max_size=64)))
    nonce = data.draw(st.builds(NoncePayload, st.binary(min_size=16, max_size=64)))
    notify = data.draw(
        st.builds(NotifyPayload, s.u16, st.binary(max_size=16), s.u8, st.binary(max_size=8))
    )
    # scapy models only one attribute per transform, the Key Length (type 14).
    key_length = st.one_of(st.just(()), s.u16.map(lambda n: (Attribute(14, n),)))
    transform = st.builds(Transform, s.u8, s.u16, key_length)
    proposal = st.builds(
        Proposal,
        s.u8,
        s.u8,
        st.binary(max_size=16),
        st.lists(transform, min_size=1, max_size=4).map(tuple),
    )
    sa = data.draw(st.builds(SaPayload, st.lists(proposal, min_size=1, max_size=3).map(tuple)))
    header = data.draw(s.headers)
    _pkt, seen = _scapy_chain(encode_message(header, (sa, ke, nonce, notify)))
    layers = [layer for _, _, layer in seen]
    sa_l, ke_l, nonce_l, notify_l = layers
    assert (ke_l.group, bytes(ke_l.ke)) == (ke.group, ke.data)
    assert bytes(nonce_l.nonce) == nonce.data
    assert (notify_l.type, notify_l.proto, bytes(notify_l.SPI)) == (
        notify.notify_type,
        notify.protocol,
        notify.spi,
    )
    proposal = sa_l.prop
    for ours in sa.proposals:
        assert (proposal.proposal, proposal.proto, bytes(proposal.SPI)) == (
            ours.num,
            ours.protocol,
            ours.spi,
        )
        assert proposal.trans_nb == len(ours.transforms)
        transform = proposal.trans
        for t in ours.transforms:
            assert (transform.transform_type, transform.transform_id) == (t.type, t.id)
            assert (transform.key_length if transform.length > 8 else None) == t.key_length
            transform = transform.payload
        proposal = proposal.payload


def test_we_decode_what_scapy_builds() -> None:
    pkt = (
        sc.IKEv2(init_SPI=b"A" * 8, resp_SPI=b"B" * 8, exch_type=34, flags="Initiator", id=0)
        / sc.IKEv2_SA(
            prop=sc.IKEv2_Proposal(
                proposal=1,
                proto=1,
                trans_nb=3,
                trans=(
                    sc.IKEv2_Transform(
                        transform_type="Encryption", transform_id=20, key_length=256, length=12
                    )
                    / sc.IKEv2_Transform(transform_type="PRF", transform_id=5)
                    / sc.IKEv2_Transform(transform_type="GroupDesc", transform_id=31)
                ),
            )
        )
        / sc.IKEv2_KE(group=31, ke=b"k" * 32)
        / sc.IKEv2_Nonce(nonce=b"n" * 32)
        / sc.IKEv2_Encrypted(next_payload=50, load=b"\xaa" * 40)
    )
    message = decode_message(bytes(pkt))
    sa, ke, nonce, sk = message.payloads
    assert isinstance(sa, SaPayload) and isinstance(ke, KePayload)
    assert [(t.type, t.id, t.key_length) for t in sa.proposals[0].transforms] == [
        (1, 20, 256),
        (2, 5, None),
        (4, 31, None),
    ]
    assert (ke.group, ke.data) == (31, b"k" * 32)
    assert nonce == NoncePayload(b"n" * 32)
    assert sk == EncryptedPayload(50, b"\xaa" * 40)
    assert encode_message(message.header, message.payloads) == bytes(pkt)
