"""The control socket: good requests, and bad ones that get an error and change nothing."""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from mrkm.config import GcksConfig, GmConfig
from mrkm.protocol.gcks import KeyServer
from mrkm.runtime.control import MAX_LINE, ControlError, ControlServer
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.gcks_process import GcksProcess
from mrkm.runtime.gm_process import GmProcess
from tests.harness import PSK, make_group
from tests.runtime_support import free_udp_port, rekey_group, start_daemon, stop_daemons


def _server() -> ControlServer:
    def boom(request: Any) -> Any:
        raise RuntimeError("handler bug")

    def refuse(request: Any) -> Any:
        raise ControlError("no, because")

    return ControlServer(
        Path("/nonexistent"), {"ok": lambda r: {"n": 1}, "boom": boom, "no": refuse}
    )


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json", "request is not JSON"),
        (b"\xff\xfe", "request is not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"command": "ok"}', 'request needs a "cmd"; known: ok, boom, no'),
        (b'{"cmd": 5}', 'request needs a "cmd"'),
        (b'{"cmd": "launch"}', "unknown command 'launch'; known: ok, boom, no"),
        (b'{"cmd": "no"}', "no, because"),
        (b'{"cmd": "boom"}', "internal error: RuntimeError: handler bug"),
    ],
)
def test_bad_requests_get_an_error_response(line: bytes, error: str) -> None:
    server = _server()
    response = server.handle_line(line)
    assert response["ok"] is False
    assert error in response["error"]
    assert server.handle_line(b'{"cmd": "ok"}') == {"ok": True, "result": {"n": 1}}


async def _exchange(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    """Send ``lines`` on one connection; read one answer per line (or until EOF)."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * MAX_LINE)
    answers = []
    try:
        for line in lines:
            writer.write(line + b"\n")
            await writer.drain()
            raw = await asyncio.wait_for(reader.readline(), 5)
            if not raw:
                break
            answers.append(json.loads(raw))
    finally:
        writer.close()
    return answers


def _gcks(tmp_path: Path) -> GcksProcess:
    config = GcksConfig(
        "gcks.mrkm",
        ("127.0.0.1", free_udp_port()),
        (make_group(2, name="g1", rekey_address=rekey_group(), rekey_port=free_udp_port()),),
        rekey_interface="lo",
    )
    return GcksProcess(config, EventLog(None, "gcks.mrkm"), tmp_path / "c.sock", signals=False)


def test_gcks_control_errors_keep_the_daemon_and_the_connection_up(tmp_path: Path) -> None:
    gcks = _gcks(tmp_path)
    has_evict = hasattr(KeyServer, "evict")

    async def scenario() -> list[dict[str, Any]]:
        task = await start_daemon(gcks)
        try:
            path = tmp_path / "c.sock"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            answers = await _exchange(
                path,
                [
                    b'{"cmd": "rekey"}',
                    b'{"cmd": "rekey", "group": "nope"}',
                    b'{"cmd": "rekey", "group": 7}',
                    b'{"cmd": "evict", "group": "g1"}',
                    b'{"cmd": "evict", "group": "g1", "member": "r0.mrkm"}',
                    b"{{{",
                    b'{"cmd": "rekey", "group": "g1"}',
                    b'{"cmd": "status"}',
                ],
            )
            # An over-long line: an error, then the server closes that connection.
            long = await _exchange(path, [b'{"cmd": "status", "pad": "' + b"x" * MAX_LINE + b'"}'])
            again = await _exchange(path, [b'{"cmd": "status"}'])
            return [*answers, *long, *again]
        finally:
            await stop_daemons((gcks, task))

    answers = asyncio.run(scenario())
    assert [a["ok"] for a in answers[:4]] == [False, False, False, False]
    assert "field 'group' must be a non-empty string" in answers[0]["error"]
    assert answers[1]["error"] == "unknown group 'nope'; known: g1"
    assert "field 'group'" in answers[2]["error"]
    assert "field 'member'" in answers[3]["error"]
    if not has_evict:
        assert answers[4] == {
            "ok": False,
            "error": "evict: this KeyServer cannot evict members yet",
        }
    assert answers[5]["ok"] is False and "not JSON" in answers[5]["error"]
    assert answers[6] == {"ok": True, "result": {"group": "g1", "message_id": 0}}
    status = answers[7]["result"]
    assert status["groups"]["g1"]["next_message_id"] == 1
    assert status["runtime"]["role"] == "gcks"
    assert answers[8] == {"ok": False, "error": f"request line longer than {MAX_LINE} octets"}
    assert answers[9]["ok"] is True
    logged = [r for r in gcks.log.records or [] if r["event"] == "control_request"]
    assert [(r["cmd"], r["ok"]) for r in logged][:4] == [
        ("rekey", False),
        ("rekey", False),
        ("rekey", False),
        ("evict", False),
    ]
    assert ("rekey", True) in [(r["cmd"], r["ok"]) for r in logged]
    assert [r["event"] for r in gcks.log.records or []][-1] == "process_stopped"


def test_gm_keys_command(tmp_path: Path) -> None:
    config = GmConfig(
        "r0.mrkm",
        ("127.0.0.1", free_udp_port()),
        ("g1",),
        psk=PSK,
        interface="lo",
        rekey_groups=((rekey_group(), free_udp_port()),),
    )
    gm = GmProcess(config, EventLog(None, "r0.mrkm"), tmp_path / "gm.sock", signals=False)

    async def scenario() -> list[dict[str, Any]]:
        task = await start_daemon(gm)
        try:
            return await _exchange(
                tmp_path / "gm.sock",
                [
                    b'{"cmd": "keys", "with_key": "yes"}',
                    b'{"cmd": "keys"}',
                    b'{"cmd": "rekey", "group": "g1"}',
                    b'{"cmd": "status"}',
                ],
            )
        finally:
            await stop_daemons((gm, task))

    answers = asyncio.run(scenario())
    assert answers[0] == {"ok": False, "error": "keys: field 'with_key' must be true or false"}
    assert answers[1] == {"ok": True, "result": {"rows": []}}  # no GCKS: nothing yet
    assert answers[2]["error"] == "unknown command 'rekey'; known: status, keys"
    assert answers[3]["result"]["groups"] == {"g1": "expect-sa-init-response"}


def test_stale_socket_is_replaced_and_others_refused(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))
    leftover.close()  # a socket file nobody listens on, as a kill -9 leaves it
    regular = tmp_path / "file.sock"
    regular.write_text("not a socket")

    async def scenario() -> None:
        server = ControlServer(stale, {"ping": lambda r: "pong"})
        await server.start()
        try:
            assert (await _exchange(stale, [b'{"cmd": "ping"}'])) == [
                {"ok": True, "result": "pong"}
            ]
            with pytest.raises(OSError, match="in use by another process"):
                await ControlServer(stale, {}).start()
        finally:
            await server.close()
        with pytest.raises(OSError, match="exists and is not a socket"):
            await ControlServer(regular, {}).start()

    asyncio.run(scenario())
    assert not stale.exists() and regular.read_text() == "not a socket"
