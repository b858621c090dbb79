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

from collections.abc import Iterator
from contextlib import contextmanager

from mrkm.errors import BadLength, BadValue, Truncated

__all__ = ["Buffer"]


class Buffer:
    """A cursor over bytes for decoding, or a growing bytearray for encoding."""

    def __init__(self, data: bytes = b"") -> None:
        self._data = bytearray(data)
        self._pos = 0

    # -- reading -----------------------------------------------------------------

    @property
    def position(self) -> int:
        """Offset of the next octet to read."""
        return self._pos

    def remaining(self) -> int:
        """Octets not yet read."""
        return len(self._data) - self._pos

    def eof(self) -> bool:
        """True when every octet has been read."""
        return self._pos >= len(self._data)

    def pull_bytes(self, n: int, what: str = "field") -> bytes:
        """Read exactly ``n`` octets, naming ``what`` if they are missing."""
        if n < 0 or self._pos + n > len(self._data):
            raise Truncated(f"{what}: needs {n} octets, {self.remaining()} left")
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return out

    def pull_rest(self) -> bytes:
        """Read every octet that is left."""
        return self.pull_bytes(self.remaining())

    def pull_uint8(self, what: str = "uint8") -> int:
        """Read one octet."""
        return self.pull_bytes(1, what)[0]

    def pull_uint16(self, what: str = "uint16") -> int:
        """Read a big-endian 16-bit integer."""
        return int.from_bytes(self.pull_bytes(2, what), "big")

    def pull_uint32(self, what: str = "uint32") -> int:
        """Read a big-endian 32-bit integer."""
        return int.from_bytes(self.pull_bytes(4, what), "big")

    @contextmanager
    def pull_block(self, length: int, what: str) -> Iterator[Buffer]:
        """Yield a sub-buffer over the next ``length`` octets; it must be read to its end.

        ``length`` is the size of the body (the caller has already subtracted
        whatever header it read). Leftover octets raise :class:`BadLength`.
        """
        if length < 0:
            raise BadLength(f"{what}: length field smaller than its own header")
        sub = Buffer(self.pull_bytes(length, what))
        yield sub
        if not sub.eof():
            raise BadLength(f"{what}: {sub.remaining()} trailing octets inside its length")

    # -- writing -----------------------------------------------------------------

    def data(self) -> bytes:
        """Everything written so far."""
        return bytes(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def push_bytes(self, value: bytes) -> None:
        """Append raw octets."""
        self._data += value

    def push_uint8(self, value: int) -> None:
        """Append one octet."""
        self._data += _to_bytes(value, 1)

    def push_uint16(self, value: int) -> None:
        """Append a big-endian 16-bit integer."""
        self._data += _to_bytes(value, 2)

    def push_uint32(self, value: int) -> None:
        """Append a big-endian 32-bit integer."""
        self._data += _to_bytes(value, 4)

    @contextmanager
    def push_block(self, length_offset: int, start: int | None = None) -> Iterator[None]:
        """Back-patch a 16-bit length once the caller has written a block.

        ``start`` is where the counted structure begins (default: the current
        end); ``length_offset`` is where its 2-octet Length field sits,
        relative to ``start``. The Length counts from ``start`` to the end of
        what the ``with`` body wrote.
        """
        begin = len(self._data) if start is None else start
        yield
        size = len(self._data) - begin
        if size > 0xFFFF:
            raise BadValue(f"block of {size} octets does not fit a 16-bit length")
        pos = begin + length_offset
        self._data[pos : pos + 2] = size.to_bytes(2, "big")


def _to_bytes(value: int, size: int) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise BadValue(f"{value} does not fit in {size} octet(s)")
    return value.to_bytes(size, "big")
