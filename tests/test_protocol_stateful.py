"""Join / rekey / evict / leave sequences, property-tested (STYLE.md item 10).

Hypothesis drives a GCKS and six GMs on the in-memory network through random
membership changes and rekeys. After every step, once the network has
settled, the group's newest key is held by exactly the current members: a
member that left or was evicted never holds a key created after it went.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mrkm.protocol.gm import GmState
from tests.harness import T0, Harness

GROUP = "ospfv2-area0"
SETTLE = 8.0  # s of virtual time: copies (2 s), the follow-up rekey, registrations


class Membership(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(6, seed=11)
        self.h.run_until(T0 + 5)
        self.addrs = list(self.h.gms)
        self.active = set(range(6))
        self.evicted: set[int] = set()
        self.gone_at: dict[int, float] = {}

    def settle(self) -> None:
        self.h.run_until(self.h.now + SETTLE)

    @rule()
    def rekey(self) -> None:
        self.h.gcks.rekey(GROUP, self.h.now)
        self.settle()

    @rule(i=st.integers(0, 5))
    def evict(self, i: int) -> None:
        if i not in self.active:
            return
        gm = self.h.gms[self.addrs[i]]
        self.h.gcks.evict(GROUP, gm.config.identity, self.h.now)
        self.active.discard(i)
        self.evicted.add(i)
        self.gone_at[i] = self.h.now
        self.settle()

    @rule(i=st.integers(0, 5))
    def leave(self, i: int) -> None:
        if i not in self.active:
            return
        self.h.gms[self.addrs[i]].leave(GROUP, self.h.now)
        self.active.discard(i)
        self.gone_at[i] = self.h.now
        self.settle()

    @rule(i=st.integers(0, 5))
    def rejoin(self, i: int) -> None:
        if i in self.active or i in self.evicted:
            return
        self.h.gms[self.addrs[i]].join(GROUP, self.h.now)
        self.active.add(i)
        self.gone_at.pop(i, None)
        self.settle()

    @rule(seconds=st.floats(1, 60))
    def wait(self, seconds: float) -> None:
        self.h.run_until(self.h.now + seconds)
        self.settle()

    @invariant()
    def newest_key_held_by_exactly_the_members(self) -> None:
        status = self.h.gcks.status(self.h.now)["groups"][GROUP]
        newest = status["key_ids"][-1]
        for i, addr in enumerate(self.addrs):
            gm = self.h.gms[addr]
            holds = any(
                r.key_id == newest and r.accepting(self.h.now) for r in gm.key_table.rows.values()
            )
            if i in self.active:
                assert gm.state(GROUP) is GmState.GM_MEMBER, (i, gm.state(GROUP))
                assert holds, f"member {i} lacks key {newest}"
            elif holds:  # only allowed for a key created before the member went
                created = max(
                    (
                        e.time
                        for e in self.h.events
                        if getattr(e, "name", "") == "rekey_sent" and newest in e.key_ids
                    ),
                    default=T0,
                )
                assert created < self.gone_at[i], f"departed {i} holds later key {newest}"
        assert sorted(status["members"]) == sorted(
            self.h.gms[self.addrs[i]].config.identity for i in self.active
        )


TestMembership = Membership.TestCase
TestMembership.settings = settings(max_examples=15, stateful_step_count=8, deadline=None)
