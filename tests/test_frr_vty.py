"""testbed.frr_vty: FRR's vtysh-to-daemon protocol over a unix socket.

The unit tests serve the protocol from a thread on a real unix socket
(command + NUL in; output + ``00 00 00 status`` out); the root test asks a
real ospfd and checks the answer against vtysh's.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mrkm.sinks.frr_vty import MAX_REPLY, VtyError, vty_show


class FakeDaemon:
    """Answers each connection's one command with ``chunks`` (sent one by one)."""

    def __init__(self, path: Path, chunks: Sequence[bytes], close_early: bool = False) -> None:
        self.path, self.chunks, self.close_early = path, chunks, close_early
        self.commands: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            command = b""
            while not command.endswith(b"\0"):
                command += conn.recv(4096)
            self.commands.append(command)
            # The client may hang up mid-reply (a runaway reply): that is its right.
            with contextlib.suppress(OSError):
                for chunk in self.chunks:
                    conn.sendall(chunk)
                if not self.close_early:
                    conn.recv(1)  # wait for the client to hang up

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def vty(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "ospfd.vty"


def test_output_up_to_the_terminator_is_the_answer(vty: Path) -> None:
    daemon = FakeDaemon(vty, [b'{"neighbors":{}}\n', b"\0\0\0\0"])
    assert json.loads(vty_show(vty, "show ip ospf neighbor json")) == {"neighbors": {}}
    assert daemon.commands == [b"show ip ospf neighbor json\0"]
    daemon.close()


def test_a_terminator_split_across_reads_still_ends_the_reply(vty: Path) -> None:
    daemon = FakeDaemon(vty, [b"line\n\0", b"\0", b"\0\0"])
    assert vty_show(vty, "show version") == "line\n"
    daemon.close()


def test_a_refused_command_is_an_error_with_the_daemon_text(vty: Path) -> None:
    daemon = FakeDaemon(vty, [b"% [OSPF] Unknown command: show bogus\n\0\0\0\x02"])
    with pytest.raises(VtyError, match=r"status 2\): % \[OSPF\] Unknown command"):
        vty_show(vty, "show bogus")
    daemon.close()


def test_a_reply_cut_short_is_an_error(vty: Path) -> None:
    daemon = FakeDaemon(vty, [b"half an ans"], close_early=True)
    with pytest.raises(VtyError, match="closed before the end"):
        vty_show(vty, "show ip ospf neighbor json")
    daemon.close()


def test_a_runaway_reply_is_cut_off(vty: Path) -> None:
    daemon = FakeDaemon(vty, [b"x" * (MAX_REPLY + 65536)])
    with pytest.raises(VtyError, match="exceeds"):
        vty_show(vty, "show ip ospf database")
    daemon.close()


def test_a_daemon_that_is_not_there_is_an_oserror(vty: Path) -> None:
    with pytest.raises(FileNotFoundError):
        vty_show(vty, "show ip ospf neighbor json")


def test_a_silent_daemon_times_out(vty: Path) -> None:
    daemon = FakeDaemon(vty, [])
    with pytest.raises(TimeoutError):
        vty_show(vty, "show ip ospf neighbor json", timeout=0.2)
    daemon.close()


@pytest.mark.parametrize("command", ["show a\nconfigure terminal", "show\0x"])
def test_commands_are_one_line(vty: Path, command: str) -> None:
    with pytest.raises(ValueError, match="one line"):
        vty_show(vty, command)


@pytest.mark.root
def test_real_ospfd_answers_as_vtysh_does(tmp_path: Path) -> None:
    from testbed.router import json_documents
    from tests.frr_support import frr_lab, start_frr

    with frr_lab(tmp_path, "vt") as net:
        routers = [net.add_router(n) for n in ("r1", "r2")]
        net.link("r1", "r2")
        frr = start_frr(routers[0], routers[0].interfaces, routers[0].interfaces)
        ours = json.loads(vty_show(frr.vty / "ospfd.vty", "show ip ospf json"))
        theirs = json_documents(frr.vtysh("show ip ospf json"))[0]
        assert ours["routerId"] == theirs["routerId"] == routers[0].loopback
        assert ours["areas"].keys() == theirs["areas"].keys()  # timers come and go; areas stay
        v3 = json.loads(vty_show(frr.vty / "ospf6d.vty", "show ipv6 ospf6 neighbor json"))
        assert v3 == {"neighbors": []}  # r2 runs no daemon: ospf6d is up and alone
        with pytest.raises(VtyError, match="Unknown command"):
            vty_show(frr.vty / "ospfd.vty", "configure terminal")  # VIEW_NODE: show only
        frr.stop_daemon("ospfd")
        with pytest.raises(OSError):
            vty_show(frr.vty / "ospfd.vty", "show ip ospf json")
        assert frr.neighbors()[0] is None  # the sampler's view of a daemon that is down
