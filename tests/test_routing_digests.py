"""Routing-protocol digests (mrkm.crypto.routing) against independent judges.

Judges: packets captured from FRR 8.4.4 and BIRD 2.0.12 (tests/vectors/routing/README.md),
scapy's AH implementation, and the standard library's hashlib/hmac for the
constructions of RFC 2328 App. D, RFC 5709 §3.3 and RFC 7166 §4.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, IPv6, raw, rdpcap
from scapy.contrib.pim import PIMv2Hdr, PIMv2Hello
from scapy.layers.inet import IPOption_Router_Alert, IPOption_RR
from scapy.layers.ipsec import AH, SecurityAssociation

from mrkm.crypto.routing import (
    AhHeader,
    ah_decode_header,
    ah_encode_header,
    ah_icv,
    ah_protect_ipv4,
    ah_verify,
    digest_len,
    ospfv2_digest,
    ospfv2_sign,
    ospfv2_verify,
    ospfv3_sign,
    ospfv3_trailer_digest,
    ospfv3_verify,
)
from mrkm.errors import BadLength, BadValue, DecodeError, IntegrityCheckFailed, MrkmError, Truncated
from mrkm.wire.registry import IntegId

VECTORS = Path(__file__).parent / "vectors" / "routing"
APAD = bytes.fromhex("878FE1F3")

FRR_MD5_KEYS = {7: (IntegId.ROUTING_KEYED_MD5, b"0123456789abcdef")}
BIRD_KEY = b"a-long-secret-key-of-40-bytes-123456789"
BIRD_KEYS = {9: (IntegId.ROUTING_HMAC_SHA256, BIRD_KEY)}
V3_KEY_1 = b"mrkm-ospfv3-trailer-key-chain-40-octets!"
V3_KEY_2 = b"mrkm-v3k"
V3_KEYS = {5: (IntegId.ROUTING_HMAC_SHA256, V3_KEY_1), 3: (IntegId.ROUTING_HMAC_SHA256, V3_KEY_2)}
# Which SA ID each link's routers use (README): link 1 = SA 5, link 2 = SA 3.
V3_SA_BY_SOURCE = {"fe80::76:1a": 5, "fe80::76:1b": 5, "fe80::76:2a": 3, "fe80::76:2b": 3}


def _ipv4_payloads(name: str) -> list[bytes]:
    return [raw(p[IP].payload) for p in rdpcap(str(VECTORS / name))]


def _ipv6_packets(name: str) -> list[tuple[bytes, bytes, str]]:
    out = []
    for p in rdpcap(str(VECTORS / name)):
        src = p[IPv6].src
        out.append((raw(p[IPv6].payload), ipaddress.IPv6Address(src).packed, src))
    return out


FRR_V2 = _ipv4_payloads("ospfv2-md5-frr-8.4.4.pcap")
BIRD_V2 = _ipv4_payloads("ospfv2-hmac-sha256-bird-2.0.12.pcap")
FRR_V3 = _ipv6_packets("ospfv3-trailer-hmac-sha256-frr-8.4.4.pcap")


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def _ospf_len(payload: bytes) -> int:
    return int(struct.unpack_from("!H", payload, 2)[0])


# -- digest_len ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("integ", "length"),
    [
        (IntegId.ROUTING_KEYED_MD5, 16),
        (IntegId.ROUTING_HMAC_SHA1, 20),
        (IntegId.ROUTING_HMAC_SHA256, 32),
        (IntegId.ROUTING_HMAC_SHA384, 48),
        (IntegId.ROUTING_HMAC_SHA512, 64),
        (IntegId.AUTH_HMAC_SHA1_96, 12),
        (IntegId.AUTH_HMAC_SHA2_256_128, 16),
        (IntegId.AUTH_HMAC_SHA2_384_192, 24),
        (IntegId.AUTH_HMAC_SHA2_512_256, 32),
    ],
)
def test_digest_len(integ: IntegId, length: int) -> None:
    assert digest_len(integ) == length


@pytest.mark.parametrize("integ", [IntegId.NONE, 9999])
def test_digest_len_rejects_non_digests(integ: int) -> None:
    with pytest.raises(ValueError):
        digest_len(integ)


# -- OSPFv2: FRR Keyed-MD5 capture ----------------------------------------------------------


def test_frr_md5_capture_verifies() -> None:
    assert len(FRR_V2) == 12
    for payload in FRR_V2:
        info = ospfv2_verify(payload, FRR_MD5_KEYS)
        assert info.key_id == 7
        assert info.packet_type == 1
        assert info.sequence == struct.unpack_from("!I", payload, 20)[0]
        assert info.packet_length == len(payload) - 16
        assert str(info.router_id) in {"10.255.77.1", "10.255.77.2"}
        assert str(info.area_id) == "0.0.0.0"


def test_frr_md5_digest_is_md5_of_packet_and_padded_key() -> None:
    for payload in FRR_V2:
        n = _ospf_len(payload)
        judge = hashlib.md5(payload[:n] + b"0123456789abcdef").digest()
        assert judge == payload[n:]
        assert ospfv2_digest(IntegId.ROUTING_KEYED_MD5, payload[:n], b"0123456789abcdef") == judge


def test_frr_md5_sign_reproduces_capture() -> None:
    for payload in FRR_V2:
        n = _ospf_len(payload)
        seq = struct.unpack_from("!I", payload, 20)[0]
        signed = ospfv2_sign(
            IntegId.ROUTING_KEYED_MD5,
            payload[:n],
            key_id=7,
            key=b"0123456789abcdef",
            sequence=seq,
        )
        assert signed == payload


# -- OSPFv2: BIRD HMAC-SHA-256 capture ------------------------------------------------------


def test_bird_capture_verifies_with_plain_hmac() -> None:
    assert len(BIRD_V2) == 14
    types = set()
    for payload in BIRD_V2:
        info = ospfv2_verify(payload, BIRD_KEYS, key_preparation="plain")
        assert info.key_id == 9
        types.add(info.packet_type)
    assert types == {1, 4, 5}


def test_bird_capture_fails_with_rfc5709_key_preparation() -> None:
    # Measured discrepancy (routers.md Addendum): BIRD does not hash a key longer than L.
    assert len(BIRD_KEY) > digest_len(IntegId.ROUTING_HMAC_SHA256)
    for payload in BIRD_V2:
        with pytest.raises(IntegrityCheckFailed):
            ospfv2_verify(payload, BIRD_KEYS, key_preparation="rfc5709")
        with pytest.raises(IntegrityCheckFailed):
            ospfv2_verify(payload, BIRD_KEYS)  # rfc5709 is the default


def test_bird_sign_reproduces_capture() -> None:
    for payload in BIRD_V2:
        n = _ospf_len(payload)
        seq = struct.unpack_from("!I", payload, 20)[0]
        signed = ospfv2_sign(
            IntegId.ROUTING_HMAC_SHA256,
            payload[:n],
            key_id=9,
            key=BIRD_KEY,
            sequence=seq,
            key_preparation="plain",
        )
        assert signed == payload


def test_bird_digest_matches_stdlib_hmac_with_apad() -> None:
    payload = BIRD_V2[0]
    n = _ospf_len(payload)
    judge = hmac.new(BIRD_KEY, payload[:n] + APAD * 8, hashlib.sha256).digest()
    assert judge == payload[n:]


# -- OSPFv2: tampering and wrong keys ---------------------------------------------------------


@pytest.mark.parametrize(
    ("payloads", "keys", "prep"),
    [(FRR_V2, FRR_MD5_KEYS, "rfc5709"), (BIRD_V2, BIRD_KEYS, "plain")],
    ids=["frr-md5", "bird-sha256"],
)
def test_ospfv2_flipped_byte_fails(payloads: list[bytes], keys: dict, prep: str) -> None:
    payload = payloads[0]
    # Router ID, area, sequence number, body and digest: every flip must be caught.
    for offset in (5, 9, 23, 30, len(payload) - 1, _ospf_len(payload)):
        with pytest.raises(IntegrityCheckFailed):
            ospfv2_verify(_flip(payload, offset), keys, key_preparation=prep)


def test_ospfv2_wrong_key_fails() -> None:
    with pytest.raises(IntegrityCheckFailed):
        ospfv2_verify(FRR_V2[0], {7: (IntegId.ROUTING_KEYED_MD5, b"0123456789abcdeF")})
    with pytest.raises(IntegrityCheckFailed):
        ospfv2_verify(
            BIRD_V2[0],
            {9: (IntegId.ROUTING_HMAC_SHA256, BIRD_KEY + b"0")},
            key_preparation="plain",
        )


def test_ospfv2_unknown_key_id_fails() -> None:
    with pytest.raises(IntegrityCheckFailed, match="Key ID 7"):
        ospfv2_verify(FRR_V2[0], {8: FRR_MD5_KEYS[7]})


def test_ospfv2_algorithm_mismatch_fails() -> None:
    # Auth Data Len 16 (MD5) but the key is configured for HMAC-SHA-256.
    with pytest.raises(IntegrityCheckFailed, match="Auth Data Len"):
        ospfv2_verify(FRR_V2[0], {7: (IntegId.ROUTING_HMAC_SHA256, b"0123456789abcdef")})


def test_ospfv2_ignores_octets_after_digest() -> None:
    # An RFC 5613 LLS block may follow the digest; it is not covered by it.
    info = ospfv2_verify(FRR_V2[0] + b"\x00\x00\x00\x01", FRR_MD5_KEYS)
    assert info.key_id == 7


# -- OSPFv2: constructions against the standard library ---------------------------------------

HELLO_V2 = bytes.fromhex(
    "0201002c" "0aff4d02" "00000000" "0000" "0000" "0000000000000000"
    "ffffff00" "000a" "02" "01" "00000004" "00000000" "00000000"
)  # fmt: skip

SHA = {
    IntegId.ROUTING_HMAC_SHA1: (hashlib.sha1, 20, 64),
    IntegId.ROUTING_HMAC_SHA256: (hashlib.sha256, 32, 64),
    IntegId.ROUTING_HMAC_SHA384: (hashlib.sha384, 48, 128),
    IntegId.ROUTING_HMAC_SHA512: (hashlib.sha512, 64, 128),
}


@pytest.mark.parametrize("integ", list(SHA))
def test_rfc5709_key_preparation(integ: IntegId) -> None:
    h, length, block = SHA[integ]
    packet = HELLO_V2
    for key_len in (1, length - 1, length, length + 1, block, block + 1):
        key = bytes((i * 7 + 1) & 0xFF for i in range(key_len))
        # RFC 5709 §3.3: K longer than L -> H(K); shorter -> zero-padded to L.
        ko = h(key).digest() if len(key) > length else key.ljust(length, b"\x00")
        judge = hmac.new(ko, packet + (APAD * 16)[:length], h).digest()
        assert ospfv2_digest(integ, packet, key) == judge
        plain = hmac.new(key, packet + (APAD * 16)[:length], h).digest()
        assert ospfv2_digest(integ, packet, key, key_preparation="plain") == plain
        # The preparations disagree exactly when L < |K| <= B.
        assert (judge == plain) == (not length < key_len <= block)


def test_keyed_md5_short_key_zero_padded_and_long_key_refused() -> None:
    judge = hashlib.md5(HELLO_V2 + b"abc" + bytes(13)).digest()
    assert ospfv2_digest(IntegId.ROUTING_KEYED_MD5, HELLO_V2, b"abc") == judge
    with pytest.raises(ValueError, match="at most 16"):
        ospfv2_digest(IntegId.ROUTING_KEYED_MD5, HELLO_V2, b"0123456789abcdefX")


def test_ospfv2_digest_rejects_ah_transform() -> None:
    with pytest.raises(ValueError):
        ospfv2_digest(IntegId.AUTH_HMAC_SHA2_256_128, HELLO_V2, bytes(32))


@pytest.mark.parametrize("integ", [IntegId.ROUTING_KEYED_MD5, *SHA])
def test_ospfv2_sign_verify_round_trip(integ: IntegId) -> None:
    key = bytes(range(digest_len(integ)))
    signed = ospfv2_sign(integ, HELLO_V2, key_id=200, key=key, sequence=0xFFFFFFFF)
    assert len(signed) == len(HELLO_V2) + digest_len(integ)
    assert signed[14:24] == b"\x00\x02\x00\x00" + bytes([200, digest_len(integ)]) + b"\xff" * 4
    info = ospfv2_verify(signed, {200: (integ, key)})
    assert (info.key_id, info.sequence, info.packet_type) == (200, 0xFFFFFFFF, 1)


def test_ospfv2_sign_rejects_bad_arguments() -> None:
    md5 = IntegId.ROUTING_KEYED_MD5
    with pytest.raises(ValueError):
        ospfv2_sign(md5, HELLO_V2, key_id=256, key=b"k", sequence=1)
    with pytest.raises(ValueError):
        ospfv2_sign(md5, HELLO_V2, key_id=1, key=b"k", sequence=1 << 32)
    with pytest.raises(ValueError, match="Packet Length"):
        ospfv2_sign(md5, HELLO_V2 + b"\x00", key_id=1, key=b"k", sequence=1)
    with pytest.raises(ValueError):
        ospfv2_sign(md5, HELLO_V2[:20], key_id=1, key=b"k", sequence=1)


# -- OSPFv2: malformed input ---------------------------------------------------------------


def _v2_with(offset: int, value: bytes) -> bytes:
    base = bytearray(FRR_V2[0])
    base[offset : offset + len(value)] = value
    return bytes(base)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", Truncated),
        (FRR_V2[0][:23], Truncated),  # header cut short
        (FRR_V2[0][:50], Truncated),  # digest cut short
        (FRR_V2[0][:40], Truncated),  # body shorter than Packet Length
        (_v2_with(0, b"\x03"), BadValue),  # version 3
        (_v2_with(1, b"\x06"), BadValue),  # packet type 6
        (_v2_with(1, b"\x00"), BadValue),  # packet type 0
        (_v2_with(2, b"\x00\x10"), BadLength),  # Packet Length < 24
        (_v2_with(2, b"\xff\xff"), Truncated),  # Packet Length > data
        (_v2_with(14, b"\x00\x00"), BadValue),  # AuType 0 (null)
        (_v2_with(14, b"\x00\x01"), BadValue),  # AuType 1 (simple password)
        (_v2_with(14, b"\x00\x03"), BadValue),  # AuType 3 (RFC 7474, unsupported)
        (_v2_with(19, b"\x40"), Truncated),  # Auth Data Len 64 > available
    ],
)
def test_ospfv2_malformed(data: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        ospfv2_verify(data, FRR_MD5_KEYS)


# -- OSPFv3: FRR 8.4.4 trailer capture ----------------------------------------------------------


def test_frr_ospfv3_capture_verifies() -> None:
    assert len(FRR_V3) == 62
    types = set()
    for payload, src, src_text in FRR_V3:
        info = ospfv3_verify(payload, src, V3_KEYS, key_preparation="frr8")
        assert info.sa_id == V3_SA_BY_SOURCE[src_text]
        assert info.sequence == int.from_bytes(payload[_ospf_len(payload) + 8 :][:8], "big")
        assert info.lls_length == 0
        assert str(info.router_id) in {"10.255.76.1", "10.255.76.2"}
        assert info.instance_id == 0
        types.add(info.packet_type)
    assert types == {1, 2, 3, 4, 5}


def test_frr_ospfv3_capture_fails_with_rfc7166_protocol_id() -> None:
    # Measured discrepancy: FRR 8.x appends the protocol ID in host byte order (01 00).
    for payload, src, _ in FRR_V3:
        with pytest.raises(IntegrityCheckFailed):
            ospfv3_verify(payload, src, V3_KEYS)


def test_frr_ospfv3_digest_matches_stdlib_hmac() -> None:
    for payload, src, src_text in FRR_V3[:8]:
        n = _ospf_len(payload)
        key = {5: V3_KEY_1, 3: V3_KEY_2}[V3_SA_BY_SOURCE[src_text]]
        ks = key + b"\x01\x00"
        ko = hashlib.sha256(ks).digest() if len(ks) > 32 else ks
        judge = hmac.new(ko, payload[: n + 16] + src + APAD * 4, hashlib.sha256).digest()
        assert judge == payload[n + 16 :]


def test_frr_ospfv3_sign_reproduces_capture() -> None:
    for payload, src, src_text in FRR_V3:
        n = _ospf_len(payload)
        sa_id = V3_SA_BY_SOURCE[src_text]
        signed = ospfv3_sign(
            IntegId.ROUTING_HMAC_SHA256,
            payload[:n],
            sa_id=sa_id,
            key=V3_KEYS[sa_id][1],
            sequence=int.from_bytes(payload[n + 8 : n + 16], "big"),
            src_ipv6=src,
            key_preparation="frr8",
        )
        assert signed == payload


def test_ospfv3_source_address_is_authenticated() -> None:
    payload, _, _ = FRR_V3[0]
    other = ipaddress.IPv6Address("fe80::76:99").packed
    with pytest.raises(IntegrityCheckFailed):
        ospfv3_verify(payload, other, V3_KEYS, key_preparation="frr8")


def test_ospfv3_flipped_byte_fails() -> None:
    payload, src, _ = FRR_V3[0]
    n = _ospf_len(payload)
    # Router ID, body, trailer sequence number, digest.
    for offset in (5, n - 1, n + 15, len(payload) - 1):
        with pytest.raises(IntegrityCheckFailed):
            ospfv3_verify(_flip(payload, offset), src, V3_KEYS, key_preparation="frr8")


def test_ospfv3_wrong_key_and_unknown_sa_fail() -> None:
    payload, src, _ = FRR_V3[0]
    sa_id = V3_SA_BY_SOURCE[FRR_V3[0][2]]
    with pytest.raises(IntegrityCheckFailed):
        ospfv3_verify(
            payload, src, {sa_id: (IntegId.ROUTING_HMAC_SHA256, b"wrong")}, key_preparation="frr8"
        )
    with pytest.raises(IntegrityCheckFailed, match="SA ID"):
        ospfv3_verify(payload, src, {99: V3_KEYS[5]}, key_preparation="frr8")
    with pytest.raises(IntegrityCheckFailed, match="makes 48"):
        ospfv3_verify(
            payload, src, {sa_id: (IntegId.ROUTING_HMAC_SHA384, V3_KEY_1)}, key_preparation="frr8"
        )


# -- OSPFv3: RFC 7166 construction, LLS and malformed input -------------------------------------

SRC6 = ipaddress.IPv6Address("fe80::1").packed
# Hello (RFC 5340 A.3.2): Interface ID, priority 1, Options V6|E|R|AT|L, hello 1, dead 4, DR, BDR.
HELLO_V3 = bytes.fromhex(
    "03010024" "0aff4c01" "00000000" "0000" "00" "00"
    "00000005" "01" "000613" "0001" "0004" "00000000" "00000000"
)  # fmt: skip
LLS = bytes.fromhex("000000030001000400000001")  # RFC 5613: EO TLV, 3 words
HELLO_V3_NO_L = HELLO_V3[:21] + b"\x00\x04\x13" + HELLO_V3[24:]


@pytest.mark.parametrize("integ", list(SHA))
def test_rfc7166_construction(integ: IntegId) -> None:
    h, length, _ = SHA[integ]
    trailer = struct.pack("!HHHHQ", 1, 16 + length, 0, 7, 42)
    for key in (b"k", bytes(range(length - 2)), bytes(range(length + 5))):
        ks = key + b"\x00\x01"  # RFC 7166: K || Cryptographic Protocol ID 1 (OSPFv3)
        ko = h(ks).digest() if len(ks) > length else ks
        apad = SRC6 + (APAD * 16)[: length - 16]
        judge = hmac.new(ko, HELLO_V3 + LLS + trailer + apad, h).digest()
        assert ospfv3_trailer_digest(integ, HELLO_V3 + LLS, trailer, key, SRC6) == judge


@pytest.mark.parametrize("integ", list(SHA))
def test_ospfv3_sign_verify_with_lls(integ: IntegId) -> None:
    key = bytes(range(digest_len(integ)))
    signed = ospfv3_sign(
        integ, HELLO_V3 + LLS, sa_id=7, key=key, sequence=(1 << 64) - 1, src_ipv6=SRC6
    )
    assert len(signed) == len(HELLO_V3) + len(LLS) + 16 + digest_len(integ)
    info = ospfv3_verify(signed, SRC6, {7: (integ, key)})
    assert (info.sa_id, info.sequence, info.lls_length, info.packet_type) == (
        7,
        (1 << 64) - 1,
        12,
        1,
    )
    # The LLS block is covered by the digest.
    with pytest.raises(IntegrityCheckFailed):
        ospfv3_verify(_flip(signed, len(HELLO_V3) + 11), SRC6, {7: (integ, key)})


def test_ospfv3_rejects_md5_and_bad_arguments() -> None:
    trailer = bytes(16)
    with pytest.raises(ValueError):
        ospfv3_trailer_digest(IntegId.ROUTING_KEYED_MD5, HELLO_V3, trailer, b"k", SRC6)
    with pytest.raises(ValueError):
        ospfv3_trailer_digest(IntegId.ROUTING_HMAC_SHA256, HELLO_V3, trailer[:8], b"k", SRC6)
    with pytest.raises(ValueError):
        ospfv3_trailer_digest(IntegId.ROUTING_HMAC_SHA256, HELLO_V3, trailer, b"k", SRC6[:4])
    with pytest.raises(ValueError):
        ospfv3_sign(
            IntegId.ROUTING_HMAC_SHA256,
            HELLO_V3,
            sa_id=1 << 16,
            key=b"k",
            sequence=0,
            src_ipv6=SRC6,
        )
    with pytest.raises(ValueError):
        ospfv3_verify(FRR_V3[0][0], SRC6[:15], V3_KEYS)


def _v3_signed(packet: bytes = HELLO_V3 + LLS) -> bytes:
    return ospfv3_sign(
        IntegId.ROUTING_HMAC_SHA256, packet, sa_id=7, key=b"key", sequence=1, src_ipv6=SRC6
    )


def _patch(data: bytes, offset: int, value: bytes) -> bytes:
    out = bytearray(data)
    out[offset : offset + len(value)] = value
    return bytes(out)


V3_GOOD = _v3_signed()
V3_TRAILER = len(HELLO_V3) + len(LLS)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", Truncated),
        (V3_GOOD[:15], Truncated),
        (_patch(V3_GOOD, 0, b"\x02"), BadValue),  # version 2
        (_patch(V3_GOOD, 1, b"\x09"), BadValue),  # packet type 9
        (_patch(V3_GOOD, 2, b"\x00\x08"), BadLength),  # Packet Length < 16
        (_patch(V3_GOOD, 2, b"\x00\x12"), BadLength),  # Hello too short for its Options
        (_patch(V3_GOOD, 2, b"\xff\xf0"), Truncated),  # Packet Length > data
        (HELLO_V3_NO_L, Truncated),  # AT-bit set but no trailer
        (_patch(V3_GOOD, 22, b"\x03"), BadValue),  # AT-bit clear (Options 0x000313)
        (_patch(V3_GOOD, len(HELLO_V3) + 2, b"\x00\x00"), BadLength),  # LLS length 0
        (_patch(V3_GOOD, len(HELLO_V3) + 2, b"\x10\x00"), Truncated),  # LLS longer than data
        (_patch(V3_GOOD, V3_TRAILER, b"\x00\x02"), BadValue),  # Auth Type 2
        (_patch(V3_GOOD, V3_TRAILER + 2, b"\x00\x0f"), BadLength),  # Auth Data Len < 16
        (_patch(V3_GOOD, V3_TRAILER + 2, b"\x00\x40"), Truncated),  # Auth Data Len > data
        (V3_GOOD + b"\x00", BadLength),  # octets after the trailer
        (V3_GOOD[:-1], Truncated),  # digest cut short
    ],
)
def test_ospfv3_malformed(data: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        ospfv3_verify(data, SRC6, {7: (IntegId.ROUTING_HMAC_SHA256, b"key")})


def test_ospfv3_dd_and_lsack_trailer_positions() -> None:
    # DD (RFC 5340 A.3.3): Options at body offset 1; LS Ack: no Options, trailer right after.
    dd = bytes.fromhex(
        "0302001c" "0aff4c01" "00000000" "0000" "00" "00"
        "00" "000413" "05dc" "00" "07" "00000001"
    )  # fmt: skip
    lsack = bytes.fromhex("03050010" "0aff4c01" "00000000" "0000" "00" "00")  # fmt: skip
    keys = {7: (IntegId.ROUTING_HMAC_SHA256, b"key")}
    for packet, packet_type in ((dd, 2), (lsack, 5)):
        info = ospfv3_verify(_v3_signed(packet), SRC6, keys)
        assert (info.packet_type, info.lls_length) == (packet_type, 0)
    with pytest.raises(BadValue, match="AT-bit"):
        ospfv3_verify(_v3_signed(_patch(dd, 18, b"\x00")), SRC6, keys)


# -- AH for PIM: against scapy ----------------------------------------------------------------

AH_ALGOS = [
    ("HMAC-SHA1-96", IntegId.AUTH_HMAC_SHA1_96, 20),
    ("SHA2-256-128", IntegId.AUTH_HMAC_SHA2_256_128, 32),
    ("SHA2-384-192", IntegId.AUTH_HMAC_SHA2_384_192, 48),
    ("SHA2-512-256", IntegId.AUTH_HMAC_SHA2_512_256, 64),
]


def _pim_hello(**ip_fields: object) -> IP:
    pkt = IP(src="10.0.1.1", dst="224.0.0.13", ttl=1, tos=0xC0, **ip_fields)
    return IP(raw(pkt / PIMv2Hdr() / PIMv2Hello()))


@pytest.mark.parametrize(("algo", "integ", "key_len"), AH_ALGOS)
@pytest.mark.parametrize("with_options", [False, True], ids=["plain", "options"])
def test_ah_icv_matches_scapy(algo: str, integ: IntegId, key_len: int, with_options: bool) -> None:
    key = bytes((i * 13 + 5) & 0xFF for i in range(key_len))
    # Router Alert is immutable, Record Route mutable (RFC 4302 App. A.1).
    options = [IPOption_Router_Alert(), IPOption_RR(routers=["10.9.9.9"])] if with_options else []
    plain = _pim_hello(options=options)
    assert plain.proto == 103
    sa = SecurityAssociation(AH, spi=0x00C0FFEE, auth_algo=algo, auth_key=key)
    protected = sa.encrypt(plain, seq_num=17)
    wire = raw(protected)
    assert ah_icv(integ, key, wire) == protected[AH].icv
    hdr = ah_verify(integ, key, wire)
    assert hdr == AhHeader(next_header=103, spi=0x00C0FFEE, sequence=17, icv=protected[AH].icv)
    # Encode twin: our transport-mode insertion writes scapy's bytes, and scapy accepts ours.
    ours = ah_protect_ipv4(integ, key, raw(plain), spi=0x00C0FFEE, sequence=17)
    assert ours == wire
    assert raw(sa.decrypt(IP(ours))) == raw(plain)


@pytest.mark.parametrize(("algo", "integ", "key_len"), AH_ALGOS)
def test_ah_header_layout_matches_scapy(algo: str, integ: IntegId, key_len: int) -> None:
    sa = SecurityAssociation(AH, spi=0x1000, auth_algo=algo, auth_key=bytes(key_len))
    wire = raw(sa.encrypt(_pim_hello(), seq_num=3))
    icv_len = digest_len(integ)
    ah = wire[20 : 20 + 12 + icv_len]
    assert ah_encode_header(103, 0x1000, 3, icv_len, icv=ah[12:]) == ah
    assert ah_encode_header(103, 0x1000, 3, icv_len) == ah[:12] + bytes(icv_len)
    assert ah[1] == (12 + icv_len) // 4 - 2  # Payload Len (RFC 4302 §2.2)
    assert ah_decode_header(ah) == AhHeader(103, 0x1000, 3, ah[12:])


def test_ah_encode_header_pads_icv_to_32_bits() -> None:
    hdr = ah_encode_header(103, 1, 2, 10, icv=b"\xaa" * 10)
    assert len(hdr) == 24 and hdr[1] == 4 and hdr[-2:] == b"\x00\x00"
    assert ah_decode_header(hdr).icv == b"\xaa" * 10 + b"\x00\x00"
    with pytest.raises(ValueError):
        ah_encode_header(103, 1, 2, 16, icv=b"\x00")
    with pytest.raises(ValueError):
        ah_encode_header(256, 1, 2, 16)


def test_ah_mutable_fields_do_not_matter() -> None:
    key = bytes(32)
    integ = IntegId.AUTH_HMAC_SHA2_256_128
    wire = ah_protect_ipv4(integ, key, raw(_pim_hello()), spi=0x2000, sequence=1)
    changed = bytearray(wire)
    changed[1] = 0x00  # TOS (DSCP/ECN)
    changed[6] = 0x40  # DF flag
    changed[8] = 64  # TTL
    changed[10:12] = b"\x12\x34"  # checksum
    assert ah_verify(integ, key, bytes(changed)).spi == 0x2000
    # Link-layer padding after Total Length is not part of the packet.
    assert ah_verify(integ, key, wire + bytes(6)).sequence == 1


def test_ah_immutable_fields_and_wrong_key_fail() -> None:
    key = bytes(range(20))
    integ = IntegId.AUTH_HMAC_SHA1_96
    wire = ah_protect_ipv4(integ, key, raw(_pim_hello()), spi=0x3000, sequence=9)
    # Identification, source, destination, SPI, sequence number, ICV, payload.
    for offset in (4, 13, 19, 27, 31, 32, len(wire) - 1):
        with pytest.raises(IntegrityCheckFailed):
            ah_verify(integ, key, _flip(wire, offset))
    with pytest.raises(IntegrityCheckFailed):
        ah_verify(integ, bytes(20), wire)
    with pytest.raises(ValueError, match="key of 32 octets"):
        ah_verify(integ, bytes(32), wire)
    with pytest.raises(ValueError):
        ah_icv(IntegId.ROUTING_HMAC_SHA256, bytes(32), wire)


AH_GOOD = ah_protect_ipv4(
    IntegId.AUTH_HMAC_SHA2_256_128, bytes(32), raw(_pim_hello()), spi=0x4000, sequence=1
)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", Truncated),
        (AH_GOOD[:19], Truncated),
        (_patch(AH_GOOD, 0, b"\x65"), BadValue),  # IP version 6
        (_patch(AH_GOOD, 0, b"\x44"), BadLength),  # IHL 4
        (_patch(AH_GOOD, 2, b"\x00\x10"), BadLength),  # Total Length < header
        (_patch(AH_GOOD, 2, b"\x10\x00"), Truncated),  # Total Length > data
        (_patch(AH_GOOD, 9, b"\x67"), BadValue),  # protocol PIM, not AH
        (_patch(AH_GOOD, 2, b"\x00\x1c"), Truncated),  # AH cut by Total Length
        (_patch(AH_GOOD, 21, b"\x00"), BadLength),  # Payload Len 0: header 8 octets
        (_patch(AH_GOOD, 21, b"\x03"), BadLength),  # ICV field 8 octets < 16
        (_patch(AH_GOOD, 21, b"\xff"), Truncated),  # AH longer than the packet
        (_patch(AH_GOOD, 22, b"\x00\x01"), BadValue),  # reserved nonzero
    ],
)
def test_ah_malformed(data: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        ah_verify(IntegId.AUTH_HMAC_SHA2_256_128, bytes(32), data)


def test_ah_malformed_ipv4_options() -> None:
    plain = raw(_pim_hello(options=[IPOption_Router_Alert()]))
    wire = ah_protect_ipv4(IntegId.AUTH_HMAC_SHA1_96, bytes(20), plain, spi=1, sequence=1)
    with pytest.raises(BadLength):
        ah_verify(IntegId.AUTH_HMAC_SHA1_96, bytes(20), _patch(wire, 21, b"\x09"))  # RA length 9
    with pytest.raises(BadLength):
        ah_verify(IntegId.AUTH_HMAC_SHA1_96, bytes(20), _patch(wire, 21, b"\x01"))  # length 1
    with pytest.raises(Truncated):  # option type in the last octet with no length octet
        ah_verify(IntegId.AUTH_HMAC_SHA1_96, bytes(20), _patch(wire, 20, b"\x01\x01\x01\x07"))
    with pytest.raises(DecodeError):
        ah_protect_ipv4(IntegId.AUTH_HMAC_SHA1_96, bytes(20), plain[:10], spi=1, sequence=1)


# -- Property tests: parsers raise only the project's errors --------------------------------


def _mutations() -> st.SearchStrategy[bytes]:
    seeds = [FRR_V2[0], BIRD_V2[4], FRR_V3[0][0], FRR_V3[10][0], V3_GOOD, AH_GOOD]
    return st.tuples(
        st.sampled_from(seeds),
        st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=4),
        st.integers(0, 300),
    ).map(lambda t: _mutate(*t))


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(seed)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out[: len(out) - cut % 8]) if cut % 3 == 0 else bytes(out)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=120), _mutations()))
def test_parsers_raise_only_project_errors(data: bytes) -> None:
    v3_keys = {**V3_KEYS, 7: (IntegId.ROUTING_HMAC_SHA256, b"key")}
    checks = [
        lambda: ospfv2_verify(data, FRR_MD5_KEYS),
        lambda: ospfv2_verify(data, BIRD_KEYS, key_preparation="plain"),
        lambda: ospfv3_verify(data, SRC6, v3_keys),
        lambda: ah_verify(IntegId.AUTH_HMAC_SHA2_256_128, bytes(32), data),
        lambda: ah_decode_header(data),
    ]
    for check in checks:
        # Anything but the project's errors (IndexError, struct.error, ...) fails the test.
        with contextlib.suppress(MrkmError):
            check()


def test_ospfv3_bird_preparation_is_plain_hmac_over_k_and_protocol_id() -> None:
    """BIRD 2.0.12 keys HMAC with K || 0x0001 unhashed (measured in test_sink_bird)."""
    import hashlib
    import hmac as std_hmac

    from mrkm.crypto.routing import ospfv3_trailer_digest

    key = bytes(range(32))  # L octets: K || 0x0001 is 34 > L, RFC 7166 would hash it
    packet, header, src = b"\x03\x01" + bytes(30), bytes(16), bytes(15) + b"\x01"
    apad = src + bytes.fromhex("878fe1f3") * 4
    expected = std_hmac.new(key + b"\x00\x01", packet + header + apad, hashlib.sha256).digest()
    ours = ospfv3_trailer_digest(1026, packet, header, key, src, key_preparation="bird")
    assert ours == expected
    assert ospfv3_trailer_digest(1026, packet, header, key, src) != expected  # RFC 7166 hashes
