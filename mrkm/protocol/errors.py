"""Protocol errors, named after the IKEv2 notify type each one answers with.

They extend :mod:`mrkm.errors` (RFC 7296 §3.10.1, RFC 9838 §4.7): a
responder turns any of them into a Notify of ``notify_type``; an initiator
that receives such a Notify raises :class:`PeerReportedError`.
"""

from __future__ import annotations

from mrkm.errors import MrkmError
from mrkm.wire.registry import NotifyType

__all__ = [
    "InvalidKePayload",
    "NoProposalChosen",
    "PeerReportedError",
    "ProtocolError",
    "UnexpectedMessage",
]


class ProtocolError(MrkmError):
    """A message that is well formed but wrong for the exchange or state."""

    notify_type: int = NotifyType.INVALID_SYNTAX


class UnexpectedMessage(ProtocolError):
    """A message this state machine has no transition for (STYLE.md item 5)."""


class NoProposalChosen(ProtocolError):
    """None of the offered proposals is acceptable (RFC 7296 §2.7)."""

    notify_type: int = NotifyType.NO_PROPOSAL_CHOSEN


class InvalidKePayload(ProtocolError):
    """The KE payload's group is not the chosen one (RFC 7296 §1.2)."""

    notify_type: int = NotifyType.INVALID_KE_PAYLOAD

    def __init__(self, wanted_group: int) -> None:
        super().__init__(f"KE payload must use group {wanted_group}")
        self.wanted_group = wanted_group


class PeerReportedError(ProtocolError):
    """The peer answered with an error Notify; ``notify_type`` is the peer's."""

    def __init__(self, notify_type: int, detail: str = "") -> None:
        try:
            name = NotifyType(notify_type).name
        except ValueError:
            name = f"notify {notify_type}"
        super().__init__(f"peer reported {name}{': ' + detail if detail else ''}")
        self.notify_type = notify_type
