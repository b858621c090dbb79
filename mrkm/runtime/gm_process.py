"""``mrkm gm``: a :class:`~mrkm.protocol.gm.GroupMember` as a process.

* Registration with the GCKS at ``gm.gcks`` from a unicast socket on
  ``gm.listen`` (any port by default).
* Every ``gm.rekey_groups`` entry, and every rekey group a Rekey SA policy
  announces, is joined on the one interface
  ``gm.interface`` (or the one with ``gm.interface_address``), with
  ``IP_MULTICAST_ALL`` = 0 (``reference/pim-local-and-tshark.md`` §3), and
  its GSA_REKEYs go to the core like any other datagram.
* ``--keytable FILE``: the key table with its keys, rewritten atomically
  (mode 0600) whenever a row changes: the ``file`` sink the tests read.
* Control: ``status`` (group states, key ids, counters) and ``keys``
  (``with_key: true`` adds the key octets).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from mrkm.config import ConfigError, GmConfig
from mrkm.crypto.signatures import UnsupportedKeyType, public_key_der
from mrkm.fileio import atomic_write
from mrkm.keytable import KeyRow
from mrkm.protocol.credentials import Identity, LocalCredentials, PeerTrust
from mrkm.protocol.gm import GroupMember
from mrkm.runtime.clock import Clock, wall_clock
from mrkm.runtime.control import ControlError, Handler
from mrkm.runtime.daemon import Daemon
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.events import InternalError
from mrkm.runtime.installer import Installer
from mrkm.runtime.node import Core, Node
from mrkm.runtime.pem import load_certificate, load_signing_key
from mrkm.runtime.transport import open_endpoint, rekey_receiver, unicast_socket
from mrkm.sinks import Sink, build_sinks

__all__ = ["GmProcess", "load_gm_credentials"]

Rng = Callable[[int], bytes]


def _fqdn(name: str, where: str) -> Identity:
    try:
        return Identity.fqdn(name)
    except UnicodeEncodeError:
        raise ConfigError(f"{where}: {name!r} is not ASCII (ID_FQDN, RFC 7296 §3.5)") from None


def load_gm_credentials(config: GmConfig) -> tuple[LocalCredentials, PeerTrust]:
    """Our credentials (PSK, or certificate + key) and how we check the GCKS."""
    identity = _fqdn(config.identity, "gm.identity")
    if config.certificate is not None and config.key is not None:
        key = load_signing_key(config.key, "gm.key")
        cert = load_certificate(config.certificate, "gm.certificate")
        try:
            from mrkm.crypto.certs import cert_public_key  # X.509: only for certificate GMs

            same = public_key_der(cert_public_key(cert)) == public_key_der(key.public_key())
        except UnsupportedKeyType as exc:
            raise ConfigError(f"gm.certificate: {config.certificate}: {exc}") from None
        if not same:
            raise ConfigError(f"gm.certificate: {config.certificate} is not for gm.key's key")
        local = LocalCredentials(identity, signing_key=key, certificate=cert)
    else:
        local = LocalCredentials(identity, psk=config.psk)
    ca = load_certificate(config.ca, "gm.ca") if config.ca is not None else None
    authorize: Callable[[Identity], bool] | None = None
    if config.gcks_identity is not None:
        expected = _fqdn(config.gcks_identity, "gm.gcks_identity")

        def authorize(peer: Identity) -> bool:
            return peer == expected

    return local, PeerTrust(group_psk=config.psk, ca=ca, authorize=authorize)


class GmProcess(Daemon):
    """The group member daemon."""

    role: ClassVar[str] = "gm"

    def __init__(
        self,
        config: GmConfig,
        log: EventLog,
        control: Path | None = None,
        keytable: Path | None = None,
        clock: Clock = wall_clock,
        rng: Rng = os.urandom,
        signals: bool = True,
    ) -> None:
        super().__init__(log, control, clock, signals)
        self.config = config
        self.keytable = keytable
        self.rng = rng
        self._core: GroupMember | None = None
        self._written: list[dict[str, Any]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sinks: list[Sink] = []
        self.installer: Installer | None = None

    @property
    def core(self) -> GroupMember:
        """The group member (after :meth:`build`)."""
        assert self._core is not None
        return self._core

    def build(self) -> Core:
        """Load credentials and create the GroupMember."""
        local, trust = load_gm_credentials(self.config)
        self._sinks = build_sinks(self.config.sinks)
        self._core = GroupMember(self.config, local, trust, self.rng, self.clock())
        return self._core

    async def open_sockets(self, node: Node) -> None:
        """The unicast socket to the GCKS and one receiver per rekey group."""
        sock = unicast_socket(self.config.listen)
        address, port = sock.getsockname()[:2]
        self.listen = f"{address}:{port}"
        endpoint = await open_endpoint(sock, node.datagram_received, node.socket_error)
        self.endpoints.append(endpoint)
        node.send = endpoint.send
        self._receiver_node = node
        self._joined: set[tuple[str, int]] = set()
        for destination in self.config.rekey_groups:
            await self._join(destination)
        node.after_send.append(self._join_announced)
        if self._sinks:
            self.installer = Installer(self._sinks, self._table_rows, self.log, self.clock)
            node.after_send.append(self.installer.after_step)
            self.installer.start()
        if self.keytable is not None:
            node.after_send.append(self._write_keytable)

    async def _join(self, destination: tuple[str, int]) -> None:
        """Receive one rekey group on the configured interface (once)."""
        if destination in self._joined:
            return
        self._joined.add(destination)
        receiver = rekey_receiver(
            destination[0], destination[1], self.config.interface, self.config.interface_address
        )
        node = self._receiver_node
        self.endpoints.append(
            await open_endpoint(receiver, node.datagram_received, node.socket_error)
        )

    def _join_announced(self, now: float) -> None:
        """Join the rekey group each Rekey SA policy announces (RFC 9838 §4.4.2)."""
        for group in self.config.groups:
            destination = self.core.rekey_destination(group)
            if destination is not None and destination not in self._joined:
                task = asyncio.get_running_loop().create_task(self._join(destination))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _table_rows(self) -> list[KeyRow]:
        return sorted(self.core.key_table.rows.values(), key=lambda r: (r.group, r.send_start))

    def before_stop(self, now: float) -> None:
        """Let a router call in progress finish before the process ends."""
        if self.installer is not None:
            self.installer.close()

    def _rows(self, with_key: bool) -> list[dict[str, Any]]:
        rows = sorted(self.core.key_table.rows.values(), key=lambda r: (r.group, r.send_start))
        return [r.to_json(with_key=with_key) for r in rows]

    def _write_keytable(self, now: float) -> None:
        """Rewrite the key table file when a row changed (atomic, mode 0600)."""
        assert self.keytable is not None
        rows = self._rows(with_key=True)
        if rows == self._written:
            return
        table = {"node": self.config.identity, "updated": round(now, 6), "rows": rows}
        try:
            atomic_write(self.keytable, json.dumps(table, indent=1).encode() + b"\n")
        except OSError as exc:
            self.log.write(InternalError(now, "keytable", f"{self.keytable}: {exc}"))
            return
        self._written = rows

    # -- control -------------------------------------------------------------------------

    def commands(self) -> Mapping[str, Handler]:
        return {"status": self._status, "keys": self._keys}

    def _status(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "identity": self.config.identity,
            "gcks": f"{self.config.gcks[0]}:{self.config.gcks[1]}",
            "groups": {g: self.core.state(g).value for g in self.config.groups},
            "keys": self._rows(with_key=False),
            "counters": dict(self.core.counters),
            "runtime": self.runtime_status(),
        }

    def _keys(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with_key = request.get("with_key", False)
        if not isinstance(with_key, bool):
            raise ControlError("keys: field 'with_key' must be true or false")
        return {"rows": self._rows(with_key=with_key)}
