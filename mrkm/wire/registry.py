"""IKEv2 and G-IKEv2 number registries as ``IntEnum`` s.

Values come from the IANA "Internet Key Exchange Version 2 (IKEv2) Parameters"
registry (RFC 7296 §3, RFC 9838 §6) and from MRKM's own private-use choices,
which are collected here and nowhere else (ARCHITECTURE.md, "Routing TEKs use
private-use Security Protocol IDs").
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AuthMethod",
    "DhGroup",
    "EncrId",
    "ExchangeType",
    "GcauthId",
    "GroupKeyBagAttr",
    "GsaAttr",
    "GwpAttr",
    "IdType",
    "IntegId",
    "KwaId",
    "MemberKeyBagAttr",
    "NotifyType",
    "PayloadType",
    "PrfId",
    "ProtocolId",
    "SnId",
    "TransformAttr",
    "TransformType",
    "TsType",
]


class ExchangeType(IntEnum):
    """Exchange types (RFC 7296 §3.1; RFC 9838 §6 adds 39-42)."""

    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37
    GSA_AUTH = 39
    GSA_REGISTRATION = 40
    GSA_REKEY = 41
    GSA_INBAND_REKEY = 42
    IKE_INTERMEDIATE = 43


class PayloadType(IntEnum):
    """Payload types (RFC 7296 §3.2; RFC 9838 §4 adds IDg, GSA, KD)."""

    NONE = 0
    SA = 33
    KE = 34
    IDI = 35
    IDR = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    NONCE = 40
    NOTIFY = 41
    DELETE = 42
    VENDOR_ID = 43
    TSI = 44
    TSR = 45
    SK = 46
    CP = 47
    EAP = 48
    IDG = 50
    GSA = 51
    KD = 52
    SKF = 53


class ProtocolId(IntEnum):
    """Security Protocol IDs (RFC 7296 §3.3.1, RFC 9838 §4.4.2).

    ``OSPFV2`` and ``OSPFV3_TRAILER`` are MRKM's private-use values (201-255):
    IANA defines no protocol ID for routing-protocol keys.
    """

    NONE = 0
    IKE = 1
    AH = 2
    ESP = 3
    GIKE_UPDATE = 6
    OSPFV2 = 201  # SPI size 1: the SPI is the OSPFv2 Key ID (RFC 2328 App. D)
    OSPFV3_TRAILER = 202  # SPI size 2: the SPI is the RFC 7166 SA ID


class TransformType(IntEnum):
    """Transform types (RFC 7296 §3.3.2, RFC 9827, RFC 9838 §4.4.2.1)."""

    ENCR = 1
    PRF = 2
    INTEG = 3
    KE = 4
    SN = 5
    KWA = 13
    GCAUTH = 14


class EncrId(IntEnum):
    """Encryption algorithm transform IDs (RFC 7296 §3.3.2, RFC 5282)."""

    ENCR_NULL = 11
    ENCR_AES_CBC = 12
    ENCR_AES_CTR = 13
    ENCR_AES_GCM_8 = 18
    ENCR_AES_GCM_12 = 19
    ENCR_AES_GCM_16 = 20
    ENCR_NULL_AUTH_AES_GMAC = 21
    ENCR_CHACHA20_POLY1305 = 28


class PrfId(IntEnum):
    """Pseudo-random function transform IDs (RFC 7296 §3.3.2, RFC 4868)."""

    PRF_HMAC_SHA1 = 2
    PRF_HMAC_SHA2_256 = 5
    PRF_HMAC_SHA2_384 = 6
    PRF_HMAC_SHA2_512 = 7


class IntegId(IntEnum):
    """Integrity transform IDs (RFC 7296 §3.3.2, RFC 4868).

    Values from 1024 up are MRKM's private-use IDs for the *untruncated*
    routing digests of RFC 2328 App. D (Keyed-MD5) and RFC 5709 / RFC 7166
    (HMAC-SHA); IANA's HMAC transforms are all truncated.
    """

    NONE = 0
    AUTH_HMAC_SHA1_96 = 2
    AUTH_HMAC_SHA2_256_128 = 12
    AUTH_HMAC_SHA2_384_192 = 13
    AUTH_HMAC_SHA2_512_256 = 14
    ROUTING_KEYED_MD5 = 1024
    ROUTING_HMAC_SHA1 = 1025
    ROUTING_HMAC_SHA256 = 1026
    ROUTING_HMAC_SHA384 = 1027
    ROUTING_HMAC_SHA512 = 1028


class DhGroup(IntEnum):
    """Key exchange method transform IDs (RFC 7296 §3.3.2, RFC 5903, RFC 8031)."""

    MODP_2048 = 14
    ECP_256 = 19
    ECP_384 = 20
    CURVE25519 = 31


class SnId(IntEnum):
    """Sequence number transform IDs (RFC 9827, RFC 9838 §4.4.2.1.3)."""

    SEQ_32 = 0
    ESN_64_PARTIAL = 1
    UNSPECIFIED_32 = 2


class KwaId(IntEnum):
    """Key wrap algorithm transform IDs (RFC 9838 §4.4.2.1.2)."""

    KW_5649_128 = 1
    KW_5649_192 = 2
    KW_5649_256 = 3
    KW_ARX = 4


class GcauthId(IntEnum):
    """Group controller authentication methods (RFC 9838 §4.4.2.1.1)."""

    IMPLICIT = 1
    DIGITAL_SIGNATURE = 2


class TransformAttr(IntEnum):
    """Transform attribute types (RFC 7296 §3.3.5, RFC 9838 §4.4.2.1.1)."""

    KEY_LENGTH = 14  # TV, bits
    SIGNATURE_ALGORITHM_IDENTIFIER = 18  # TLV, DER AlgorithmIdentifier


class AuthMethod(IntEnum):
    """AUTH payload methods (RFC 7296 §3.8, RFC 7427)."""

    RSA_SIG = 1
    SHARED_KEY_MIC = 2
    DIGITAL_SIGNATURE = 14


class IdType(IntEnum):
    """Identification types for ID and IDg payloads (RFC 7296 §3.5)."""

    ID_IPV4_ADDR = 1
    ID_FQDN = 2
    ID_RFC822_ADDR = 3
    ID_IPV6_ADDR = 5
    ID_DER_ASN1_DN = 9
    ID_DER_ASN1_GN = 10
    ID_KEY_ID = 11


class TsType(IntEnum):
    """Traffic selector types (RFC 7296 §3.13.1)."""

    TS_IPV4_ADDR_RANGE = 7
    TS_IPV6_ADDR_RANGE = 8


class NotifyType(IntEnum):
    """Notify message types (RFC 7296 §3.10.1, RFC 9838 §4.7, RFC 7427, RFC 6023)."""

    UNSUPPORTED_CRITICAL_PAYLOAD = 1
    INVALID_IKE_SPI = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_SYNTAX = 7
    INVALID_MESSAGE_ID = 9
    INVALID_SPI = 11
    NO_PROPOSAL_CHOSEN = 14
    INVALID_KE_PAYLOAD = 17
    AUTHENTICATION_FAILED = 24
    SINGLE_PAIR_REQUIRED = 34
    NO_ADDITIONAL_SAS = 35
    INTERNAL_ADDRESS_FAILURE = 36
    FAILED_CP_REQUIRED = 37
    TS_UNACCEPTABLE = 38
    INVALID_SELECTORS = 39
    TEMPORARY_FAILURE = 43
    CHILD_SA_NOT_FOUND = 44
    INVALID_GROUP_ID = 45
    AUTHORIZATION_FAILED = 46
    REGISTRATION_FAILED = 49
    INITIAL_CONTACT = 16384
    SET_WINDOW_SIZE = 16385
    NAT_DETECTION_SOURCE_IP = 16388
    NAT_DETECTION_DESTINATION_IP = 16389
    COOKIE = 16390
    USE_TRANSPORT_MODE = 16391
    REKEY_SA = 16393
    MOBIKE_SUPPORTED = 16396
    NO_ADDITIONAL_ADDRESSES = 16399
    IKEV2_FRAGMENTATION_SUPPORTED = 16430
    SIGNATURE_HASH_ALGORITHMS = 16431
    CHILDLESS_IKEV2_SUPPORTED = 16418
    GROUP_SENDER = 16429


class GsaAttr(IntEnum):
    """GSA policy attributes (RFC 9838 §4.4.2.2); all TLV."""

    GSA_KEY_LIFETIME = 1
    GSA_INITIAL_MESSAGE_ID = 2
    GSA_NEXT_SPI = 3


class GwpAttr(IntEnum):
    """Group-wide policy attributes (RFC 9838 §4.4.3); all TV (16-bit value)."""

    GWP_ATD = 1
    GWP_DTD = 2
    GWP_SENDER_ID_BITS = 3


class GroupKeyBagAttr(IntEnum):
    """Group key bag attributes (RFC 9838 §4.5.2); TLV."""

    SA_KEY = 1


class MemberKeyBagAttr(IntEnum):
    """Member key bag attributes (RFC 9838 §4.5.3); TLV."""

    WRAP_KEY = 1
    AUTH_KEY = 2
    GM_SENDER_ID = 3
