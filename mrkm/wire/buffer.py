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

from mrkm.errors import BadLength, BadValue, Truncated

__all__ = ["Buffer"]


_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class Buffer:
    """A cursor over bytes for decoding, or a growing bytearray for encoding.

    Reading never copies until a field is returned: :meth:`pull_block` hands
    out a view of the same octets bounded to the block.
    """

    __slots__ = ("_data", "_end", "_out", "_pos")

    def __init__(self, data: bytes = b"") -> None:
        # An empty buffer is for writing: reads and writes share one bytearray.
        self._out = bytearray()
        self._data: bytes | bytearray = data if data else self._out
        self._pos = 0
        self._end = len(data)

    @classmethod
    def _view(cls, data: bytes | bytearray, start: int, end: int) -> Buffer:
        view = cls.__new__(cls)
        view._data, view._pos, view._end, view._out = data, start, end, bytearray()
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

    def pull_block(self, length: int, what: str) -> _PullBlock:
        """A context manager yielding a sub-buffer over the next ``length`` octets.

        The sub-buffer must be read to its end. ``length`` is the size of the
        body (the caller has already subtracted whatever header it read).
        Leftover octets raise :class:`BadLength`.
        """
        if length < 0:
            raise BadLength(f"{what}: length field smaller than its own header")
        start = self._take(length, what)
        return _PullBlock(Buffer._view(self._data, start, start + length), what)

    # -- writing -----------------------------------------------------------------

    def data(self) -> bytes:
        """Everything written so far."""
        return bytes(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def push_bytes(self, value: bytes) -> None:
        """Append raw octets."""
        self._out.extend(value)

    def push_uint8(self, value: int) -> None:
        """Append one octet."""
        if not 0 <= value <= 0xFF:
            raise BadValue(f"{value} does not fit in 1 octet")
        self._out.append(value)

    def push_uint16(self, value: int) -> None:
        """Append a big-endian 16-bit integer."""
        if not 0 <= value <= 0xFFFF:
            raise BadValue(f"{value} does not fit in 2 octets")
        self._out.extend(_U16.pack(value))

    def push_uint32(self, value: int) -> None:
        """Append a big-endian 32-bit integer."""
        if not 0 <= value <= 0xFFFFFFFF:
            raise BadValue(f"{value} does not fit in 4 octets")
        self._out.extend(_U32.pack(value))

    def push_block(self, length_offset: int, start: int | None = None) -> _PushBlock:
        """A context manager that back-patches a 16-bit length once a block is written.

        ``start`` is where the counted structure begins (default: the current
        end); ``length_offset`` is where its 2-octet Length field sits,
        relative to ``start``. The Length counts from ``start`` to the end of
        what the ``with`` body wrote.
        """
        out = self._out
        return _PushBlock(out, len(out) if start is None else start, length_offset)


class _PullBlock:
    """``with buf.pull_block(n, what) as sub:`` (a class: cheaper than a generator)."""

    __slots__ = ("_sub", "_what")

    def __init__(self, sub: Buffer, what: str) -> None:
        self._sub, self._what = sub, what

    def __enter__(self) -> Buffer:
        return self._sub

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and not self._sub.eof():
            raise BadLength(
                f"{self._what}: {self._sub.remaining()} trailing octets inside its length"
            )


class _PushBlock:
    """``with buf.push_block(offset):`` back-patches the block's Length on exit."""

    __slots__ = ("_begin", "_offset", "_out")

    def __init__(self, out: bytearray, begin: int, offset: int) -> None:
        self._out, self._begin, self._offset = out, begin, offset

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            return
        size = len(self._out) - self._begin
        if size > 0xFFFF:
            raise BadValue(f"block of {size} octets does not fit a 16-bit length")
        _U16.pack_into(self._out, self._begin + self._offset, size)
