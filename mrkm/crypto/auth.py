"""AUTH payload data for GSA_AUTH (RFC 7296 §2.15, RFC 9838 §2.3.1).

GSA_AUTH authenticates the IKE_SA_INIT exchange exactly like IKE_AUTH: each
side signs or MACs its "signed octets"::

    InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
    ResponderSignedOctets = RealMessage2 | NonceIData | MACedIDForR
    MACedIDForI = prf(SK_pi, RestOfInitIDPayload)
    MACedIDForR = prf(SK_pr, RestOfRespIDPayload)

With a pre-shared key (Auth Method 2, SHARED_KEY_MIC)::

    AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets> )

The signature method (14, RFC 7427) signs the same octets; see
:mod:`mrkm.crypto.signatures`.
"""

from __future__ import annotations

import hmac

from mrkm.crypto.prf import prf
from mrkm.errors import AuthenticationFailed

__all__ = [
    "KEY_PAD",
    "psk_auth",
    "signed_octets",
    "verify_psk_auth",
]

#: The 17 ASCII octets "Key Pad for IKEv2", no terminating NUL (RFC 7296 §2.15).
KEY_PAD = b"Key Pad for IKEv2"


def signed_octets(
    prf_id: int, real_message: bytes, peer_nonce: bytes, sk_p: bytes, id_body: bytes
) -> bytes:
    """Build the octets an AUTH payload covers (RFC 7296 §2.15).

    ``real_message`` is our IKE_SA_INIT message exactly as sent (first octet
    of the IKE header to the last of the last payload, no non-ESP marker);
    ``peer_nonce`` the Nonce Data the peer sent in IKE_SA_INIT; ``sk_p`` our
    SK_pi (initiator / GM) or SK_pr (responder / GCKS); ``id_body`` our IDi or
    IDr payload without its 4-octet generic header (ID Type | RESERVED |
    Identification Data). The verifier calls this with the peer's values.
    """
    return real_message + peer_nonce + prf(prf_id, sk_p, id_body)


def psk_auth(prf_id: int, psk: bytes, octets: bytes) -> bytes:
    """Return the SHARED_KEY_MIC Authentication Data (RFC 7296 §2.15)."""
    return prf(prf_id, prf(prf_id, psk, KEY_PAD), octets)


def verify_psk_auth(prf_id: int, psk: bytes, octets: bytes, auth_data: bytes) -> None:
    """Check a SHARED_KEY_MIC AUTH payload in constant time.

    Raises :class:`mrkm.errors.AuthenticationFailed` (notify
    AUTHENTICATION_FAILED, RFC 7296 §2.21.2) if ``auth_data`` differs.
    """
    if not hmac.compare_digest(psk_auth(prf_id, psk, octets), auth_data):
        raise AuthenticationFailed("shared-key AUTH does not match (RFC 7296 §2.15)")
