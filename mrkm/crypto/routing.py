"""Digests of the routing protocols whose keys MRKM distributes: pure functions.

The keys a GCKS hands out end up in one of three places:

* OSPFv2 cryptographic authentication: Keyed-MD5 (RFC 2328 App. D) and
  HMAC-SHA with Apad (RFC 5709): :func:`ospfv2_digest`, :func:`ospfv2_sign`,
  :func:`ospfv2_verify`;
* the OSPFv3 Authentication Trailer (RFC 7166): :func:`ospfv3_trailer_digest`,
  :func:`ospfv3_sign`, :func:`ospfv3_verify`;
* AH in transport mode for PIM (RFC 4302, RFC 5796): :func:`ah_icv`,
  :func:`ah_verify`, :func:`ah_protect_ipv4`, :func:`ah_encode_header`,
  :func:`ah_decode_header`.

Router sinks, sniffers and tests use them. The implementation lives in
:mod:`mrkm.crypto.routing_core` (algorithms, key preparation),
:mod:`mrkm.crypto.routing_ospf` and :mod:`mrkm.crypto.routing_ah`.

Measured interoperability notes (tests/vectors/routing/README.md):

* BIRD 2.0.12 keys OSPFv2 HMAC-SHA with plain RFC 2104 HMAC, not the RFC 5709
  key preparation; the two differ for keys longer than L. Hand out keys of
  exactly L octets, or verify BIRD with ``key_preparation="plain"``.
* FRR 8.x appends OSPFv3's Cryptographic Protocol ID in host byte order
  (0x01 0x00 on x86), so its trailers verify only with
  ``key_preparation="frr8"``; FRR 9.1 and later follow RFC 7166.
* FRR 8.4 cuts Keyed-MD5 keys to 16 octets; :func:`ospfv2_digest` refuses longer ones.
"""

from __future__ import annotations

from mrkm.crypto.routing_ah import (
    AH_FIXED_LEN,
    IPPROTO_AH,
    AhHeader,
    ah_decode_header,
    ah_encode_header,
    ah_icv,
    ah_protect_ipv4,
    ah_verify,
)
from mrkm.crypto.routing_core import APAD_WORD, KeyPreparation, digest_len
from mrkm.crypto.routing_ospf import (
    OSPF_AUTYPE_CRYPTOGRAPHIC,
    OSPFV3_AUTH_TYPE_HMAC,
    OSPFV3_CRYPTO_PROTOCOL_ID,
    OspfAuthInfo,
    Ospfv3AuthInfo,
    Ospfv3KeyPreparation,
    ospfv2_digest,
    ospfv2_sign,
    ospfv2_verify,
    ospfv3_sign,
    ospfv3_trailer_digest,
    ospfv3_verify,
)

__all__ = [
    "AH_FIXED_LEN",
    "APAD_WORD",
    "IPPROTO_AH",
    "OSPFV3_AUTH_TYPE_HMAC",
    "OSPFV3_CRYPTO_PROTOCOL_ID",
    "OSPF_AUTYPE_CRYPTOGRAPHIC",
    "AhHeader",
    "KeyPreparation",
    "OspfAuthInfo",
    "Ospfv3AuthInfo",
    "Ospfv3KeyPreparation",
    "ah_decode_header",
    "ah_encode_header",
    "ah_icv",
    "ah_protect_ipv4",
    "ah_verify",
    "digest_len",
    "ospfv2_digest",
    "ospfv2_sign",
    "ospfv2_verify",
    "ospfv3_sign",
    "ospfv3_trailer_digest",
    "ospfv3_verify",
]
