"""Atomic, private GCKS state files: writes, corrupt files, restore on start."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mrkm.cli import main
from mrkm.config import GcksConfig
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.gcks_process import GcksProcess
from mrkm.runtime.persistence import StateError, StateFile, atomic_write
from tests.harness import make_group
from tests.runtime_support import free_udp_port, gcks_yaml, write_signing_key, write_yaml


def test_atomic_write_is_private_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    old = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        atomic_write(target, b"first")
        atomic_write(target, b"second")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b"good")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StateError, match=r"state\.json: cannot write state file"):
        StateFile(target).save({"version": 1})
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_missing_file_is_a_fresh_start_and_json_round_trips(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "s.json")
    assert state.load() is None
    state.save({"version": 1, "groups": {"g": {"next_message_id": 7}}})
    assert state.load() == {"version": 1, "groups": {"g": {"next_message_id": 7}}}
    assert state.saves == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"version": 1, "groups": ', "corrupt state file"),
        (b"\xff\xfe not text", "corrupt state file"),
        (b"[1, 2, 3]", "not a JSON object"),
    ],
)
def test_corrupt_state_file_names_the_file(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "broken-state.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match=reason) as info:
        StateFile(path).load()
    assert str(path) in str(info.value)


def _config(tmp_path: Path) -> GcksConfig:
    return GcksConfig(
        "gcks.mrkm",
        ("127.0.0.1", free_udp_port()),
        (make_group(3, name="g1"),),
        signing_key=write_signing_key(tmp_path / "gcks.key"),
        state=tmp_path / "state.json",
    )


def test_state_that_does_not_restore_names_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config.state is not None
    config.state.write_text(json.dumps({"version": 1, "groups": {"g1": {"rekey_spi": "00"}}}))
    with pytest.raises(StateError, match=r"state\.json: corrupt state file: KeyError"):
        GcksProcess(config, EventLog(None, "gcks.mrkm"), signals=False).build()
    config.state.write_text(json.dumps({"version": 99, "groups": {}}))
    with pytest.raises(StateError, match="unknown GCKS state version"):
        GcksProcess(config, EventLog(None, "gcks.mrkm"), signals=False).build()


def test_saved_state_is_restored_by_a_new_process(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = GcksProcess(config, EventLog(None, "gcks.mrkm"), signals=False)
    core = first.build()
    assert first.restored is False
    first.core.rekey("g1", 1_800_000_000.0, "manual")
    first.core.rekey("g1", 1_800_000_001.0, "manual")
    first.before_stop(0.0)  # what a stop (or any step) does: save if the version changed
    assert config.state is not None
    assert stat.S_IMODE(config.state.stat().st_mode) == 0o600
    second = GcksProcess(config, EventLog(None, "gcks.mrkm"), signals=False)
    second.build()
    assert second.restored is True
    assert second.core.snapshot() == first.core.snapshot()
    assert core is not second.core


def test_cli_refuses_a_corrupt_state_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_signing_key(tmp_path / "gcks.key")
    (tmp_path / "state.json").write_text("{not json")
    config = gcks_yaml(["r1.mrkm"], free_udp_port(), "239.255.1.1", free_udp_port())
    config["gcks"] |= {"signing_key": "gcks.key", "state": "state.json"}
    path = write_yaml(tmp_path / "gcks.yaml", config)
    code = main(["gcks", "--config", str(path), "--log", str(tmp_path / "log.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1
    assert str(tmp_path / "state.json") in err and "corrupt state file" in err
