"""MRKM cryptography: pure functions over ``cryptography``'s hazmat API.

Nothing here keeps state, reads a clock or draws randomness on its own:
randomness arrives as bytes or as an ``rng(n) -> bytes`` callable, times as
arguments. (ECDSA signing is the one exception: OpenSSL draws its nonce.)

Modules, by the RFC section they implement:

* :mod:`~mrkm.crypto.prf`: prf and prf+ (RFC 7296 §2.13).
* :mod:`~mrkm.crypto.dh`: KE payload data and g^ir for groups 14, 19 and 31
  (RFC 3526, RFC 5903, RFC 8031).
* :mod:`~mrkm.crypto.keys`: SKEYSEED, SK_* (RFC 7296 §2.14), GSK_w
  (RFC 9838 §3.1.1) and Rekey SA keys (RFC 9838 §3.4).
* :mod:`~mrkm.crypto.sk`: the SK payload body (RFC 7296 §3.14, RFC 5282).
* :mod:`~mrkm.crypto.auth`: signed octets and shared-key AUTH (RFC 7296 §2.15).
* :mod:`~mrkm.crypto.signatures`: RFC 7427 signatures, Ed25519 and ECDSA P-256.
* :mod:`~mrkm.crypto.certs`: a small X.509 test PKI (RFC 5280).
* :mod:`~mrkm.crypto.keywrap`: KW_5649_* key wrap (RFC 5649, RFC 9838 §4.5.4).
* :mod:`~mrkm.crypto.rekey_auth`: the GSA_REKEY signature (RFC 9838 §2.4.1.1).
* :mod:`~mrkm.crypto.routing`: routing digests: OSPFv2 Keyed-MD5 and RFC 5709
  HMAC-SHA, the OSPFv3 RFC 7166 trailer, and the AH ICV (RFC 4302) for PIM.

Functions are used through their module (``sk.seal``, ``dh.generate``,
``keywrap.unwrap``); the package re-exports the modules and the shared types,
loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mrkm.crypto import (
        auth,
        certs,
        dh,
        keys,
        keywrap,
        prf,
        rekey_auth,
        routing,
        signatures,
        sk,
    )
    from mrkm.crypto.dh import DhPrivate, InvalidKeyExchange
    from mrkm.crypto.keys import IkeSaKeys
    from mrkm.crypto.signatures import (
        ALG_ID_ECDSA_SHA256,
        ALG_ID_ED25519,
        SigningKey,
        UnsupportedKeyType,
        VerifyingKey,
    )
    from mrkm.crypto.sk import SkSuite

# Loaded on first use (PEP 562): a process that needs only the routing digests
# (the PIM AH shim, one per router) does not pay for X.509 and the IKE modules.
_MODULES = frozenset(
    ("auth", "certs", "dh", "keys", "keywrap", "prf", "rekey_auth", "routing", "signatures", "sk")
)
_NAMES = {
    "DhPrivate": "dh",
    "InvalidKeyExchange": "dh",
    "IkeSaKeys": "keys",
    "ALG_ID_ECDSA_SHA256": "signatures",
    "ALG_ID_ED25519": "signatures",
    "SigningKey": "signatures",
    "UnsupportedKeyType": "signatures",
    "VerifyingKey": "signatures",
    "SkSuite": "sk",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"mrkm.crypto.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"mrkm.crypto.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'mrkm.crypto' has no attribute {name!r}")


__all__ = [
    "ALG_ID_ECDSA_SHA256",
    "ALG_ID_ED25519",
    "DhPrivate",
    "IkeSaKeys",
    "InvalidKeyExchange",
    "SigningKey",
    "SkSuite",
    "UnsupportedKeyType",
    "VerifyingKey",
    "auth",
    "certs",
    "dh",
    "keys",
    "keywrap",
    "prf",
    "rekey_auth",
    "routing",
    "signatures",
    "sk",
]
