"""An in-memory network on virtual time for one GCKS and N GMs (STYLE.md item 9).

Datagrams travel through a fake network with a fixed one-way delay and
seeded random loss per delivery; multicast to a group's rekey address
reaches every GM, each copy lost independently. The test advances ``now``
to the next timer or delivery, so runs are fast, exact and reproducible.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ed25519

from mrkm.config import GcksConfig, GmConfig, GroupConfig, MemberConfig
from mrkm.protocol.credentials import Identity, LocalCredentials, PeerTrust
from mrkm.protocol.gcks import KeyServer
from mrkm.protocol.gm import GroupMember

GCKS_ADDR = ("10.0.0.1", 848)
PSK = bytes(range(32))
T0 = 1_800_000_000.0


def gm_name(i: int) -> str:
    return f"r{i}.mrkm"


def make_group(n: int, **overrides: object) -> GroupConfig:
    values: dict[str, object] = {
        "name": "ospfv2-area0",
        "lifetime": 60.0,
        "rekey_margin": 15.0,
        "atd": 2,
        "dtd": 4,
        "copies": (0.0, 0.25, 0.5, 1.0, 2.0),
        "psk": PSK,
        "members": tuple(MemberConfig(gm_name(i)) for i in range(n)),
    }
    values.update(overrides)
    return GroupConfig(**values)  # type: ignore[arg-type]


@dataclass(order=True)
class _Delivery:
    at: float
    seq: int
    data: bytes = field(compare=False)
    src: tuple[str, int] = field(compare=False)
    dst: tuple[str, int] = field(compare=False)


class Harness:
    """One GCKS and ``n`` GMs on a lossy fake network."""

    def __init__(
        self,
        n: int,
        loss: float = 0.0,
        seed: int = 1,
        delay: float = 0.001,
        group: GroupConfig | None = None,
        gm_overrides: dict[str, object] | None = None,
    ) -> None:
        self.rand = random.Random(seed)
        self.now = T0
        self.loss = loss
        self.delay = delay
        self.group = group or make_group(n)
        self.gcks_config = GcksConfig("gcks.mrkm", GCKS_ADDR, (self.group,))
        self.signer = ed25519.Ed25519PrivateKey.from_private_bytes(self.rand.randbytes(32))
        self.gcks = KeyServer(self.gcks_config, self.signer, self.rand.randbytes, self.now)
        self.gms: dict[tuple[str, int], GroupMember] = {}
        for i in range(n):
            self.add_gm(i, gm_overrides or {})
        self._queue: list[_Delivery] = []
        self._seq = 0
        self.events: list[object] = []
        self.drop_filter: Callable[[bytes, tuple[str, int], tuple[str, int]], bool] | None = None

    def add_gm(self, i: int, overrides: dict[str, object]) -> GroupMember:
        addr = (f"10.1.{i // 250}.{i % 250 + 1}", 848)
        config = GmConfig(gm_name(i), GCKS_ADDR, (self.group.name,), psk=PSK, **overrides)  # type: ignore[arg-type]
        local = LocalCredentials(Identity.fqdn(gm_name(i)), psk=PSK)
        trust = PeerTrust(psks={Identity.fqdn("gcks.mrkm"): PSK})
        gm = GroupMember(
            config, local, trust, random.Random(self.rand.random()).randbytes, self.now
        )
        self.gms[addr] = gm
        return gm

    def _send(self, data: bytes, src: tuple[str, int], dst: tuple[str, int]) -> None:
        targets = list(self.gms) if dst[0] == self.group.rekey_address else [dst]
        for target in targets:
            if self.loss and self.rand.random() < self.loss:
                continue
            if self.drop_filter is not None and self.drop_filter(data, src, target):
                continue
            self._seq += 1
            heapq.heappush(
                self._queue, _Delivery(self.now + self.delay, self._seq, data, src, target)
            )

    def _flush(self) -> None:
        for data, dst in self.gcks.datagrams_to_send(self.now):
            self._send(data, GCKS_ADDR, dst)
        for addr, gm in self.gms.items():
            for data, dst in gm.datagrams_to_send(self.now):
                self._send(data, addr, dst)
        self.events += self.gcks.events()
        for gm in self.gms.values():
            self.events += gm.events()

    def run_until(self, end: float) -> None:
        """Advance virtual time to ``end``, processing every timer and delivery."""
        while True:
            self._flush()
            timers = [
                t
                for t in [self.gcks.next_timer(), *(g.next_timer() for g in self.gms.values())]
                if t is not None
            ]
            next_delivery = self._queue[0].at if self._queue else None
            candidates = [t for t in [min(timers, default=None), next_delivery] if t is not None]
            if not candidates or min(candidates) > end:
                self.now = end
                return
            self.now = max(self.now, min(candidates))
            while self._queue and self._queue[0].at <= self.now:
                d = heapq.heappop(self._queue)
                if d.dst == GCKS_ADDR:
                    self.gcks.receive(d.data, d.src, self.now)
                elif d.dst in self.gms:
                    self.gms[d.dst].receive(d.data, d.src, self.now)
            if self.gcks.next_timer() is not None and self.gcks.next_timer() <= self.now:  # type: ignore[operator]
                self.gcks.handle_timer(self.now)
            for gm in self.gms.values():
                t = gm.next_timer()
                if t is not None and t <= self.now:
                    gm.handle_timer(self.now)
