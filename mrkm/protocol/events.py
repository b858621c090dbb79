"""Everything the GCKS and GM state machines report, as frozen dataclasses (STYLE.md item 2).

The cores never call back into their caller: they queue events, and the
runtime drains them with ``events()`` and writes each one as a JSON line
stamped with the injected ``now`` (``time``). That log is the single source
of truth for the testbed's collectors, so field names are part of MRKM's
interface: change them only together with the collectors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

__all__ = [
    "DatagramDropped",
    "Event",
    "GroupLeft",
    "KeysInstalled",
    "MemberEvicted",
    "MemberLeft",
    "MemberRegistered",
    "RegistrationCompleted",
    "RegistrationFailed",
    "RegistrationRejected",
    "RegistrationStarted",
    "RekeyAccepted",
    "RekeyDuplicate",
    "RekeyRejected",
    "RekeySent",
    "RepairScheduled",
]


@dataclass(frozen=True)
class Event:
    """Base of every event; ``time`` is the injected clock in seconds."""

    name: ClassVar[str] = "event"
    time: float

    def to_json(self) -> dict[str, Any]:
        """The event as one JSON-ready dict, ``event`` naming its kind."""
        record: dict[str, Any] = {"t": round(self.time, 6), "event": self.name}
        for key, value in asdict(self).items():
            if key == "time":
                continue
            record[key] = value.hex() if isinstance(value, bytes) else value
        return record


# -- group member -----------------------------------------------------------------


@dataclass(frozen=True)
class RegistrationStarted(Event):
    """The GM sent IKE_SA_INIT to register for ``group`` (attempt counts from 1)."""

    name: ClassVar[str] = "registration_started"
    group: str
    attempt: int
    reason: str = "start"


@dataclass(frozen=True)
class RegistrationCompleted(Event):
    """GSA_AUTH succeeded: the GM holds the Rekey SA and the group's keys."""

    name: ClassVar[str] = "registration_completed"
    group: str
    key_ids: tuple[int, ...]
    message_id: int
    seconds: float


@dataclass(frozen=True)
class RegistrationFailed(Event):
    """A registration attempt failed; ``retry_at`` is None when the GM gives up."""

    name: ClassVar[str] = "registration_failed"
    group: str
    reason: str
    notify_type: int | None = None
    retry_at: float | None = None


@dataclass(frozen=True)
class RekeyAccepted(Event):
    """A GSA_REKEY passed ICV, signature and replay checks and was processed."""

    name: ClassVar[str] = "rekey_accepted"
    group: str
    message_id: int
    key_ids: tuple[int, ...]
    new_rekey_sa: bool = False
    sa: str = ""  # Rekey SA SPI (hex) that protected the message


@dataclass(frozen=True)
class RekeyDuplicate(Event):
    """A copy or replay of an accepted GSA_REKEY, dropped (RFC 9838 §2.4.1.3)."""

    name: ClassVar[str] = "rekey_duplicate"
    group: str
    message_id: int


@dataclass(frozen=True)
class RekeyRejected(Event):
    """A GSA_REKEY that failed a check; nothing of it was used."""

    name: ClassVar[str] = "rekey_rejected"
    group: str
    reason: str


@dataclass(frozen=True)
class KeysInstalled(Event):
    """Key table rows handed to the router sinks (without the key octets)."""

    name: ClassVar[str] = "keys_installed"
    group: str
    rows: tuple[dict[str, Any], ...] = field(default=())


@dataclass(frozen=True)
class RepairScheduled(Event):
    """The GM will re-register at ``at`` because of ``reason``."""

    name: ClassVar[str] = "repair_scheduled"
    group: str
    reason: str
    at: float


@dataclass(frozen=True)
class GroupLeft(Event):
    """The GM left ``group`` by GSA_REGISTRATION and dropped its keys."""

    name: ClassVar[str] = "group_left"
    group: str


# -- key server -------------------------------------------------------------------


@dataclass(frozen=True)
class MemberRegistered(Event):
    """The GCKS answered a member's GSA_AUTH with GSA and KD."""

    name: ClassVar[str] = "member_registered"
    group: str
    member: str
    members: int


@dataclass(frozen=True)
class RegistrationRejected(Event):
    """The GCKS refused a registration; ``reason`` names the notify or check."""

    name: ClassVar[str] = "registration_rejected"
    member: str
    reason: str
    group: str = ""


@dataclass(frozen=True)
class RekeySent(Event):
    """The GCKS sent (the first copy of) a GSA_REKEY."""

    name: ClassVar[str] = "rekey_sent"
    group: str
    message_id: int
    key_ids: tuple[int, ...]
    octets: int
    copies: int
    reason: str
    wrapped_keys: int = 0
    sa: str = ""  # Rekey SA SPI (hex) the message was sent under; Message IDs count per SA


@dataclass(frozen=True)
class MemberEvicted(Event):
    """A member was removed; the following rekeys exclude it."""

    name: ClassVar[str] = "member_evicted"
    group: str
    member: str


@dataclass(frozen=True)
class MemberLeft(Event):
    """A member left by GSA_REGISTRATION."""

    name: ClassVar[str] = "member_left"
    group: str
    member: str


@dataclass(frozen=True)
class DatagramDropped(Event):
    """A datagram that was not processed, with the reason (never kept as state)."""

    name: ClassVar[str] = "datagram_dropped"
    reason: str
    source: str = ""
