"""Sans-IO G-IKEv2 state machines: time and randomness are passed in (STYLE.md item 1)."""

from mrkm.protocol.credentials import Identity, LocalCredentials, PeerTrust
from mrkm.protocol.ikesa import AuthRequest, IkeInitiator, IkeResponder, IkeSa, SaState
from mrkm.protocol.suite import DEFAULT_SUITE, IkeSuite

__all__ = [
    "DEFAULT_SUITE",
    "AuthRequest",
    "Identity",
    "IkeInitiator",
    "IkeResponder",
    "IkeSa",
    "IkeSuite",
    "LocalCredentials",
    "PeerTrust",
    "SaState",
]
