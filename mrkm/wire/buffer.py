"""A byte buffer with ``pull_*`` / ``push_*`` primitives and length-prefixed blocks.

Every decoder in :mod:`mrkm.wire` reads through :class:`Buffer`, so the only
errors a malformed input can raise are the project's own
(:class:`~mrkm.errors.Truncated`, :class:`~mrkm.errors.BadLength`), never
``IndexError`` or ``struct.error``.

Blocks whose length prefix counts the whole structure (IKEv2 payloads,
proposals, transforms, GSA substructures) are handled by :meth:`Buffer.pull_block`
and :meth:`Buffer.push_block`: the first hands out a sub-buffer of exactly the
announced size and insists that it is consumed to the end; the second
back-patches the length once the body is written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

from mrkm.errors import BadLength, BadValue, Truncated

__all__ = ["Buffer"]


_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class Buffer:
    """A cursor over bytes for decoding, or a growing bytearray for encoding.

    Reading never copies until a field is returned: :meth:`pull_block` hands
    out a view of the same octets bounded to the block.
    """

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes = b"") -> None:
        self._data: bytes | bytearray = data if data else bytearray()
        self._pos = 0
        self._end = len(data)

    @classmethod
    def _view(cls, data: bytes | bytearray, start: int, end: int) -> Buffer:
        view = cls.__new__(cls)
        view._data, view._pos, view._end = data, start, end
        return view

    # -- reading -----------------------------------------------------------------

    @property
    def position(self) -> int:
        """Offset of the next octet to read."""
        return self._pos

    def remaining(self) -> int:
        """Octets not yet read."""
        return self._end - self._pos

    def eof(self) -> bool:
        """True when every octet has been read."""
        return self._pos >= self._end

    def _take(self, n: int, what: str) -> int:
        pos = self._pos
        if n < 0 or pos + n > self._end:
            raise Truncated(f"{what}: needs {n} octets, {self._end - pos} left")
        self._pos = pos + n
        return pos

    def pull_bytes(self, n: int, what: str = "field") -> bytes:
        """Read exactly ``n`` octets, naming ``what`` if they are missing."""
        pos = self._take(n, what)
        return bytes(self._data[pos : pos + n])

    def pull_rest(self) -> bytes:
        """Read every octet that is left."""
        return self.pull_bytes(self.remaining())

    def pull_uint8(self, what: str = "uint8") -> int:
        """Read one octet."""
        return self._data[self._take(1, what)]

    def pull_uint16(self, what: str = "uint16") -> int:
        """Read a big-endian 16-bit integer."""
        return int(_U16.unpack_from(self._data, self._take(2, what))[0])

    def pull_uint32(self, what: str = "uint32") -> int:
        """Read a big-endian 32-bit integer."""
        return int(_U32.unpack_from(self._data, self._take(4, what))[0])

    @contextmanager
    def pull_block(self, length: int, what: str) -> Iterator[Buffer]:
        """Yield a sub-buffer over the next ``length`` octets; it must be read to its end.

        ``length`` is the size of the body (the caller has already subtracted
        whatever header it read). Leftover octets raise :class:`BadLength`.
        """
        if length < 0:
            raise BadLength(f"{what}: length field smaller than its own header")
        start = self._take(length, what)
        sub = Buffer._view(self._data, start, start + length)
        yield sub
        if not sub.eof():
            raise BadLength(f"{what}: {sub.remaining()} trailing octets inside its length")

    # -- writing -----------------------------------------------------------------

    def data(self) -> bytes:
        """Everything written so far."""
        return bytes(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def _out(self) -> bytearray:
        if not isinstance(self._data, bytearray):
            raise BadValue("a buffer made for reading cannot be written")
        return self._data

    def push_bytes(self, value: bytes) -> None:
        """Append raw octets."""
        self._out().extend(value)

    def push_uint8(self, value: int) -> None:
        """Append one octet."""
        if not 0 <= value <= 0xFF:
            raise BadValue(f"{value} does not fit in 1 octet")
        self._out().append(value)

    def push_uint16(self, value: int) -> None:
        """Append a big-endian 16-bit integer."""
        if not 0 <= value <= 0xFFFF:
            raise BadValue(f"{value} does not fit in 2 octets")
        self._out().extend(_U16.pack(value))

    def push_uint32(self, value: int) -> None:
        """Append a big-endian 32-bit integer."""
        if not 0 <= value <= 0xFFFFFFFF:
            raise BadValue(f"{value} does not fit in 4 octets")
        self._out().extend(_U32.pack(value))

    @contextmanager
    def push_block(self, length_offset: int, start: int | None = None) -> Iterator[None]:
        """Back-patch a 16-bit length once the caller has written a block.

        ``start`` is where the counted structure begins (default: the current
        end); ``length_offset`` is where its 2-octet Length field sits,
        relative to ``start``. The Length counts from ``start`` to the end of
        what the ``with`` body wrote.
        """
        out = self._out()
        begin = len(out) if start is None else start
        yield
        size = len(out) - begin
        if size > 0xFFFF:
            raise BadValue(f"block of {size} octets does not fit a 16-bit length")
        _U16.pack_into(out, begin + length_offset, size)
