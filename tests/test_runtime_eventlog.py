"""The JSON-lines event log: one event per line, ``t``/``event``/``node`` first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mrkm.protocol import events as ev
from mrkm.runtime.eventlog import EventLog, format_record
from mrkm.runtime.events import ProcessStarted, StateRestored


def test_record_is_the_event_json_plus_node() -> None:
    event = ev.RekeySent(1_800_000_000.1234567, "g1", 4, (5,), 467, 3, "periodic", 1)
    record = format_record(event, "gcks.mrkm")
    assert list(record)[:3] == ["t", "event", "node"]
    assert record == event.to_json() | {"node": "gcks.mrkm"}
    assert record["t"] == 1_800_000_000.123457 and record["key_ids"] == (5,)


def test_file_log_appends_one_parsable_line_per_event(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    for round_ in range(2):  # a restarted process appends to the same file
        log = EventLog(path, "r1.mrkm")
        log.write(ProcessStarted(1.0 + round_, "gm", 42, "0.1.0", "127.0.0.1:1"))
        log.write(ev.RekeyAccepted(2.0 + round_, "g1", 7, (3,), sa="ab" * 16))
        # flushed line by line: readable before close (kill -9 loses nothing written)
        assert len(path.read_text().splitlines()) == 2 * (round_ + 1)
        log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in lines] == ["process_started", "rekey_accepted"] * 2
    assert all(r["node"] == "r1.mrkm" for r in lines)
    assert lines[1] == {
        "t": 2.0,
        "event": "rekey_accepted",
        "node": "r1.mrkm",
        "group": "g1",
        "message_id": 7,
        "key_ids": [3],
        "new_rekey_sa": False,
        "sa": "ab" * 16,
    }


def test_dash_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    log = EventLog("-", "gcks.mrkm")
    log.write(StateRestored(3.0, "/var/lib/mrkm/state.json", {"g1": 9}))
    log.close()
    out = capsys.readouterr().out
    assert json.loads(out) == {
        "t": 3.0,
        "event": "state_restored",
        "node": "gcks.mrkm",
        "path": "/var/lib/mrkm/state.json",
        "next_message_ids": {"g1": 9},
    }


def test_memory_log_keeps_records() -> None:
    log = EventLog(None, "x")
    log.write(ev.DatagramDropped(1.0, "DecodeError: short", "1.2.3.4:5"))
    assert log.records == [
        {
            "t": 1.0,
            "event": "datagram_dropped",
            "node": "x",
            "reason": "DecodeError: short",
            "source": "1.2.3.4:5",
        }
    ]
