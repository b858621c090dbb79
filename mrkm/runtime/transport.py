"""UDP sockets of a node: registration unicast, rekey multicast (IPv4, Linux).

* :func:`unicast_socket` binds the registration socket (the GCKS on its
  ``listen`` address, port 848 by default, RFC 9838 §2.1; a GM on any port).
* :func:`configure_rekey_sender` makes that socket the GCKS's GSA_REKEY
  sender: ``IP_MULTICAST_IF`` by interface (``struct ip_mreqn``) or by local
  address, ``IP_MULTICAST_TTL`` (16 by default, enough to cross the PIM tree
  of a testbed) and ``IP_MULTICAST_LOOP``.
* :func:`rekey_receiver` is a GM's socket for one rekey group, joined on
  exactly one interface, as ``reference/pim-local-and-tshark.md`` §3
  prescribes: bound to the group address, ``IP_ADD_MEMBERSHIP`` with that
  interface's index, and ``IP_MULTICAST_ALL`` = 0 so that the socket hears
  only the groups it joined itself, on the interface it joined them on, and
  not those other sockets of the host joined. The kernel thus filters by
  arrival interface itself; ``IP_PKTINFO`` (which would report it) is not
  used, since asyncio's datagram transport does not pass ancillary data.

:class:`DatagramEndpoint` hands datagrams to a callback; the callback is
guarded, so nothing a peer sends can raise out of the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import cast

__all__ = [
    "IP_MULTICAST_ALL",
    "IP_PKTINFO",
    "Addr",
    "DatagramEndpoint",
    "TransportError",
    "configure_rekey_sender",
    "open_endpoint",
    "rekey_receiver",
    "unicast_socket",
]

Addr = tuple[str, int]
#: <linux/in.h>; Python 3.11's socket module names neither.
IP_MULTICAST_ALL = 49
IP_PKTINFO = 8


class TransportError(Exception):
    """A socket could not be set up; the message says which and why."""


def _ifindex(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise TransportError(f"no such network interface {interface!r}") from None


def _mreqn(group: str, address: str, ifindex: int) -> bytes:
    """``struct ip_mreqn``: group, local address, interface index (ip(7))."""
    return socket.inet_aton(group) + socket.inet_aton(address) + struct.pack("@i", ifindex)


def unicast_socket(addr: Addr) -> socket.socket:
    """A non-blocking UDP socket bound to ``addr`` (port 0: the kernel picks)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot bind UDP {addr[0]}:{addr[1]}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def configure_rekey_sender(
    sock: socket.socket,
    interface: str | None,
    source: str | None,
    ttl: int,
    loop: bool = True,
) -> None:
    """Set how multicast GSA_REKEYs leave through ``sock``.

    ``interface`` selects the outgoing interface by name, ``source`` by
    local address; with neither, the bound address is used if it is
    specific, else the kernel's route for the group decides.
    """
    try:
        if interface is not None:
            mreqn = _mreqn("0.0.0.0", "0.0.0.0", _ifindex(interface))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        else:
            bound = sock.getsockname()[0]
            chosen = source or (bound if bound != "0.0.0.0" else None)
            if chosen is not None:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(chosen))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loop))
    except OSError as exc:
        raise TransportError(f"cannot set up the rekey sender: {exc.strerror}") from None


def rekey_receiver(
    group: str, port: int, interface: str | None, interface_address: str | None
) -> socket.socket:
    """A socket that receives ``group:port`` as joined on one interface only.

    The interface is named (``interface``), or given by its address
    (``interface_address``); with neither the kernel picks one by route.
    """
    ifindex = _ifindex(interface) if interface is not None else 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Several GMs on one host (loopback tests) share the group's port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.bind((group, port))
        membership = _mreqn(group, interface_address or "0.0.0.0", ifindex)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    except OSError as exc:
        sock.close()
        where = interface or interface_address or "the default interface"
        raise TransportError(f"cannot join {group}:{port} on {where}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class DatagramEndpoint(asyncio.DatagramProtocol):
    """Hands each datagram to ``on_datagram``; socket errors to ``on_error``."""

    def __init__(
        self,
        on_datagram: Callable[[bytes, Addr], None],
        on_error: Callable[[str], None],
    ) -> None:
        self._on_datagram = on_datagram
        self._on_error = on_error
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        self._on_error(f"{type(exc).__name__}: {exc}")

    def send(self, data: bytes, addr: Addr) -> None:
        """Send one datagram; a failure is reported to ``on_error``, never raised."""
        if self.transport is None or self.transport.is_closing():
            self._on_error(f"send to {addr[0]}:{addr[1]} on a closed socket")
            return
        try:
            self.transport.sendto(data, addr)
        except OSError as exc:
            self._on_error(f"send to {addr[0]}:{addr[1]}: {exc}")


async def open_endpoint(
    sock: socket.socket,
    on_datagram: Callable[[bytes, Addr], None],
    on_error: Callable[[str], None],
) -> DatagramEndpoint:
    """Wrap a prepared socket in the running loop; return its endpoint."""
    loop = asyncio.get_running_loop()
    _transport, endpoint = await loop.create_datagram_endpoint(
        lambda: DatagramEndpoint(on_datagram, on_error), sock=sock
    )
    return endpoint
