"""IP Authentication Header (RFC 4302) for PIM over IPv4, transport mode.

PIM-SM link-local messages are protected with AH in transport mode using
manual (here: group) keys (RFC 5796, RFC 7761 §6.3). This module encodes and
decodes the AH header (RFC 4302 §2), computes the ICV over an IPv4 packet with
its mutable fields zeroed (RFC 4302 §3.3.3) and inserts AH into a plain packet.

Integrity transforms: AUTH_HMAC_SHA1_96 (RFC 2404) and
AUTH_HMAC_SHA2_256_128 / _384_192 / _512_256 (RFC 4868). Extended sequence
numbers are not supported: multi-sender group SAs cannot use them (RFC 9838
§4.4.2.1.3). IPv6 is not handled yet.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
import struct
from dataclasses import dataclass

from mrkm.crypto.routing_core import hmac_bytes, ipsec_algorithm
from mrkm.errors import BadLength, BadValue, IntegrityCheckFailed, Truncated
from mrkm.wire.buffer import Buffer

__all__ = [
    "AH_FIXED_LEN",
    "IPPROTO_AH",
    "AhHeader",
    "ah_decode_header",
    "ah_encode_header",
    "ah_icv",
    "ah_parse_ipv4",
    "ah_protect_ipv4",
    "ah_strip_ipv4",
    "ah_verify",
]

#: IP protocol number of AH (RFC 4302 §2.1, IANA protocol numbers).
IPPROTO_AH = 51
#: Next Header, Payload Len, Reserved, SPI, Sequence Number: the octets before the ICV.
AH_FIXED_LEN = 12
_IPV4_MIN_HEADER = 20
# Fixed AH fields (§2): Next Header, Payload Len, Reserved, SPI, Sequence Number.
_AH_FIXED = struct.Struct("!BBHII")
# IPv4 (RFC 791 §3.1): version/IHL, total length and protocol, skipping the rest.
_IPV4_FIELDS = struct.Struct("!BxH5xB")

# IPv4 options whose value does not change in transit and so stays in the ICV
# (RFC 4302 App. A.1): EOL, NOP, Security, Extended Security, Commercial
# Security, Router Alert, Sender Directed Multi-Destination Delivery. Every other
# option is mutable and zeroed as a whole, type and length included (§3.3.3.1.1.2).
_IMMUTABLE_IPV4_OPTIONS = frozenset({0, 1, 130, 133, 134, 148, 149})


@dataclass(frozen=True)
class AhHeader:
    """One decoded Authentication Header (RFC 4302 §2)."""

    #: Protocol of what follows AH (§2.1): 103 for PIM.
    next_header: int
    #: Security Parameters Index (§2.4).
    spi: int
    #: Sequence Number, low 32 bits (§2.5).
    sequence: int
    #: ICV field including any padding (§2.6).
    icv: bytes

    @property
    def length(self) -> int:
        """Octets of the whole header, ICV included."""
        return AH_FIXED_LEN + len(self.icv)


def _padded_icv_len(icv_len: int) -> int:
    # RFC 4302 §2.6: for IPv4 the ICV field is padded to a multiple of 32 bits.
    return (icv_len + 3) // 4 * 4


def ah_encode_header(
    next_header: int, spi: int, sequence: int, icv_len: int, *, icv: bytes | None = None
) -> bytes:
    """Encode an AH header for IPv4 (RFC 4302 §2).

    Payload Len (§2.2) is the header length in 32-bit words minus 2. The ICV
    field is ``icv`` (``icv_len`` octets; zeros if omitted, as for computing
    the ICV) padded with zeros to a multiple of 4 octets (§2.6).
    """
    if not 0 <= next_header <= 0xFF:
        raise ValueError(f"next header {next_header} does not fit in 8 bits")
    if not 0 <= spi <= 0xFFFFFFFF or not 0 <= sequence <= 0xFFFFFFFF:
        raise ValueError("SPI and sequence number must fit in 32 bits")
    if icv is None:
        icv = bytes(icv_len)
    if len(icv) != icv_len:
        raise ValueError(f"ICV of {len(icv)} octets, expected {icv_len}")
    field = icv.ljust(_padded_icv_len(icv_len), b"\x00")
    payload_len = (AH_FIXED_LEN + len(field)) // 4 - 2
    if payload_len > 0xFF:
        raise ValueError(f"ICV of {icv_len} octets is too long for AH")
    buf = Buffer()
    buf.push_uint8(next_header)
    buf.push_uint8(payload_len)
    buf.push_uint16(0)  # Reserved (§2.3)
    buf.push_uint32(spi)
    buf.push_uint32(sequence)
    buf.push_bytes(field)
    return buf.data()


def ah_decode_header(data: bytes) -> AhHeader:
    """Decode the AH header at the start of ``data`` (RFC 4302 §2).

    Octets after the header (the protected payload) are ignored. Raises
    :class:`~mrkm.errors.DecodeError` subclasses if the header is cut short,
    its Payload Len is below the fixed part, or its Reserved field is nonzero.
    """
    if len(data) < AH_FIXED_LEN:
        raise Truncated(f"AH header: needs {AH_FIXED_LEN} octets, {len(data)} left")
    next_header, payload_len, reserved, spi, sequence = _AH_FIXED.unpack_from(data)
    length = (payload_len + 2) * 4
    if length < AH_FIXED_LEN:
        raise BadLength(f"AH Payload Len {payload_len}: header shorter than 12 octets")
    if reserved != 0:
        raise BadValue(f"AH reserved field {reserved:#x}, must be zero (§2.3)")
    if length > len(data):
        raise Truncated(f"AH ICV: needs {length - AH_FIXED_LEN} octets, {len(data) - 12} left")
    icv = bytes(data[AH_FIXED_LEN:length])
    return AhHeader(next_header=next_header, spi=spi, sequence=sequence, icv=icv)


@dataclass(frozen=True)
class _Ipv4WithAh:
    packet: bytes  # up to Total Length
    header_len: int
    ah: AhHeader


def _zero_mutable_ipv4_header(header: bytes) -> bytes:
    """The IPv4 header as the ICV sees it (RFC 4302 §3.3.3.1.1).

    Zeroed: DSCP/ECN (TOS), Flags and Fragment Offset, TTL, Header Checksum
    (§3.3.3.1.1.1) and every mutable option (§3.3.3.1.1.2, App. A.1).
    """
    out = bytearray(header)
    out[1] = 0  # TOS: DSCP + ECN
    out[6:8] = b"\x00\x00"  # Flags + Fragment Offset
    out[8] = 0  # TTL
    out[10:12] = b"\x00\x00"  # Header Checksum
    pos = _IPV4_MIN_HEADER
    while pos < len(out):
        kind = out[pos]
        if kind == 0:  # End of Option List: the rest is padding, left as sent
            break
        if kind == 1:  # No Operation
            pos += 1
            continue
        if pos + 1 >= len(out):
            raise Truncated(f"IPv4 option {kind} has no length octet")
        opt_len = out[pos + 1]
        if opt_len < 2 or pos + opt_len > len(out):
            raise BadLength(f"IPv4 option {kind} length {opt_len}")
        if kind not in _IMMUTABLE_IPV4_OPTIONS:
            out[pos : pos + opt_len] = bytes(opt_len)
        pos += opt_len
    return bytes(out)


def _pull_ipv4_with_ah(ipv4_packet: bytes) -> _Ipv4WithAh:
    """Split an IPv4 packet whose protocol is AH into header, AH and payload (RFC 791)."""
    if len(ipv4_packet) < _IPV4_MIN_HEADER:
        raise Truncated(f"IPv4 header: needs 20 octets, {len(ipv4_packet)} left")
    version_ihl, total_length, protocol = _IPV4_FIELDS.unpack_from(ipv4_packet)
    if version_ihl >> 4 != 4:
        raise BadValue(f"IP version {version_ihl >> 4}, expected 4")
    header_len = (version_ihl & 0x0F) * 4
    if header_len < _IPV4_MIN_HEADER:
        raise BadLength(f"IPv4 IHL {header_len // 4} < 5")
    if total_length < header_len:
        raise BadLength(f"IPv4 total length {total_length} < header length {header_len}")
    if total_length > len(ipv4_packet):
        raise Truncated(f"IPv4 total length {total_length}, only {len(ipv4_packet)} octets")
    if protocol != IPPROTO_AH:
        raise BadValue(f"IPv4 protocol {protocol}, expected {IPPROTO_AH} (AH)")
    packet = ipv4_packet[:total_length]  # octets past Total Length are link padding
    ah = ah_decode_header(packet[header_len:])
    return _Ipv4WithAh(packet=packet, header_len=header_len, ah=ah)


def ah_parse_ipv4(ipv4_packet_with_ah: bytes) -> AhHeader:
    """The AH header of an IPv4 packet whose protocol is AH, unverified (for SPI lookup).

    Raises :class:`~mrkm.errors.DecodeError` subclasses for a malformed packet.
    """
    return _pull_ipv4_with_ah(ipv4_packet_with_ah).ah


def _compute_icv(integ_id: int, key: bytes, parsed: _Ipv4WithAh) -> bytes:
    alg = ipsec_algorithm(integ_id)
    if len(key) != alg.ipsec_key_len:
        raise ValueError(f"key of {len(key)} octets, transform needs {alg.ipsec_key_len}")
    if len(parsed.ah.icv) < alg.output_len:
        raise BadLength(f"AH ICV field of {len(parsed.ah.icv)} octets < ICV {alg.output_len}")
    packet, hlen = parsed.packet, parsed.header_len
    ah_end = hlen + parsed.ah.length
    # RFC 4302 §3.3.3.1: the ICV field counts as zero; the padding after it (§3.3.3.2.1)
    # is included as sent.
    ah_zeroed = (
        packet[hlen : hlen + AH_FIXED_LEN]
        + bytes(alg.output_len)
        + packet[hlen + AH_FIXED_LEN + alg.output_len : ah_end]
    )
    data = _zero_mutable_ipv4_header(packet[:hlen]) + ah_zeroed + packet[ah_end:]
    # RFC 2404 §2 / RFC 4868 §2.3: HMAC truncated to its leftmost octets.
    return hmac_bytes(alg, key, data)[: alg.output_len]


def ah_icv(integ_id: int, key: bytes, ipv4_packet_with_ah: bytes) -> bytes:
    """Compute the AH ICV of an IPv4 transport-mode packet (RFC 4302 §3.3.3).

    The HMAC covers the IPv4 header with its mutable fields zeroed, the AH
    header with its ICV zeroed, and the payload up to the IPv4 Total Length.
    ``key`` must have the transform's key length (20 for HMAC-SHA1-96, 32/48/64
    for HMAC-SHA2-256-128/384-192/512-256). Returns :func:`digest_len` octets.
    """
    return _compute_icv(integ_id, key, _pull_ipv4_with_ah(ipv4_packet_with_ah))


def ah_verify(integ_id: int, key: bytes, ipv4_packet_with_ah: bytes) -> AhHeader:
    """Check the ICV of a received IPv4 packet with AH and return the decoded AH header.

    Raises :class:`~mrkm.errors.DecodeError` subclasses for a malformed packet and
    :class:`~mrkm.errors.IntegrityCheckFailed` when the ICV does not verify. SPI
    lookup and replay checks are the caller's.
    """
    parsed = _pull_ipv4_with_ah(ipv4_packet_with_ah)
    expected = _compute_icv(integ_id, key, parsed)
    received = parsed.ah.icv[: len(expected)]
    if not _stdlib_hmac.compare_digest(expected, received):
        raise IntegrityCheckFailed(f"AH ICV mismatch (SPI {parsed.ah.spi:#010x})")
    return parsed.ah


def _ipv4_checksum(header: bytes) -> int:
    # RFC 791 §3.1 / RFC 1071: one's complement of the one's complement sum of 16-bit words.
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ah_protect_ipv4(
    integ_id: int, key: bytes, ipv4_packet: bytes, *, spi: int, sequence: int
) -> bytes:
    """Insert AH into a plain IPv4 packet, transport mode (RFC 4302 §3.1.1, §3.3).

    AH goes between the IPv4 header (options kept) and the payload; the IPv4
    Protocol moves to AH's Next Header, Protocol becomes 51, Total Length
    grows by the AH length and the header checksum is recomputed. A malformed
    ``ipv4_packet`` raises :class:`~mrkm.errors.DecodeError` subclasses.
    """
    alg = ipsec_algorithm(integ_id)
    if len(ipv4_packet) < 4:
        raise Truncated(f"IPv4 header: needs 20 octets, {len(ipv4_packet)} left")
    version_ihl, total_length = struct.unpack_from("!BxH", ipv4_packet)
    header_len = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4:
        raise BadValue(f"IP version {version_ihl >> 4}, expected 4")
    if header_len < _IPV4_MIN_HEADER or not header_len <= total_length <= len(ipv4_packet):
        raise BadLength(f"IPv4 header length {header_len}, total length {total_length}")
    header = bytearray(ipv4_packet[:header_len])
    payload = ipv4_packet[header_len:total_length]
    ah = ah_encode_header(header[9], spi, sequence, alg.output_len)
    new_total = total_length + len(ah)
    if new_total > 0xFFFF:
        raise ValueError("IPv4 packet too long to add AH")
    header[2:4] = new_total.to_bytes(2, "big")
    header[9] = IPPROTO_AH
    header[10:12] = b"\x00\x00"
    header[10:12] = _ipv4_checksum(bytes(header)).to_bytes(2, "big")
    unsigned = bytes(header) + ah + payload
    icv = ah_icv(integ_id, key, unsigned)
    start = header_len + AH_FIXED_LEN
    return unsigned[:start] + icv + unsigned[start + len(icv) :]


def ah_strip_ipv4(ipv4_packet_with_ah: bytes) -> bytes:
    """Remove AH from an IPv4 transport-mode packet: the inverse of :func:`ah_protect_ipv4`.

    The IPv4 Protocol becomes AH's Next Header, Total Length shrinks by the AH
    length and the header checksum is recomputed (RFC 4302 §3.4.4: after a
    successful check the packet goes on as if AH had never been there). Call
    it only after :func:`ah_verify`; it checks nothing but the framing.
    """
    parsed = _pull_ipv4_with_ah(ipv4_packet_with_ah)
    packet, hlen = parsed.packet, parsed.header_len
    header = bytearray(packet[:hlen])
    header[2:4] = (len(packet) - parsed.ah.length).to_bytes(2, "big")
    header[9] = parsed.ah.next_header
    header[10:12] = b"\x00\x00"
    header[10:12] = _ipv4_checksum(bytes(header)).to_bytes(2, "big")
    return bytes(header) + packet[hlen + parsed.ah.length :]
