"""OSPF packet digests: OSPFv2 cryptographic authentication and the OSPFv3 trailer.

* OSPFv2 (RFC 2328 App. D, RFC 5709): AuType 2 turns the 8-octet
  Authentication field of the header into ``0x0000 | Key ID | Auth Data Len |
  Cryptographic Sequence Number``; the digest is appended after the OSPF
  packet (outside its Packet Length) and the header checksum is left at zero.
* OSPFv3 (RFC 7166): an Authentication Trailer follows the packet and any LLS
  block (RFC 5613); the AT-bit in the Options of Hello and DD packets says it
  is there.

Parsers take the bytes of an IP payload and raise only :mod:`mrkm.errors`:
:class:`~mrkm.errors.DecodeError` subclasses for malformed bytes,
:class:`~mrkm.errors.IntegrityCheckFailed` for a digest that does not verify
or a key that is not configured. Bad local arguments (keys, IDs) raise
:class:`ValueError`.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from mrkm.crypto.routing_core import (
    KeyPreparation,
    apad,
    hash_bytes,
    hmac_bytes,
    prepare_hmac_key,
    routing_algorithm,
)
from mrkm.errors import BadLength, BadValue, IntegrityCheckFailed
from mrkm.wire.buffer import Buffer

__all__ = [
    "OSPFV3_AUTH_TYPE_HMAC",
    "OSPFV3_CRYPTO_PROTOCOL_ID",
    "OSPF_AUTYPE_CRYPTOGRAPHIC",
    "OspfAuthInfo",
    "Ospfv3AuthInfo",
    "Ospfv3KeyPreparation",
    "ospfv2_digest",
    "ospfv2_sign",
    "ospfv2_verify",
    "ospfv3_sign",
    "ospfv3_trailer_digest",
    "ospfv3_verify",
]

# OSPF packet types (RFC 2328 A.3.1, RFC 5340 A.3.1).
_HELLO, _DD, _LSACK = 1, 2, 5

# -- OSPFv2 (RFC 2328 App. A.3.1, App. D.3) ------------------------------------------------

OSPFV2_HEADER_LEN = 24
#: AuType 2, "Cryptographic authentication" (RFC 2328 App. D.3, IANA OSPF AuTypes).
OSPF_AUTYPE_CRYPTOGRAPHIC = 2
_OSPFV2_AUTH_OFFSET = 16  # the 8-octet Authentication field
_OSPFV2_CHECKSUM_OFFSET = 12


@dataclass(frozen=True)
class OspfAuthInfo:
    """What :func:`ospfv2_verify` read from a packet whose digest verified."""

    #: OSPF packet type, 1 Hello .. 5 LS Ack (RFC 2328 A.3.1).
    packet_type: int
    router_id: IPv4Address
    area_id: IPv4Address
    #: Key ID of the OSPFv2 security association used (RFC 2328 D.3, RFC 5709 §3.1).
    key_id: int
    #: Cryptographic sequence number (32 bits, non-decreasing per sender; RFC 2328 D.3).
    sequence: int
    #: Octets covered by the digest: the OSPF Packet Length.
    packet_length: int


@dataclass(frozen=True)
class _Ospfv2Header:
    packet_type: int
    packet_length: int
    router_id: int
    area_id: int
    key_id: int
    auth_data_len: int
    sequence: int


def _pull_ospfv2_header(data: bytes) -> _Ospfv2Header:
    """Decode the 24-octet OSPFv2 header (RFC 2328 A.3.1) with an AuType 2 auth field (D.3)."""
    buf = Buffer(data)
    version = buf.pull_uint8("OSPF version")
    packet_type = buf.pull_uint8("OSPF type")
    packet_length = buf.pull_uint16("OSPF packet length")
    router_id = buf.pull_uint32("OSPF router ID")
    area_id = buf.pull_uint32("OSPF area ID")
    buf.pull_uint16("OSPF checksum")
    autype = buf.pull_uint16("OSPF AuType")
    buf.pull_uint16("OSPF auth field, zero octets")
    key_id = buf.pull_uint8("OSPF key ID")
    auth_data_len = buf.pull_uint8("OSPF auth data length")
    sequence = buf.pull_uint32("OSPF cryptographic sequence number")
    if version != 2:
        raise BadValue(f"OSPF version {version}, expected 2")
    if not _HELLO <= packet_type <= _LSACK:
        raise BadValue(f"OSPF packet type {packet_type}")
    if packet_length < OSPFV2_HEADER_LEN:
        raise BadLength(f"OSPF packet length {packet_length} < header")
    if autype != OSPF_AUTYPE_CRYPTOGRAPHIC:
        raise BadValue(f"OSPF AuType {autype}, expected 2 (cryptographic)")
    return _Ospfv2Header(
        packet_type,
        packet_length,
        router_id,
        area_id,
        key_id,
        auth_data_len,
        sequence,
    )


def ospfv2_digest(
    integ_id: int,
    ospf_packet: bytes,
    key: bytes,
    *,
    key_preparation: KeyPreparation = "rfc5709",
) -> bytes:
    """Compute the digest appended to an OSPFv2 packet (RFC 2328 App. D.4.3, RFC 5709 §3.3).

    ``ospf_packet`` is the packet up to its Packet Length with the
    Authentication field already filled in (AuType 2, Key ID, Auth Data Len,
    sequence) and checksum zero.

    * Keyed-MD5 (RFC 2328 D.4.3): MD5(packet || key zero-padded to 16). A key
      longer than 16 octets raises ValueError: FRR silently cuts it to 16.
    * HMAC-SHA-x (RFC 5709 §3.3): HMAC(Ko, packet || Apad) with Apad =
      0x878FE1F3 repeated to L octets. ``key_preparation`` chooses how the key
      becomes Ko: ``"rfc5709"`` hashes a key longer than L, ``"plain"`` hands
      it to HMAC as is (BIRD 2.0.12).
    """
    alg = routing_algorithm(integ_id)
    if alg.keyed_md5:
        if len(key) > alg.output_len:
            raise ValueError(f"Keyed-MD5 key of {len(key)} octets, at most 16 allowed")
        return hash_bytes(alg, ospf_packet + key.ljust(alg.output_len, b"\x00"))
    ko = prepare_hmac_key(alg, key, key_preparation)
    return hmac_bytes(alg, ko, ospf_packet + apad(alg.output_len))


def ospfv2_sign(
    integ_id: int,
    ospf_packet: bytes,
    *,
    key_id: int,
    key: bytes,
    sequence: int,
    key_preparation: KeyPreparation = "rfc5709",
) -> bytes:
    """Return ``ospf_packet`` with cryptographic authentication filled in and its digest appended.

    The header's AuType becomes 2, the Authentication field ``0 | key_id | L |
    sequence`` (RFC 2328 D.3) and the checksum zero (D.4.3). ``ospf_packet``
    must hold exactly its Packet Length octets.
    """
    alg = routing_algorithm(integ_id)
    if not 0 <= key_id <= 0xFF:
        raise ValueError(f"key ID {key_id} does not fit in 8 bits")
    if not 0 <= sequence <= 0xFFFFFFFF:
        raise ValueError(f"sequence number {sequence} does not fit in 32 bits")
    if len(ospf_packet) < OSPFV2_HEADER_LEN:
        raise ValueError("OSPF packet shorter than its 24-octet header")
    packet_length = int.from_bytes(ospf_packet[2:4], "big")
    if packet_length != len(ospf_packet):
        raise ValueError(f"OSPF Packet Length {packet_length} != {len(ospf_packet)} octets given")
    out = bytearray(ospf_packet)
    out[_OSPFV2_CHECKSUM_OFFSET : _OSPFV2_CHECKSUM_OFFSET + 2] = b"\x00\x00"
    out[14:16] = OSPF_AUTYPE_CRYPTOGRAPHIC.to_bytes(2, "big")
    out[_OSPFV2_AUTH_OFFSET : _OSPFV2_AUTH_OFFSET + 8] = (
        b"\x00\x00" + bytes([key_id, alg.output_len]) + sequence.to_bytes(4, "big")
    )
    packet = bytes(out)
    return packet + ospfv2_digest(integ_id, packet, key, key_preparation=key_preparation)


def ospfv2_verify(
    ip_payload: bytes,
    keys: Mapping[int, tuple[int, bytes]],
    *,
    key_preparation: KeyPreparation = "rfc5709",
) -> OspfAuthInfo:
    """Check the cryptographic authentication of one received OSPFv2 packet.

    ``ip_payload`` is the IPv4 payload: the OSPF packet followed by its
    digest. ``keys`` maps Key ID to ``(integ_id, key)``. The digest must be
    Auth Data Len octets right after the Packet Length (RFC 2328 D.4.3);
    octets after it (an RFC 5613 LLS block) are not covered and are ignored.
    The header checksum is not checked: with AuType 2 it is not computed.

    Raises :class:`~mrkm.errors.DecodeError` subclasses for malformed input
    (wrong version, AuType other than 2, bad lengths) and
    :class:`~mrkm.errors.IntegrityCheckFailed` for an unknown Key ID, a
    digest length that does not fit the key's algorithm, or a wrong digest.
    The sequence number is returned, not judged: replay checks need state.
    """
    hdr = _pull_ospfv2_header(ip_payload)
    buf = Buffer(ip_payload)
    packet = buf.pull_bytes(hdr.packet_length, "OSPF packet (Packet Length)")
    received = buf.pull_bytes(hdr.auth_data_len, "OSPF digest (Auth Data Len)")
    entry = keys.get(hdr.key_id)
    if entry is None:
        raise IntegrityCheckFailed(f"no OSPFv2 key with Key ID {hdr.key_id}")
    integ_id, key = entry
    alg = routing_algorithm(integ_id)
    if hdr.auth_data_len != alg.output_len:
        raise IntegrityCheckFailed(
            f"Auth Data Len {hdr.auth_data_len}, key {hdr.key_id} makes {alg.output_len}"
        )
    expected = ospfv2_digest(integ_id, packet, key, key_preparation=key_preparation)
    if not _stdlib_hmac.compare_digest(expected, received):
        raise IntegrityCheckFailed(f"OSPFv2 digest mismatch (Key ID {hdr.key_id})")
    return OspfAuthInfo(
        packet_type=hdr.packet_type,
        router_id=IPv4Address(hdr.router_id),
        area_id=IPv4Address(hdr.area_id),
        key_id=hdr.key_id,
        sequence=hdr.sequence,
        packet_length=hdr.packet_length,
    )


# -- OSPFv3 authentication trailer (RFC 7166, RFC 5340 A.3, RFC 5613) -----------------------

OSPFV3_HEADER_LEN = 16
#: Authentication Trailer header: Auth Type, Auth Data Len, Reserved, SA ID, 64-bit sequence.
OSPFV3_TRAILER_HEADER_LEN = 16
#: IANA "OSPFv3 Authentication Trailer Types": 1 = HMAC Cryptographic Authentication.
OSPFV3_AUTH_TYPE_HMAC = 1
#: IANA "Authentication Cryptographic Protocol ID" of OSPFv3, appended to the key (RFC 7166 §4).
OSPFV3_CRYPTO_PROTOCOL_ID = 1
# Options bits (RFC 5340 A.2): AT (RFC 7166 §2.1) and L (RFC 5613 §2.1).
_OPTION_AT = 0x000400
_OPTION_L = 0x000200
# Offset of the 24-bit Options field in the Hello (RFC 5340 A.3.2) and DD (A.3.3) bodies.
_OPTIONS_OFFSET = {_HELLO: OSPFV3_HEADER_LEN + 5, _DD: OSPFV3_HEADER_LEN + 1}

#: How the key is extended with the Cryptographic Protocol ID:
#: ``"rfc7166"``: Ks = K || 0x0001 (network byte order, as RFC 7166 and FRR >= 9.1 do);
#: ``"frr8"``: Ks = K || 0x01 0x00, what FRR 8.x writes on a little-endian host (it
#: copied the 16-bit ID in host byte order; fixed in FRR 9.1, PR #14146);
#: ``"bird"``: Ks = K || 0x0001 given to HMAC as is, never hashed when longer
#: than L, what BIRD 2.0.12 does (measured against its packets; like its
#: OSPFv2, routers.md Addendum).
Ospfv3KeyPreparation = Literal["rfc7166", "frr8", "bird"]

_CRYPTO_PROTOCOL_ID_OCTETS: dict[str, bytes] = {
    "rfc7166": OSPFV3_CRYPTO_PROTOCOL_ID.to_bytes(2, "big"),
    "frr8": OSPFV3_CRYPTO_PROTOCOL_ID.to_bytes(2, "little"),
    "bird": OSPFV3_CRYPTO_PROTOCOL_ID.to_bytes(2, "big"),
}


@dataclass(frozen=True)
class Ospfv3AuthInfo:
    """What :func:`ospfv3_verify` read from a packet whose trailer verified."""

    #: OSPFv3 packet type, 1 Hello .. 5 LS Ack (RFC 5340 A.3.1).
    packet_type: int
    router_id: IPv4Address
    area_id: IPv4Address
    instance_id: int
    #: Security Association ID that selected the key (RFC 7166 §3).
    sa_id: int
    #: 64-bit cryptographic sequence number, high half first (RFC 7166 §4).
    sequence: int
    #: Octets of the RFC 5613 LLS block between the packet and the trailer (0 if none).
    lls_length: int


def ospfv3_trailer_digest(
    integ_id: int,
    packet_and_lls: bytes,
    trailer_header: bytes,
    key: bytes,
    src_ipv6: bytes,
    *,
    key_preparation: Ospfv3KeyPreparation = "rfc7166",
) -> bytes:
    """Compute the Authentication Data of an OSPFv3 Authentication Trailer (RFC 7166 §4).

    The HMAC covers the OSPFv3 packet, the LLS block if any, and the 16-octet
    trailer header, followed by Apad in place of the Authentication Data:
    Apad = the IPv6 source address, then 0x878FE1F3 repeated to L octets. The
    key is Ks = K || Cryptographic Protocol ID (1, OSPFv3); Ks longer than L
    is hashed, a shorter one zero-padded (RFC 7166 §4, "Cryptographic
    Aspects", as RFC 5709 §3.3). ``key_preparation`` selects the byte order
    of the protocol ID; see :data:`Ospfv3KeyPreparation`.
    """
    alg = routing_algorithm(integ_id)
    if alg.keyed_md5:
        raise ValueError("RFC 7166 defines HMAC-SHA digests only, not Keyed-MD5")
    if len(trailer_header) != OSPFV3_TRAILER_HEADER_LEN:
        raise ValueError(f"trailer header of {len(trailer_header)} octets, expected 16")
    if len(src_ipv6) != 16:
        raise ValueError(f"IPv6 source address of {len(src_ipv6)} octets, expected 16")
    try:
        cpid = _CRYPTO_PROTOCOL_ID_OCTETS[key_preparation]
    except KeyError:
        raise ValueError(f"unknown OSPFv3 key preparation {key_preparation!r}") from None
    ko = prepare_hmac_key(alg, key + cpid, "plain" if key_preparation == "bird" else "rfc5709")
    apad_v3 = src_ipv6 + apad(alg.output_len - 16)
    return hmac_bytes(alg, ko, packet_and_lls + trailer_header + apad_v3)


def _trailer_header(integ_id: int, sa_id: int, sequence: int) -> bytes:
    alg = routing_algorithm(integ_id)
    return (
        OSPFV3_AUTH_TYPE_HMAC.to_bytes(2, "big")
        + (OSPFV3_TRAILER_HEADER_LEN + alg.output_len).to_bytes(2, "big")
        + b"\x00\x00"
        + sa_id.to_bytes(2, "big")
        + sequence.to_bytes(8, "big")
    )


def ospfv3_sign(
    integ_id: int,
    packet_and_lls: bytes,
    *,
    sa_id: int,
    key: bytes,
    sequence: int,
    src_ipv6: bytes,
    key_preparation: Ospfv3KeyPreparation = "rfc7166",
) -> bytes:
    """Return ``packet_and_lls`` followed by an Authentication Trailer (RFC 7166 §4).

    The trailer is ``Auth Type 1 | Auth Data Len 16+L | 0 | SA ID | sequence
    (64 bits) | digest``. The caller sets the AT-bit in Hello and DD Options
    (RFC 7166 §2.1); this function does not change the packet.
    """
    if not 0 <= sa_id <= 0xFFFF:
        raise ValueError(f"SA ID {sa_id} does not fit in 16 bits")
    if not 0 <= sequence < 1 << 64:
        raise ValueError(f"sequence number {sequence} does not fit in 64 bits")
    header = _trailer_header(integ_id, sa_id, sequence)
    digest = ospfv3_trailer_digest(
        integ_id, packet_and_lls, header, key, src_ipv6, key_preparation=key_preparation
    )
    return packet_and_lls + header + digest


def ospfv3_verify(
    ipv6_payload: bytes,
    src_ipv6: bytes,
    keys: Mapping[int, tuple[int, bytes]],
    *,
    key_preparation: Ospfv3KeyPreparation = "rfc7166",
) -> Ospfv3AuthInfo:
    """Check the Authentication Trailer of one received OSPFv3 packet (RFC 7166 §4).

    ``ipv6_payload`` is the OSPFv3 packet, its LLS block when the L-bit is set
    (RFC 5613; Hello and DD only) and the trailer, which must end the payload.
    ``src_ipv6`` is the 16-octet IPv6 source address; ``keys`` maps SA ID to
    ``(integ_id, key)``. Hello and DD packets must have the AT-bit set.

    Raises :class:`~mrkm.errors.DecodeError` subclasses for malformed input
    and :class:`~mrkm.errors.IntegrityCheckFailed` for an unknown SA ID, an
    Auth Data Len that does not fit the key's algorithm, or a wrong digest.
    The sequence number is returned, not judged.
    """
    if len(src_ipv6) != 16:
        raise ValueError(f"IPv6 source address of {len(src_ipv6)} octets, expected 16")
    buf = Buffer(ipv6_payload)
    # OSPFv3 header (RFC 5340 A.3.1).
    version = buf.pull_uint8("OSPFv3 version")
    packet_type = buf.pull_uint8("OSPFv3 type")
    packet_length = buf.pull_uint16("OSPFv3 packet length")
    router_id = buf.pull_uint32("OSPFv3 router ID")
    area_id = buf.pull_uint32("OSPFv3 area ID")
    buf.pull_uint16("OSPFv3 checksum")
    instance_id = buf.pull_uint8("OSPFv3 instance ID")
    buf.pull_uint8("OSPFv3 reserved")
    if version != 3:
        raise BadValue(f"OSPF version {version}, expected 3")
    if not _HELLO <= packet_type <= _LSACK:
        raise BadValue(f"OSPFv3 packet type {packet_type}")
    if packet_length < OSPFV3_HEADER_LEN:
        raise BadLength(f"OSPFv3 packet length {packet_length} < header")
    body = buf.pull_bytes(packet_length - OSPFV3_HEADER_LEN, "OSPFv3 packet (Packet Length)")

    lls_length = 0
    options_at = _OPTIONS_OFFSET.get(packet_type)
    if options_at is not None:
        # Hello / DD: the Options say whether a trailer (AT) and an LLS block (L) follow.
        at = options_at - OSPFV3_HEADER_LEN
        if len(body) < at + 3:
            raise BadLength(f"OSPFv3 type {packet_type} too short for its Options field")
        options = int.from_bytes(body[at : at + 3], "big")
        if not options & _OPTION_AT:
            raise BadValue("AT-bit clear: the packet carries no authentication trailer")
        if options & _OPTION_L:
            # LLS block (RFC 5613 §2.2): Checksum (2) | LLS Data Length in 32-bit words (2).
            lls = Buffer(buf.pull_bytes(4, "LLS block header"))
            lls.pull_uint16("LLS checksum")
            lls_length = 4 * lls.pull_uint16("LLS data length")
            if lls_length < 4:
                raise BadLength(f"LLS data length {lls_length} octets < its header")
            buf.pull_bytes(lls_length - 4, "LLS block")

    # Authentication Trailer (RFC 7166 §4).
    trailer_start = buf.position
    auth_type = buf.pull_uint16("trailer Auth Type")
    auth_data_len = buf.pull_uint16("trailer Auth Data Len")
    buf.pull_uint16("trailer reserved")
    sa_id = buf.pull_uint16("trailer SA ID")
    sequence = (buf.pull_uint32("sequence high") << 32) | buf.pull_uint32("sequence low")
    if auth_type != OSPFV3_AUTH_TYPE_HMAC:
        raise BadValue(f"trailer Auth Type {auth_type}, expected 1 (HMAC)")
    if auth_data_len < OSPFV3_TRAILER_HEADER_LEN:
        raise BadLength(f"trailer Auth Data Len {auth_data_len} < 16")
    received = buf.pull_bytes(auth_data_len - OSPFV3_TRAILER_HEADER_LEN, "trailer digest")
    if not buf.eof():
        raise BadLength(f"{buf.remaining()} octets after the authentication trailer")

    entry = keys.get(sa_id)
    if entry is None:
        raise IntegrityCheckFailed(f"no OSPFv3 key with SA ID {sa_id}")
    integ_id, key = entry
    alg = routing_algorithm(integ_id)
    if len(received) != alg.output_len:
        raise IntegrityCheckFailed(
            f"trailer digest of {len(received)} octets, SA {sa_id} makes {alg.output_len}"
        )
    covered = ipv6_payload[:trailer_start]
    trailer_header = ipv6_payload[trailer_start : trailer_start + OSPFV3_TRAILER_HEADER_LEN]
    expected = ospfv3_trailer_digest(
        integ_id, covered, trailer_header, key, src_ipv6, key_preparation=key_preparation
    )
    if not _stdlib_hmac.compare_digest(expected, received):
        raise IntegrityCheckFailed(f"OSPFv3 trailer digest mismatch (SA ID {sa_id})")
    return Ospfv3AuthInfo(
        packet_type=packet_type,
        router_id=IPv4Address(router_id),
        area_id=IPv4Address(area_id),
        instance_id=instance_id,
        sa_id=sa_id,
        sequence=sequence,
        lls_length=lls_length,
    )
