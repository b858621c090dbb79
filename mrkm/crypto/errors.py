"""The one crypto error that a peer's choice of transform can cause.

Transform IDs arrive on the wire (SA and GSA policies, RFC 7296 §3.3.2,
RFC 9838 §4.4.2): an ID MRKM does not implement must surface as an MRKM error
that the protocol cores drop or refuse, never as a bare ``ValueError`` that
escapes ``receive``. The class is also a ``ValueError`` so that callers that
pass a wrong constant keep the exception they have always seen.
"""

from __future__ import annotations

from mrkm.errors import CryptoError

__all__ = ["UnsupportedTransform"]

_NO_PROPOSAL_CHOSEN = 14  # RFC 7296 §3.10.1


class UnsupportedTransform(CryptoError, ValueError):
    """A transform ID (ENCR, PRF, INTEG, D-H, KWA) that MRKM does not implement."""

    notify_type = _NO_PROPOSAL_CHOSEN
