"""The key table a GM writes and the router sinks read (RFC 7210 §2, RFC 8177).

One :class:`KeyRow` per routing key: which protocol and key identifier, which
algorithm, the key, and absolute send and accept lifetimes. The GM computes
the lifetimes from the group-wide policy (RFC 9838 §4.4.3):

* a key is accepted from the moment the GM holds it;
* it is sent from ``received + ATD`` on;
* the key it replaces stops being sent at that same moment and stops being
  accepted ``DTD`` seconds later;
* no key is used past its own ``GSA_KEY_LIFETIME``.

That is RFC 2328 App. D.3's KeyStartAccept < KeyStartGenerate and
KeyStopGenerate < KeyStopAccept, which makes rollover hitless.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mrkm.wire.registry import IntegId, ProtocolId

__all__ = ["ALGORITHM_NAMES", "PROTOCOL_NAMES", "KeyRow", "KeyTable"]

# RFC 8177 crypto-algorithm identities, by MRKM's private INTEG IDs.
ALGORITHM_NAMES: dict[int, str] = {
    IntegId.ROUTING_KEYED_MD5: "md5",
    IntegId.ROUTING_HMAC_SHA1: "hmac-sha-1",
    IntegId.ROUTING_HMAC_SHA256: "hmac-sha-256",
    IntegId.ROUTING_HMAC_SHA384: "hmac-sha-384",
    IntegId.ROUTING_HMAC_SHA512: "hmac-sha-512",
    IntegId.AUTH_HMAC_SHA2_256_128: "hmac-sha-256-128",
    IntegId.AUTH_HMAC_SHA1_96: "hmac-sha-1-96",
}
PROTOCOL_NAMES: dict[int, str] = {
    ProtocolId.OSPFV2: "ospfv2",
    ProtocolId.OSPFV3_TRAILER: "ospfv3",
    ProtocolId.AH: "pim-ah",
}


@dataclass(frozen=True)
class KeyRow:
    """One row of the key table; times are absolute seconds on the run's clock."""

    group: str
    protocol: str
    key_id: int
    algorithm: str
    key: bytes = field(repr=False)
    accept_start: float
    send_start: float
    send_end: float
    accept_end: float

    def __post_init__(self) -> None:
        if not self.accept_start <= self.send_start <= self.send_end <= self.accept_end:
            raise ValueError(
                f"key {self.protocol}/{self.key_id}: lifetimes must satisfy "
                "accept_start <= send_start <= send_end <= accept_end"
            )

    def sending(self, now: float) -> bool:
        """True while this key may be used to send."""
        return self.send_start <= now < self.send_end

    def accepting(self, now: float) -> bool:
        """True while packets with this key are accepted."""
        return self.accept_start <= now < self.accept_end

    def to_json(self, with_key: bool = False) -> dict[str, Any]:
        """The row as JSON; the key octets only when asked for (file sink, tests)."""
        record: dict[str, Any] = {
            "group": self.group,
            "protocol": self.protocol,
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "accept_start": round(self.accept_start, 6),
            "send_start": round(self.send_start, 6),
            "send_end": round(self.send_end, 6),
            "accept_end": round(self.accept_end, 6),
        }
        if with_key:
            record["key"] = self.key.hex()
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> KeyRow:
        """Parse a row written by :meth:`to_json` with the key."""
        return cls(
            group=str(record["group"]),
            protocol=str(record["protocol"]),
            key_id=int(record["key_id"]),
            algorithm=str(record["algorithm"]),
            key=bytes.fromhex(str(record["key"])),
            accept_start=float(record["accept_start"]),
            send_start=float(record["send_start"]),
            send_end=float(record["send_end"]),
            accept_end=float(record["accept_end"]),
        )


@dataclass
class KeyTable:
    """The rows of one GM, keyed by (protocol, key id)."""

    rows: dict[tuple[str, int], KeyRow] = field(default_factory=dict)

    def install(self, new: KeyRow, dtd: float) -> list[KeyRow]:
        """Add ``new``; trim the rows it supersedes; return every row that changed.

        Every other row of the same group and protocol that is still sent
        after ``new.send_start`` stops sending then and stops being accepted
        ``dtd`` seconds later (RFC 9838 §4.4.3, GWP_DTD).
        """
        changed = [new]
        for key, row in list(self.rows.items()):
            if key == (new.protocol, new.key_id) or row.protocol != new.protocol:
                continue
            if row.group == new.group and row.send_end > new.send_start:
                send_end = max(row.send_start, new.send_start)
                # A successor activating before this row's own activation (ATD 0
                # after a pending key) leaves it no send window; it is still
                # accepted until DTD after the successor, never before its send end.
                accept_end = max(send_end, min(row.accept_end, new.send_start + dtd))
                trimmed = replace(row, send_end=send_end, accept_end=accept_end)
                self.rows[key] = trimmed
                changed.append(trimmed)
        self.rows[(new.protocol, new.key_id)] = new
        return changed

    def expire(self, now: float) -> list[KeyRow]:
        """Drop rows no longer accepted; return them."""
        gone = [row for row in self.rows.values() if row.accept_end <= now]
        for row in gone:
            del self.rows[(row.protocol, row.key_id)]
        return gone

    def sending(self, protocol: str, now: float) -> KeyRow | None:
        """The key to send with now: the newest one whose send window is open."""
        live = [r for r in self.rows.values() if r.protocol == protocol and r.sending(now)]
        return max(live, key=lambda r: r.send_start, default=None)

    def accepting(self, protocol: str, now: float) -> list[KeyRow]:
        """Every key accepted now for ``protocol``."""
        return [r for r in self.rows.values() if r.protocol == protocol and r.accepting(now)]

    def drop_group(self, group: str) -> list[KeyRow]:
        """Forget every row of ``group`` (a new registration or a leave); return them."""
        gone = [row for row in self.rows.values() if row.group == group]
        for row in gone:
            del self.rows[(row.protocol, row.key_id)]
        return gone
