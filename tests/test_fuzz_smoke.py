"""CI budget of ``tools/fuzz.py``: every target briefly, plus the crashes it found.

Each target runs for about a second (Hypothesis, then a ``tracemalloc``
soak): only MRKM's own errors may escape a decoder, nothing may escape a
``receive``, and traced memory must not keep growing. ``make fuzz`` runs the
same targets with a large budget.
"""

from __future__ import annotations

import pytest

from mrkm.crypto import keywrap
from mrkm.crypto.errors import UnsupportedTransform
from mrkm.errors import MrkmError
from mrkm.keytable import KeyRow, KeyTable
from tools.fuzz import TARGETS, Target, fuzz_hypothesis, mutate

BUDGET_S = 1.0
MAX_GROWTH_KIB = 2048.0

# Found by the gm-auth target: a GSA_AUTH response whose Rekey SA policy names
# key wrap algorithm 4099. keywrap raised a bare ValueError out of
# GroupMember.receive; it now raises UnsupportedTransform (an MrkmError).
GM_AUTH_UNSUPPORTED_KWA = bytes.fromhex(
    "24270000110200000067636b732e6d726b6d330000280200000071fa03b0de30a0cb182fbd86e0e7cfdfb53e"
    "948b2071558283de03c6eea196a5340000ad06100063b5769fa0f1483f95a90d9df2f130d60f071100100000"
    "ffff0a0000010a0000010711001003500350efc00001efc000010300000c01000014800e0100030000080d00"
    "1003000000130e00000200120007300506032b65700001000400015180c901003a01075900100000ffff0000"
    "0080ffffffff075900100000ffffe0000005e00000060000000803000402000100040000003c000300010200"
    "00000c80010002800200040000011506100070b5769fa0f1483f95a90d9df2f130d60f000100580000000000"
    "000000d2c977bef038bae2b414cd8476378908a00fa27f929365b1f41b56edf3be1e0a25d4b222d276c4941a"
    "2ab26943f46000f9b080b1215e863f2ef4aef881d9331cee6ff8c8244685ad0b261f042c2fc48fc901003901"
    "00010030000000000000000077bff50642235a81fe8cf82a04fb6976f510df6ef71f1f771255808961bca122"
    "515dbe95abcdc65e0000006800010030000000010000000049598a0da2aa42f63539633589935d5f9fef81b7"
    "ed7ef43db977f942c464546a03eedc545efc45da0002002c302a300506032b65700321000c51c67faa93d3fd"
    "677edc222df5d8346af23f780df3cb3a5f8dca3537b8cddd"
)

# Found by the gm-rekey target: a signed GSA_REKEY whose new key activates
# before the pending one (ATD 0) with a short DTD. KeyTable.install trims the
# old row to accept_end < send_end and KeyRow raises ValueError out of
# GroupMember.receive (mrkm/keytable.py, not fixed here: see the report).
GM_REKEY_DTD_BEFORE_PENDING = bytes.fromhex(
    "33340000a206100058b5769fa0f1483f95a90d9df2f130d60f071100100000ffff0a0000010a000001071100"
    "1003500350efc00001efc000010300000c01000014800e0100000000080d0000030001000400015180000200"
    "0400000001c901003a02075900100000ffff00000000ffffffff075900100000ffffe0000005e00000060000"
    "000803000402000100040000003c00030001030000000c80ffffffff020004270000ad06100070b5769fa0f1"
    "483f95a90d9df2f130d60f000100580000000000000000cf51ff98e48d5ce599fcbed143b913db367c27d046"
    "b7950bfd4d4cbd7cbe9ff54d5536efda4ff010dec208ad1477332fe3716d9a6ec59f3f9082cb98ae3e38c3da"
    "4ccfd210482d0666072fdcb98fac7ac901003902000100300000000000000000eea0e70442b59fedd76d00a6"
    "1faaac2ba5d88ebe118d81bf9a09106bd2944b76027d5f76e3734595"
)


# Open findings tracked by a strict xfail below: tolerated here so that the smoke
# run stays deterministic; delete an entry when its xfail starts to pass.
KNOWN_OPEN: dict[str, str] = {}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_lets_only_project_errors_escape(name: str) -> None:
    report = fuzz_hypothesis(TARGETS[name], BUDGET_S)
    assert report.examples > 50, f"{name} ran only {report.examples} inputs"
    known = KNOWN_OPEN.get(name)
    failures = {k: v for k, v in report.failures.items() if not (known and k.startswith(known))}
    assert not failures, failures
    assert report.growth_kib < MAX_GROWTH_KIB, f"{name} grew {report.growth_kib:.0f} KiB"


def test_the_fuzzer_reports_a_foreign_exception_and_growth() -> None:
    hoard: list[bytes] = []

    def build() -> tuple[object, list[bytes]]:
        def run(data: bytes) -> None:
            hoard.append(bytes(65536))  # grows without bound
            if len(data) > 3 and data[3] == 0x42:
                raise IndexError("a decoder bug")
            if data[:1] == b"\x01":
                raise MrkmError("a project error is fine")

        return run, [b"\x01\x02\x03\x42", b"\x00" * 8]

    report = fuzz_hypothesis(Target("self-test", "", build), 1.0)  # type: ignore[arg-type]
    assert any(key.startswith("IndexError") for key in report.failures)
    assert all(not key.startswith("MrkmError") for key in report.failures)
    assert report.growth_kib > MAX_GROWTH_KIB


def test_mutate_is_reproducible_and_changes_the_seed() -> None:
    import random

    seeds = [bytes(range(64))]
    first = [mutate(seeds, 0, random.Random(s)) for s in range(20)]
    assert first == [mutate(seeds, 0, random.Random(s)) for s in range(20)]
    assert sum(m != seeds[0] for m in first) >= 15


def test_unsupported_key_wrap_algorithm_is_a_project_error() -> None:
    with pytest.raises(UnsupportedTransform, match="4099") as info:
        keywrap.kwk_len(4099)
    assert isinstance(info.value, MrkmError) and isinstance(info.value, ValueError)
    assert info.value.notify_type == 14  # NO_PROPOSAL_CHOSEN


def test_gm_survives_auth_response_with_unsupported_key_wrap() -> None:
    run, _ = TARGETS["gm-auth"].build()
    run(GM_AUTH_UNSUPPORTED_KWA)  # raised ValueError before the fix


def test_gm_survives_rekey_activating_before_the_pending_key() -> None:
    run, _ = TARGETS["gm-rekey"].build()
    run(GM_REKEY_DTD_BEFORE_PENDING)


def test_key_table_trims_a_pending_row_without_inverting_it() -> None:
    table = KeyTable()
    t = 1000.0
    # The current key starts sending at t+5 (ATD 5) ...
    table.install(KeyRow("g", "ospfv2", 1, "md5", bytes(16), t, t + 5, t + 60, t + 60), 4)
    # ... and a successor that sends at once (ATD 0) with DTD 2 supersedes it.
    changed = table.install(KeyRow("g", "ospfv2", 2, "md5", bytes(16), t, t, t + 60, t + 60), 2)
    old = next(r for r in changed if r.key_id == 1)
    assert old.send_end <= old.accept_end
    assert old.send_end == t + 5  # never sends: its window closed before it opened
    assert old.accept_end == t + 5  # accepted no later than its (empty) send end
