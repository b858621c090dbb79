"""A minimal NFQUEUE binding: ctypes over ``libnetfilter_queue.so.1``, nothing to compile.

Netfilter hands queued packets to userspace over nfnetlink; the userspace
program answers each with a verdict, optionally with replaced packet octets
(``NF_ACCEPT`` with new data is how the PIM AH shim inserts or strips AH).
Only what the shim needs is bound: open a queue in copy-packet mode, read
the netlink socket, and give verdicts from a Python callback.

Every call that fails raises :class:`NfqueueError` naming the call and the
errno; the library is looked up once, on first use, so importing this module
needs neither the library nor root.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NF_ACCEPT",
    "NF_DROP",
    "NF_INET_LOCAL_IN",
    "NF_INET_LOCAL_OUT",
    "NfqueueError",
    "Queue",
    "QueuedPacket",
    "Verdict",
]

NF_DROP = 0
NF_ACCEPT = 1
#: Netfilter hook numbers (linux/netfilter.h) as reported for each queued packet.
NF_INET_PRE_ROUTING, NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT = 0, 1, 2, 3
_NFQNL_COPY_PACKET = 2
_AF_INET = 2
_RECV_BUFFER = 0x10000 + 4096  # one 64 KiB packet plus netlink and nfqueue headers


class NfqueueError(OSError):
    """A libnetfilter_queue call failed; the message names the call."""


@dataclass(frozen=True)
class QueuedPacket:
    """One packet from the queue: its id, the hook it was queued at, its IP octets."""

    packet_id: int
    hook: int
    payload: bytes


@dataclass(frozen=True)
class Verdict:
    """The answer for one packet: accept or drop, optionally with new octets."""

    verdict: int
    payload: bytes | None = None


class _PacketHeader(ctypes.Structure):
    # struct nfqnl_msg_packet_hdr (linux/netfilter/nfnetlink_queue.h), packed.
    _pack_ = 1
    _fields_ = (
        ("packet_id", ctypes.c_uint32),  # network byte order
        ("hw_protocol", ctypes.c_uint16),
        ("hook", ctypes.c_uint8),
    )


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)
_LIB: Any = None


def _lib() -> Any:
    """Load libnetfilter_queue once and declare the signatures used."""
    global _LIB
    if _LIB is not None:
        return _LIB
    name = ctypes.util.find_library("netfilter_queue") or "libnetfilter_queue.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise NfqueueError(
            f"cannot load {name}: {exc} (install libnetfilter-queue1, see scripts/setup.sh)"
        ) from None
    vp, c_int, u16, u32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint16, ctypes.c_uint32
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "nfq_open": (vp, []),
        "nfq_close": (c_int, [vp]),
        "nfq_bind_pf": (c_int, [vp, u16]),
        "nfq_create_queue": (vp, [vp, u16, _CALLBACK, vp]),
        "nfq_destroy_queue": (c_int, [vp]),
        "nfq_set_mode": (c_int, [vp, ctypes.c_uint8, u32]),
        "nfq_set_queue_maxlen": (c_int, [vp, u32]),
        "nfq_fd": (c_int, [vp]),
        "nfq_handle_packet": (c_int, [vp, ctypes.c_char_p, c_int]),
        "nfq_get_msg_packet_hdr": (ctypes.POINTER(_PacketHeader), [vp]),
        "nfq_get_payload": (c_int, [vp, ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))]),
        "nfq_set_verdict": (c_int, [vp, u32, u32, u32, ctypes.c_char_p]),
    }
    for fn, (restype, argtypes) in signatures.items():
        func = getattr(lib, fn)
        func.restype, func.argtypes = restype, argtypes
    _LIB = lib
    return lib


def _fail(call: str) -> NfqueueError:
    code = ctypes.get_errno()
    return NfqueueError(code, f"{call} failed: {os.strerror(code) if code else 'unknown error'}")


class Queue:
    """One NFQUEUE queue number, in copy-packet mode, answered by ``handler``.

    ``handler`` gets each :class:`QueuedPacket` and returns its
    :class:`Verdict`; an exception in it drops the packet (fail closed) and
    is passed to ``on_error``. Use :meth:`poll` in a loop, then :meth:`close`.
    """

    def __init__(
        self,
        number: int,
        handler: Callable[[QueuedPacket], Verdict],
        on_error: Callable[[BaseException], None] | None = None,
        max_len: int = 1024,
    ) -> None:
        if not 0 <= number <= 0xFFFF:
            raise ValueError(f"queue number {number} is not 0 to 65535")
        self.number, self._handler, self._on_error = number, handler, on_error
        self.overruns = 0  # times the kernel dropped queued packets for lack of buffer (ENOBUFS)
        lib = _lib()
        self._lib = lib
        self._h = lib.nfq_open()
        if not self._h:
            raise _fail("nfq_open")
        self._qh: Any = None
        try:
            lib.nfq_bind_pf(self._h, _AF_INET)  # a no-op on kernels >= 3.8; harmless
            self._cb = _CALLBACK(self._callback)  # keep a reference: C holds the pointer
            self._qh = lib.nfq_create_queue(self._h, number, self._cb, None)
            if not self._qh:
                raise _fail(f"nfq_create_queue({number}) (is another process bound to it?)")
            if lib.nfq_set_mode(self._qh, _NFQNL_COPY_PACKET, 0xFFFF) < 0:
                raise _fail("nfq_set_mode")
            lib.nfq_set_queue_maxlen(self._qh, max_len)
            self._fd = lib.nfq_fd(self._h)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """The netlink socket, for ``select``."""
        return int(self._fd)

    def _callback(self, qh: Any, _nfmsg: Any, nfad: Any, _data: Any) -> int:
        header = self._lib.nfq_get_msg_packet_hdr(nfad)
        if not header:
            return 0
        packet_id = socket.ntohl(header.contents.packet_id)
        hook = int(header.contents.hook)
        pointer = ctypes.POINTER(ctypes.c_ubyte)()
        length = self._lib.nfq_get_payload(nfad, ctypes.byref(pointer))
        payload = ctypes.string_at(pointer, length) if length > 0 else b""
        try:
            verdict = self._handler(QueuedPacket(packet_id, hook, payload))
        except Exception as exc:  # fail closed: a packet we could not judge is dropped
            verdict = Verdict(NF_DROP)
            if self._on_error is not None:
                self._on_error(exc)
        data = verdict.payload
        if data is None:
            self._lib.nfq_set_verdict(qh, packet_id, verdict.verdict, 0, None)
        else:
            self._lib.nfq_set_verdict(qh, packet_id, verdict.verdict, len(data), data)
        return 0

    def poll(self, timeout: float, wake: Sequence[int] = ()) -> int:
        """Handle every packet that arrives within ``timeout`` seconds; return how many
        netlink messages were read (0 on timeout).

        ``wake`` are other descriptors (a directory watch, a signal pipe): when one
        of them becomes readable first, return at once. The caller drains them.
        """
        ready, _, _ = select.select([self._fd, *wake], [], [], timeout)
        if self._fd not in ready:
            return 0
        handled = 0
        while True:
            try:
                data = os.read(self._fd, _RECV_BUFFER)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the kernel dropped some: keep going
                    self.overruns += 1
                    continue
                raise
            self._lib.nfq_handle_packet(self._h, data, len(data))
            handled += 1
            ready, _, _ = select.select([self._fd], [], [], 0)
            if not ready:
                break
        return handled

    def close(self) -> None:
        """Unbind the queue and close the netlink socket (idempotent)."""
        if self._qh:
            self._lib.nfq_destroy_queue(self._qh)
            self._qh = None
        if self._h:
            self._lib.nfq_close(self._h)
            self._h = None

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
