"""Real processes on loopback: one GCKS, 50 GMs, rekeys, and a GCKS killed with -9.

Every check reads the JSON-lines event logs only, as the testbed's
collectors do (STYLE.md item 15). Timers are short: each key lives 10 s and
its successor is sent 6 s before it expires, so a rekey goes out every 4 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.runtime_support import (
    Procs,
    free_udp_port,
    gcks_yaml,
    gm_yaml,
    of,
    read_events,
    rekey_group,
    wait_until,
    write_signing_key,
    write_yaml,
)

N_GMS = 50


def _accepted(events: list[dict[str, Any]]) -> dict[int, list[int]]:
    """Message ID -> key ids of every rekey a GM accepted."""
    return {e["message_id"]: e["key_ids"] for e in of(events, "rekey_accepted")}


@pytest.mark.slow
def test_50_gms_follow_rekeys_across_a_gcks_kill_9(tmp_path: Path) -> None:
    port, group, rekey_port = free_udp_port(), rekey_group(), free_udp_port()
    names = [f"r{i}.mrkm" for i in range(N_GMS)]
    write_signing_key(tmp_path / "gcks.key")
    config = gcks_yaml(names, port, group, rekey_port, signing_key="gcks.key", state="state.json")
    write_yaml(tmp_path / "gcks.yaml", config)
    for name in names:
        write_yaml(tmp_path / f"{name}.yaml", gm_yaml(name, port, group, rekey_port))
    gcks_log = tmp_path / "gcks.jsonl"
    gcks_args = ["gcks", "--config", "gcks.yaml", "--log", "gcks.jsonl", "--control", "gcks.sock"]
    procs = Procs(tmp_path)

    def gm_events() -> dict[str, list[dict[str, Any]]]:
        return {name: read_events(tmp_path / f"{name}.jsonl") for name in names}

    def all_accepted(message_ids: list[int]) -> bool:
        logs = gm_events()
        return all(set(message_ids) <= set(_accepted(events)) for events in logs.values())

    try:
        first = procs.start("gcks-1", *gcks_args)
        wait_until(lambda: of(read_events(gcks_log), "process_started") != [], 10, "the GCKS")
        for name in names:
            procs.start(name, "gm", "--config", f"{name}.yaml", "--log", f"{name}.jsonl")
        wait_until(
            lambda: len(of(read_events(gcks_log), "member_registered")) >= N_GMS,
            40,
            f"{N_GMS} registrations",
            interval=0.2,
        )
        all_in = max(e["t"] for e in of(read_events(gcks_log), "member_registered"))

        def rekeys_after(t: float) -> list[int]:
            sent = of(read_events(gcks_log), "rekey_sent")
            return [e["message_id"] for e in sent if e["t"] > t and e["reason"] != "heartbeat"]

        wait_until(
            lambda: len(rekeys_after(all_in)) >= 2 and all_accepted(rekeys_after(all_in)[:2]),
            20,
            "two rekeys accepted by every GM",
            interval=0.2,
        )
        first.kill9()
        killed_at = time.time()
        assert not first.alive()
        procs.start("gcks-2", *gcks_args)  # same config, state file, log and control socket
        wait_until(
            lambda: len(rekeys_after(killed_at)) >= 3 and all_accepted(rekeys_after(killed_at)[:3]),
            25,
            "three more rekeys accepted by every GM after the restart",
            interval=0.2,
        )
    finally:
        codes = procs.stop_all()

    assert codes.pop("gcks-1") == -9
    assert set(codes.values()) == {0}, codes  # everyone else stopped cleanly on SIGTERM
    gcks_events = read_events(gcks_log)
    starts = of(gcks_events, "process_started")
    assert [s["restored"] for s in starts] == [False, True]
    assert len(of(gcks_events, "process_stopped")) == 1  # the killed one never said goodbye

    # Message IDs (heartbeats use them too) and key ids continue across the crash:
    # no reuse, no gap.
    sent_all = of(gcks_events, "rekey_sent")
    ids = [e["message_id"] for e in sent_all]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    sent = [e for e in sent_all if e["reason"] != "heartbeat"]
    keys = [e["key_ids"][0] for e in sent]
    assert keys == list(range(keys[0], keys[0] + len(keys)))
    before = [e for e in sent if e["t"] < killed_at and e["t"] > all_in]
    after = [e for e in sent if e["t"] > killed_at]
    assert len(before) >= 2 and len(after) >= 3
    restored = of(gcks_events, "state_restored")[0]
    last_before = max(e["message_id"] for e in sent_all if e["t"] < killed_at)
    assert restored["next_message_ids"] == {"g1": last_before + 1}
    first_after = min(e["message_id"] for e in sent_all if e["t"] > killed_at)
    assert first_after == restored["next_message_ids"]["g1"]

    # Every GM registered exactly once and accepted every rekey sent after it registered.
    assert sorted(e["member"] for e in of(gcks_events, "member_registered")) == sorted(names)
    for name, events in gm_events().items():
        started = of(events, "registration_started")
        assert len(started) == 1, f"{name} re-registered: {started}"
        assert of(events, "repair_scheduled") == [], name
        joined = of(events, "registration_completed")[0]["t"]
        accepted = _accepted(events)
        for rekey in sent:
            if rekey["t"] > joined:
                assert accepted.get(rekey["message_id"]) == rekey["key_ids"], (name, rekey)
        assert of(events, "rekey_rejected") == [], name
