"""The control socket: JSON request and response lines over a unix stream socket.

A client writes one JSON object per line and reads one JSON object per line
back, in order, as long as it keeps the connection open::

    -> {"cmd": "status"}
    <- {"ok": true, "result": {...}}
    -> {"cmd": "rekey", "group": "nope"}
    <- {"ok": false, "error": "unknown group 'nope'; known: ospfv2-area0"}

A request that is not JSON, not an object, names no or an unknown command,
lacks a field or fails gets ``ok: false`` and an ``error`` in words; the
daemon and the connection stay up. A line over :data:`MAX_LINE` octets ends
the connection after its error response. The socket file is mode 0600:
whoever can use it can roll and evict keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_LINE",
    "ControlError",
    "ControlServer",
    "Handler",
    "request",
    "require_str",
]

MAX_LINE = 64 * 1024  # octets of one request line

#: A command: takes the request object, returns a JSON-ready result.
Handler = Callable[[Mapping[str, Any]], Any]


class ControlError(Exception):
    """A request the daemon refuses; the message is sent back as ``error``."""


def require_str(request: Mapping[str, Any], key: str) -> str:
    """The string field ``key`` of a request, or a :class:`ControlError` naming it."""
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ControlError(f"{request.get('cmd')!s}: field {key!r} must be a non-empty string")
    return value


class ControlServer:
    """Serves ``commands`` on a unix socket at ``path``."""

    def __init__(
        self,
        path: Path,
        commands: Mapping[str, Handler],
        on_request: Callable[[str, bool, str], None] | None = None,
    ) -> None:
        """``on_request(cmd, ok, error)`` is told of every request (for the event log)."""
        self.path = path
        self.commands = dict(commands)
        self.on_request = on_request
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) with mode 0600 and serve."""
        _clear_stale(self.path)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_LINE
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        """Stop serving and remove the socket file."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def handle_line(self, line: bytes) -> dict[str, Any]:
        """Answer one request line (also used directly by tests)."""
        cmd = "?"
        try:
            try:
                request = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ControlError(f"request is not JSON: {exc}") from None
            if not isinstance(request, dict):
                raise ControlError('request must be a JSON object such as {"cmd": "status"}')
            raw = request.get("cmd")
            if not isinstance(raw, str):
                raise ControlError(f'request needs a "cmd"; known: {", ".join(self.commands)}')
            cmd = raw
            handler = self.commands.get(cmd)
            if handler is None:
                raise ControlError(f"unknown command {cmd!r}; known: {', '.join(self.commands)}")
            result = handler(request)
        except ControlError as exc:
            self._tell(cmd, False, str(exc))
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a handler bug must not take the daemon down
            error = f"internal error: {type(exc).__name__}: {exc}"
            self._tell(cmd, False, error)
            return {"ok": False, "error": error}
        self._tell(cmd, True, "")
        return {"ok": True, "result": result}

    def _tell(self, cmd: str, ok: bool, error: str) -> None:
        if self.on_request is not None:
            self.on_request(cmd, ok, error)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial.strip():
                        return
                    line = exc.partial  # a last request without its newline
                except asyncio.LimitOverrunError:
                    error = f"request line longer than {MAX_LINE} octets"
                    self._tell("?", False, error)
                    writer.write(_encode({"ok": False, "error": error}))
                    await writer.drain()
                    return
                if line.strip():
                    writer.write(_encode(self.handle_line(line)))
                    await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def _encode(response: dict[str, Any]) -> bytes:
    return json.dumps(response, default=str).encode() + b"\n"


def _clear_stale(path: Path) -> None:
    """Remove a socket file no process serves; refuse to touch anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"control socket {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: left over from a killed process
        return
    finally:
        probe.close()
    raise OSError(f"control socket {path} is in use by another process")


def request(path: Path, message: Mapping[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to the control socket at ``path``; return the response object.

    Raises :class:`OSError` when nothing listens there and
    :class:`ControlError` when the answer is not a JSON object.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(message).encode() + b"\n")
        buffer = b""
        while not buffer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    try:
        response = json.loads(buffer)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ControlError(f"{path}: the daemon's answer is not JSON: {buffer[:80]!r}") from None
    if not isinstance(response, dict):
        raise ControlError(f"{path}: the daemon's answer is not a JSON object")
    return response
