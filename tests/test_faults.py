"""The timeline player: which commands each action runs where, and the faults it records.

The network is a recording fake (the player is the layer above
:class:`testbed.network.Network`); the real commands run in the root tests
of ``tests/test_run_scenario.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from testbed.faults import Player
from testbed.scenario import Action, ScenarioError
from topologies.addressing import assign
from topologies.generators import ring


class FakeProcess:
    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.calls: list[str] = []

    def stop(self) -> None:
        self.calls.append("stop")

    def start(self) -> None:
        self.calls.append("start")

    def restart(self) -> None:
        self.calls.append("restart")

    def rekey(self, group: str) -> dict[str, Any]:
        self.calls.append(f"rekey {group}")
        return {"group": group, "message_id": 7}

    def control(self, message: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(f"{message['cmd']} {message['group']} {message['member']}")
        return {}


class FakeRouter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def stop_daemon(self, daemon: str) -> None:
        self.calls.append(f"stop {daemon}")

    def start_daemon(self, daemon: str) -> None:
        self.calls.append(f"start {daemon}")


class FakeNet:
    def __init__(self) -> None:
        self.topology = assign(ring(4))
        names = [r.name for r in self.topology.routers]
        self.gms = {n: FakeProcess(f"{n}.mrkm") for n in names}
        self.routers = {n: FakeRouter() for n in names}
        self.gcks = FakeProcess("gcks")
        self.commands: list[tuple[str, str]] = []

    def run(self, node: str, *argv: str, stdin: str | None = None) -> str:
        self.commands.append((node, " ".join(argv)))
        return ""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def play(player: Player, do: str, **args: Any) -> str:
    return player.play(Action(0, do, args))


def test_one_way_loss_drops_only_leaving_that_end_and_is_replaced_then_removed() -> None:
    net = FakeNet()
    player = Player(net, Clock())
    play(player, "loss", link=["r1", "r2"], percent=10, **{"from": "r1"})
    assert {node for node, _ in net.commands} == {"r1"}
    assert all("--probability 0.1000 -j DROP" in c for _, c in net.commands)
    assert sorted(c.split()[2] for _, c in net.commands) == ["FORWARD", "OUTPUT"]
    net.commands.clear()
    play(player, "loss", link=["r1", "r2"], percent=0, **{"from": "r1"})
    assert [c.split()[0] for _, c in net.commands] == ["iptables", "iptables"]
    assert all(c.startswith("iptables -D") for _, c in net.commands)
    (record,) = player.finish()
    assert record["kind"] == "loss" and record["targets"] == ["r1"]
    assert record["percent"] == 10 and record["until"] > record["t"]


def test_access_loss_touches_only_the_gm_interface_of_every_router() -> None:
    net = FakeNet()
    play(Player(net, Clock()), "access-loss", percent=20)
    assert sorted(node for node, _ in net.commands) == ["r1", "r2", "r3", "r4"]
    assert all(c.startswith("iptables -A FORWARD -o gm0") for _, c in net.commands)


def test_partition_cuts_exactly_the_links_across_and_heal_restores_them() -> None:
    net = FakeNet()
    player = Player(net, Clock())
    message = play(player, "partition", routers=["r1", "r2"])
    downs = sorted(net.commands)
    # ring r1-r2-r3-r4-r1: the cut links are r2-r3 and r4-r1, both ends each
    assert [node for node, _ in downs] == ["r1", "r2", "r3", "r4"]
    assert all(c.startswith("ip link set") and c.endswith("down") for _, c in downs)
    assert "2 routers cut off (4 interfaces down)" in message
    net.commands.clear()
    play(player, "heal")
    assert sorted(net.commands) == sorted((n, c[: -len("down")] + "up") for n, c in downs)
    (record,) = player.finish()
    assert record["kind"] == "partition" and record["targets"] == ["r1", "r2"]
    with pytest.raises(ScenarioError, match="no open partition"):
        play(player, "heal")


def test_partition_with_mgmt_also_cuts_the_management_links() -> None:
    net = FakeNet()
    play(Player(net, Clock()), "partition", routers=["r3"], mgmt=True)
    assert ("r3", "ip link set mgmt down") in net.commands


def test_process_actions_reach_the_right_process_and_record_faults() -> None:
    net = FakeNet()
    player = Player(net, Clock())
    play(player, "kill-gm", router="r2")
    play(player, "start-gm", router="r2")
    play(player, "restart-gcks")
    play(player, "restart-daemon", router="r3", daemon="ospfd")
    play(player, "evict", router="r4", group="ospfv2-area0")
    play(player, "rekey", group="ospfv2-area0")
    assert net.gms["r2"].calls == ["stop", "start"]
    assert net.gcks.calls == [
        "stop",
        "restart",
        "evict ospfv2-area0 r4.mrkm",
        "rekey ospfv2-area0",
    ]
    assert net.routers["r3"].calls == ["stop ospfd", "start ospfd"]
    assert [r["message_id"] for r in player.rekeys] == [7]
    kinds = [f["kind"] for f in player.finish()]
    assert kinds == ["gm_down", "gcks_restart", "daemon_restart", "evict"]


def test_unknown_names_are_refused_before_anything_runs() -> None:
    net = FakeNet()
    player = Player(net, Clock())
    with pytest.raises(ScenarioError, match="no GM on 'r9'"):
        play(player, "kill-gm", router="r9")
    with pytest.raises(ScenarioError, match="no link between r1 and r3"):
        play(player, "link-down", link=["r1", "r3"])
    with pytest.raises(ScenarioError, match="from: 'r4' is not an end"):
        play(player, "rate", link=["r1", "r2"], kbit=64, **{"from": "r4"})
    assert net.commands == [] and player.finish() == []


class FakeAttacker:
    """Stands in for testbed.attacks.Attacker (whose real runs are root tests)."""

    made: ClassVar[list[FakeAttacker]] = []

    def __init__(self, net: Any, rekey: Any, clock: Any = None) -> None:
        self.net, self.rekey, self.closed = net, rekey, False
        self.gcks_counters = {"cookies_sent": 5}
        FakeAttacker.made.append(self)

    def run(self, kind: str, args: dict[str, Any]) -> dict[str, Any]:
        if kind == "registration-flood":
            return {"attack": kind, "router": args["router"], "sent": 9, "expected": 0,
                    "rejected": {"gcks.cookies_sent": 5}, "restart_t": 150.0}  # fmt: skip
        if args.get("router") == "r9":
            raise ValueError("router: no GM on 'r9'")
        self.rekey("ospfv2-area0")
        return {"attack": kind, "router": args.get("router"), "sent": 2, "expected": 2,
                "rejected": {"gm.rekey_duplicate": 2}}  # fmt: skip

    def evicted_member(self, router: str, group: str, since: float) -> dict[str, Any]:
        return {"attack": "evicted-member", "router": router, "group": group, "sent": 1,
                "expected": 1, "rejected": {"gcks.registration_rejected.X": 1}}  # fmt: skip

    def close(self) -> None:
        self.closed = True


class LoggingGm(FakeProcess):
    def events(self) -> list[dict[str, Any]]:
        return [{"t": 1.0, "event": "rekey_rejected", "node": self.identity,
                 "group": "g", "reason": "BadLength: short"}]  # fmt: skip


def test_attacks_are_recorded_and_checked_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    import testbed.attacks

    monkeypatch.setattr(testbed.attacks, "Attacker", FakeAttacker)
    net = FakeNet()
    net.gms = {n: LoggingGm(f"{n}.mrkm") for n in net.gms}
    net.gcks.events = lambda: []  # type: ignore[attr-defined]
    player = Player(net, Clock())
    assert "2 sent, 2 counted" in play(player, "attack", kind="replay-rekey", router="r2")
    play(player, "attack", kind="registration-flood", router="r3")
    play(player, "attack", kind="evicted-member", router="r4", group="ospfv2-area0")
    with pytest.raises(ScenarioError, match="attack truncated: router: no GM on 'r9'"):
        play(player, "attack", kind="truncated", router="r9")
    (attacker,) = FakeAttacker.made
    assert net.gcks.calls == ["rekey ospfv2-area0", "evict ospfv2-area0 r4.mrkm"]
    assert [r["message_id"] for r in player.rekeys] == [7]  # the attacker's legit rekey
    records = player.finish()
    assert attacker.closed
    kinds = [(f["kind"], f["targets"]) for f in records]
    assert ("gm_restart", ["r3"]) in kinds and ("evict", ["r4"]) in kinds
    attacks = [f for f in records if f["kind"] == "attack"]
    assert [a["attack"] for a in attacks] == [
        "replay-rekey",
        "registration-flood",
        "evicted-member",
    ]
    (check,) = [f for f in records if f["kind"] == "attack_check"]
    assert check["keys_changed"] == 0 and check["gcks_counters"] == {"cookies_sent": 5}
    assert check["daemon_rejections"] == {"gm.rekey_rejected.BadLength": 4}
