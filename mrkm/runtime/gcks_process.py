"""``mrkm gcks``: a :class:`~mrkm.protocol.gcks.KeyServer` as a process.

* Registration (IKE_SA_INIT + GSA_AUTH, RFC 9838 §2.3) on UDP at
  ``gcks.listen`` (port 848 by default).
* GSA_REKEY (RFC 9838 §2.4) leaves through the same socket to each group's
  multicast address, with ``IP_MULTICAST_IF`` from ``gcks.rekey_interface``
  or ``gcks.rekey_source`` and ``IP_MULTICAST_TTL`` from
  ``gcks.multicast_ttl``.
* State: ``snapshot()`` is saved atomically (mode 0600) to ``gcks.state``
  whenever ``state_version`` changes, before the step's datagrams are sent;
  on start an existing file is restored, so Message IDs and key ids continue
  and members need not re-register. A file that cannot be restored stops
  the start with an error naming it.
* Control: ``status``, ``rekey`` (``group``) and ``evict`` (``group``,
  ``member``; when the core has ``evict``).

The signing key must persist with the state: members verify every rekey
against the AUTH_KEY they got at registration (RFC 9838 §4.5.3). Without
``gcks.state`` and ``gcks.signing_key`` an ephemeral Ed25519 key is used.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from mrkm.config import ConfigError, GcksConfig
from mrkm.crypto.certs import cert_public_key
from mrkm.crypto.signatures import SigningKey, UnsupportedKeyType, public_key_der
from mrkm.errors import MrkmError
from mrkm.protocol.gcks import KeyServer
from mrkm.runtime.clock import Clock, wall_clock
from mrkm.runtime.control import ControlError, Handler, require_str
from mrkm.runtime.daemon import Daemon
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.events import StateRestored
from mrkm.runtime.node import Core, FatalError, Node
from mrkm.runtime.pem import load_certificate, load_signing_key
from mrkm.runtime.persistence import StateError, StateFile
from mrkm.runtime.transport import Addr, configure_rekey_sender, open_endpoint, unicast_socket

__all__ = ["GcksProcess", "load_gcks_credentials"]

Rng = Callable[[int], bytes]


def load_gcks_credentials(
    config: GcksConfig,
) -> tuple[SigningKey, x509.Certificate | None, x509.Certificate | None]:
    """The signing key, optional certificate and optional CA named by ``config``."""
    if config.signing_key is not None:
        signer = load_signing_key(config.signing_key, "gcks.signing_key")
    else:
        signer = ed25519.Ed25519PrivateKey.generate()
    certificate = ca = None
    if config.certificate is not None:
        certificate = load_certificate(config.certificate, "gcks.certificate")
        try:
            matches = public_key_der(cert_public_key(certificate)) == public_key_der(
                signer.public_key()
            )
        except UnsupportedKeyType as exc:
            raise ConfigError(f"gcks.certificate: {config.certificate}: {exc}") from None
        if not matches:
            raise ConfigError(
                f"gcks.certificate: {config.certificate} is not for gcks.signing_key's key"
            )
    if config.ca is not None:
        ca = load_certificate(config.ca, "gcks.ca")
    return signer, certificate, ca


class GcksProcess(Daemon):
    """The key server daemon."""

    role: ClassVar[str] = "gcks"
    logged_commands: ClassVar[frozenset[str]] = frozenset({"rekey", "evict"})

    def __init__(
        self,
        config: GcksConfig,
        log: EventLog,
        control: Path | None = None,
        clock: Clock = wall_clock,
        rng: Rng = os.urandom,
        signals: bool = True,
    ) -> None:
        super().__init__(log, control, clock, signals)
        self.config = config
        self.rng = rng
        self.state = StateFile(config.state) if config.state is not None else None
        self._saved_version: int | None = None
        self._core: KeyServer | None = None

    @property
    def core(self) -> KeyServer:
        """The key server (after :meth:`build`)."""
        assert self._core is not None
        return self._core

    def build(self) -> Core:
        """Load credentials, create the KeyServer and restore its saved state."""
        signer, certificate, ca = load_gcks_credentials(self.config)
        now = self.clock()
        core = KeyServer(self.config, signer, self.rng, now, certificate=certificate, ca=ca)
        if self.state is not None:
            saved = self.state.load()
            if saved is not None:
                try:
                    core.restore(saved)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise StateError(
                        f"{self.state.path}: corrupt state file: {type(exc).__name__}: {exc}"
                    ) from None
                self.restored = True
                self._saved_version = core.state_version
        self._core = core
        return core

    async def open_sockets(self, node: Node) -> None:
        """The registration socket, and the socket the multicast rekeys leave from.

        With ``rekey_source`` set, rekeys leave from a socket bound to that
        address, so their source is routable where PIM must forward them
        (the RPF check needs it), while registration stays on ``listen``
        (e.g. an out-of-band management network). Otherwise the
        registration socket sends them too.
        """
        sock = unicast_socket(self.config.listen)
        address, port = sock.getsockname()[:2]
        self.listen = f"{address}:{port}"
        endpoint = await open_endpoint(sock, node.datagram_received, node.socket_error)
        self.endpoints.append(endpoint)
        rekey_endpoint = endpoint
        rekey_sock = sock
        if self.config.rekey_source is not None:
            rekey_sock = unicast_socket((self.config.rekey_source, 0))
        try:
            configure_rekey_sender(
                rekey_sock,
                self.config.rekey_interface,
                self.config.rekey_source,
                self.config.multicast_ttl,
                self.config.multicast_loop,
            )
        except Exception:
            rekey_sock.close()
            raise
        if rekey_sock is not sock:
            rekey_endpoint = await open_endpoint(
                rekey_sock, node.datagram_received, node.socket_error
            )
            self.endpoints.append(rekey_endpoint)

        def send(data: bytes, addr: Addr) -> None:
            multicast = ipaddress.ip_address(addr[0]).is_multicast
            (rekey_endpoint if multicast else endpoint).send(data, addr)

        node.send = send
        node.before_send.append(self._persist)

    def after_start(self, now: float) -> None:
        if self.restored and self.state is not None:
            groups = self.core.status(now)["groups"]
            ids = {name: int(g["next_message_id"]) for name, g in groups.items()}
            self.log.write(StateRestored(now, str(self.state.path), ids))

    def before_stop(self, now: float) -> None:
        self._persist(now)

    def _persist(self, now: float) -> None:
        """Save the snapshot if it changed; a failure is fatal (nothing is sent)."""
        if self.state is None or self.core.state_version == self._saved_version:
            return
        try:
            self.state.save(self.core.snapshot())
        except StateError as exc:
            raise FatalError(str(exc)) from None
        self._saved_version = self.core.state_version

    # -- control -------------------------------------------------------------------------

    def commands(self) -> Mapping[str, Handler]:
        return {"status": self._status, "rekey": self._rekey, "evict": self._evict}

    def _group(self, request: Mapping[str, Any]) -> str:
        group = require_str(request, "group")
        names = self.core.group_names()
        if group not in names:
            raise ControlError(f"unknown group {group!r}; known: {', '.join(names)}")
        return group

    def _status(self, request: Mapping[str, Any]) -> dict[str, Any]:
        status = self.core.status(self.clock())
        runtime = self.runtime_status()
        runtime["state_file"] = str(self.state.path) if self.state is not None else None
        runtime["state_version"] = self.core.state_version
        runtime["restored"] = self.restored
        status["runtime"] = runtime
        return status

    def _rekey(self, request: Mapping[str, Any]) -> dict[str, Any]:
        group = self._group(request)
        now = self.clock()
        message_id = self.core.rekey(group, now, reason="manual")
        self.node.step(now)
        return {"group": group, "message_id": message_id}

    def _evict(self, request: Mapping[str, Any]) -> dict[str, Any]:
        group = self._group(request)
        member = require_str(request, "member")
        evict = getattr(self.core, "evict", None)
        if evict is None:
            raise ControlError("evict: this KeyServer cannot evict members yet")
        now = self.clock()
        try:
            result = evict(group, member, now)
        except (KeyError, ValueError, MrkmError) as exc:
            raise ControlError(f"evict: {exc}") from None
        self.node.step(now)
        return {"group": group, "member": member, "result": result}
