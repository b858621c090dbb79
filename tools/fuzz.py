"""Fuzzing of MRKM's decoders and of the GCKS and GM receive paths (``make fuzz``).

Every target is a function of one byte string. It may raise only MRKM's own
errors (:class:`mrkm.errors.MrkmError`); the sans-IO cores' ``receive`` must
not raise at all. Anything else is a *failure*, counted once per
(exception type, innermost MRKM frame).

Targets (``--list``):

* the decoders: the whole message, a payload chain from any first payload
  type (every payload codec, GSA and KD included), WrappedKey;
* SK open (RFC 7296 §3.14) with the right keys and a mutated body, for
  AES-GCM and AES-CBC + HMAC;
* GSA_REKEY open (RFC 9838 §2.4.1) with the right Rekey SA and signature key;
* ``KeyServer.receive`` with no session, with a half-open IKE SA whose
  GSA_AUTH request carries fuzzed plaintext sealed with the real SK keys,
  and with a registered member receiving arbitrary datagrams;
* ``GroupMember.receive`` expecting the IKE_SA_INIT response, expecting the
  GSA_AUTH response (fuzzed plaintext sealed with the real SK keys), and as
  a member receiving GSA_REKEYs whose fuzzed plaintext is signed by the real
  GCKS key and sealed with the real Rekey SA, or raw mutations of one;
* the routing digest verifiers: OSPFv2 (RFC 5709), OSPFv3 trailer
  (RFC 7166) and AH (RFC 4302).

States are built on virtual time with :mod:`tests.harness` and rebuilt when
an input moved them away (for example a fuzzed rekey that was accepted).

Two engines:

* ``hypothesis`` (default, no extra package): random bytes and structured
  mutations (flip, cut, insert, overwrite integers, splice) of valid seeds,
  for ``--budget`` seconds per target; memory is traced with ``tracemalloc``
  and its growth after warm-up reported;
* ``atheris`` (``pip install atheris``): libFuzzer with Python coverage
  feedback, one child process per target seeded with the same corpus;
  libFuzzer's RSS after start-up and at the end are reported.

``PYTHONPATH=. .venv/bin/python tools/fuzz.py --budget 60`` writes a table and
``results/fuzz/<UTC>/fuzz.json``; the exit code is 1 if any target failed or
grew beyond ``--max-growth-mb``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hmac as stdlib_hmac
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mrkm.crypto import routing_ah, routing_ospf, sk
from mrkm.crypto.rekey_auth import sign_rekey_auth
from mrkm.errors import MrkmError
from mrkm.protocol.gcks import KeyServer
from mrkm.protocol.gm import GmState
from mrkm.protocol.ikesa import IkeSa, SaState
from mrkm.protocol.protect import sk_prefix
from mrkm.protocol.rekey import RekeySa, open_rekey
from mrkm.wire import (
    FLAG_INITIATOR,
    FLAG_RESPONSE,
    HEADER_LEN,
    EncryptedPayload,
    IkeHeader,
    WrappedKey,
    decode_chain,
    decode_message,
)
from mrkm.wire.registry import EncrId, ExchangeType, IntegId, PayloadType

__all__ = [
    "TARGETS",
    "FuzzReport",
    "Target",
    "fuzz_atheris",
    "fuzz_hypothesis",
    "inputs",
    "main",
    "mutate",
]

GROUP = "ospfv2-area0"
Runner = Callable[[bytes], None]


@dataclass
class Target:
    """One fuzz target: ``build()`` returns (runner, seeds) for a fresh state."""

    name: str
    doc: str
    build: Callable[[], tuple[Runner, list[bytes]]]


@dataclass
class FuzzReport:
    """What one target's run found."""

    target: str
    engine: str
    seconds: float = 0.0
    examples: int = 0
    rebuilds: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # key -> hex of a smallest input
    memory_after_warmup_kib: float = 0.0
    memory_end_kib: float = 0.0
    memory_peak_kib: float = 0.0
    coverage: int | None = None  # libFuzzer "cov" (atheris engine only)

    @property
    def growth_kib(self) -> float:
        """Traced (or RSS) memory at the end minus after warm-up."""
        return self.memory_end_kib - self.memory_after_warmup_kib


# -- states on virtual time -----------------------------------------------------------


class _World:
    """One GCKS and one GM, stepped by hand through a registration."""

    def __init__(self, seed: int = 7) -> None:
        # Imported here: the harness lives with the tests, used only to build states.
        from tests.harness import GCKS_ADDR, Harness

        self.h = Harness(1, seed=seed)
        self.gcks_addr = GCKS_ADDR
        self.gm_addr, self.gm = next(iter(self.h.gms.items()))
        self.gcks: KeyServer = self.h.gcks
        self.now = self.h.now

    def gm_out(self) -> bytes:
        self.gm.handle_timer(self.now) if self.gm.next_timer() is not None else None
        out = self.gm.datagrams_to_send(self.now)
        assert out, "the GM sent nothing"
        return out[-1][0]

    def gcks_out(self) -> bytes:
        out = self.gcks.datagrams_to_send(self.now)
        assert out, "the GCKS sent nothing"
        return out[-1][0]

    def sa_init(self) -> tuple[bytes, bytes]:
        """Run IKE_SA_INIT: (request, response); the GM then expects it."""
        self.gm.handle_timer(self.now)
        request = self.gm.datagrams_to_send(self.now)[-1][0]
        self.gcks.receive(request, self.gm_addr, self.now)
        return request, self.gcks_out()

    def register(self) -> dict[str, bytes]:
        """A complete registration; every datagram of it, by name."""
        init_req, init_resp = self.sa_init()
        self.gm.receive(init_resp, self.gcks_addr, self.now)
        auth_req = self.gm.datagrams_to_send(self.now)[-1][0]
        self.ike_sa = self.gm_sa()
        self.gcks.receive(auth_req, self.gm_addr, self.now)
        auth_resp = self.gcks_out()
        self.gm.receive(auth_resp, self.gcks_addr, self.now)
        assert self.gm.state(GROUP) is GmState.GM_MEMBER, self.gm.state(GROUP)
        self.gcks.rekey(GROUP, self.now)
        rekey = next(d for d, _ in self.gcks.datagrams_to_send(self.now + 10) if d[18] == 41)
        self.gcks.events(), self.gm.events()
        return {
            "init_req": init_req,
            "init_resp": init_resp,
            "auth_req": auth_req,
            "auth_resp": auth_resp,
            "rekey": rekey,
        }

    def gm_sa(self) -> IkeSa:
        init = self.gm._groups[GROUP].initiator
        assert init is not None and init.sa is not None
        return init.sa

    def rekey_sa(self) -> RekeySa:
        sa = self.gm._groups[GROUP].rekey_sa
        assert sa is not None
        return sa


def _sk_body(raw: bytes) -> tuple[int, bytes, bytes]:
    """(first inner type, AAD, sealed body) of a message whose last payload is SK."""
    msg = decode_message(raw)
    sealed = msg.payloads[-1]
    assert isinstance(sealed, EncryptedPayload)
    return sealed.first_inner, raw[: len(raw) - len(sealed.body)], sealed.body


def _plain_of(raw: bytes, suite: sk.SkSuite, key_e: bytes, key_a: bytes) -> bytes:
    """``first inner type || plaintext`` of a protected message: a seed."""
    first, aad, body = _sk_body(raw)
    return bytes([first]) + sk.open(suite, key_e, key_a, aad, body)


def _seal(header: IkeHeader, data: bytes, suite: sk.SkSuite, key_e: bytes, key_a: bytes) -> bytes:
    """Protect fuzzed plaintext: ``data[0]`` is the first inner type, the rest the chain."""
    first, plain = (data[0], data[1:]) if data else (0, b"")
    aad = sk_prefix(header, first, suite.body_len(len(plain)))
    return aad + sk.seal(suite, key_e, key_a, aad, plain, bytes(suite.iv_len))


def _payload_offsets(plain: bytes) -> list[int]:
    """Offsets of each generic payload header in a well-formed chain."""
    offsets, at = [], 0
    while at + 4 <= len(plain):
        offsets.append(at)
        at += max(4, int.from_bytes(plain[at + 2 : at + 4], "big"))
    return offsets


# -- targets: decoders and crypto ---------------------------------------------------------


def _decoder_seeds() -> list[bytes]:
    w = _World()
    return list(w.register().values())


def _build_message() -> tuple[Runner, list[bytes]]:
    return (lambda data: (decode_message(data), None)[1]), _decoder_seeds()


def _build_chain() -> tuple[Runner, list[bytes]]:
    w = _World()
    sent = w.register()
    sa = w.ike_sa
    suite = sa.suite.sk_suite()
    k = sa.keys
    seeds = [
        _plain_of(sent["auth_req"], suite, k.sk_ei, k.sk_ai),
        _plain_of(sent["auth_resp"], suite, k.sk_er, k.sk_ar),
        bytes([decode_message(sent["init_req"]).payloads[0].payload_type])
        + sent["init_req"][HEADER_LEN:],
    ]

    def run(data: bytes) -> None:
        if data:
            decode_chain(data[0], data[1:])

    return run, seeds


def _build_wrapped_key() -> tuple[Runner, list[bytes]]:
    seed = bytes(8) + bytes(range(40))
    return (lambda data: (WrappedKey.decode(data), None)[1]), [seed]


_SUITES = [
    sk.SkSuite(EncrId.ENCR_AES_GCM_16, 256),
    sk.SkSuite(EncrId.ENCR_AES_CBC, 256, IntegId.AUTH_HMAC_SHA2_256_128),
]


def _build_sk_open() -> tuple[Runner, list[bytes]]:
    """``data[0]`` picks the suite and the mode: a mutated body, or a plaintext
    (Pad Length octet included) sealed with a valid tag/ICV so that the checks
    after the ICV are reached too."""
    keys = [(bytes(range(s.encr_key_len)), bytes(range(s.integ_key_len))) for s in _SUITES]
    aad = bytes(16)  # shorter than an IKE header: seal() then skips its Length check
    seeds = [
        bytes([i]) + sk.seal(s, ke, ka, aad, b"inner payloads" * 5, bytes(s.iv_len))
        for i, (s, (ke, ka)) in enumerate(zip(_SUITES, keys, strict=True))
    ]
    seeds += [bytes([2 + i]) + b"inner payloads" * 5 + bytes([3, 0, 0, 3]) for i in range(2)]

    def run(data: bytes) -> None:
        if not data:
            return
        i = data[0] % len(_SUITES)
        suite, (key_e, key_a) = _SUITES[i], keys[i]
        body = data[1:]
        if data[0] % 4 >= 2:  # seal the raw plaintext, Pad Length as given
            iv = bytes(suite.iv_len)
            if suite.is_aead:
                body = iv + AESGCM(key_e[:-4]).encrypt(key_e[-4:] + iv, body, aad)
            else:
                body = body[: len(body) - len(body) % 16]
                enc = Cipher(algorithms.AES(key_e), modes.CBC(iv)).encryptor()
                ct = iv + enc.update(body) + enc.finalize()
                body = ct + stdlib_hmac.new(key_a, aad + ct, "sha256").digest()[:16]
        sk.open(suite, key_e, key_a, aad, body)

    return run, seeds


def _build_rekey_open() -> tuple[Runner, list[bytes]]:
    w = _World()
    sent = w.register()
    sa = w.rekey_sa()
    group = w.gm._groups[GROUP]
    from mrkm.crypto.signatures import load_public_key_der

    assert group.auth_key is not None
    verifier = load_public_key_der(group.auth_key)
    return (lambda data: (open_rekey(sa, data, verifier, group.signature_alg), None)[1]), [
        sent["rekey"]
    ]


# -- targets: the key server ---------------------------------------------------------------


def _build_gcks_any() -> tuple[Runner, list[bytes]]:
    """A GCKS with a registered member and a half-open SA receives anything."""
    w = _World()
    sent = w.register()
    w2 = _World(seed=8)  # a second GM's IKE_SA_INIT leaves a half-open SA
    w.gcks.receive(w2.sa_init()[0], w.gm_addr, w.now)
    w.gcks.datagrams_to_send(w.now)

    def run(data: bytes) -> None:
        w.gcks.receive(data, w.gm_addr, w.now)
        w.gcks.datagrams_to_send(w.now)
        w.gcks.events()

    return run, list(sent.values())


def _build_gcks_auth() -> tuple[Runner, list[bytes]]:
    """A GCKS expecting GSA_AUTH; fuzzed plaintext sealed with the GM's SK_ei/SK_ai."""
    state: dict[str, Any] = {}

    def fresh() -> None:
        w = _World()
        _, resp = w.sa_init()
        w.gm.receive(resp, w.gcks_addr, w.now)
        auth_req = w.gm.datagrams_to_send(w.now)[-1][0]
        sa = w.gm_sa()
        state.update(w=w, sa=sa, auth_req=auth_req)

    fresh()
    sa = state["sa"]
    seed = _plain_of(state["auth_req"], sa.suite.sk_suite(), sa.keys.sk_ei, sa.keys.sk_ai)

    def run(data: bytes) -> None:
        w, sa = state["w"], state["sa"]
        header = sa.header(ExchangeType.GSA_AUTH, FLAG_INITIATOR, 1)
        raw = _seal(header, data, sa.suite.sk_suite(), sa.keys.sk_ei, sa.keys.sk_ai)
        w.gcks.receive(raw, w.gm_addr, w.now)
        w.gcks.datagrams_to_send(w.now), w.gcks.events()
        session = w.gcks._sessions.get(sa.spi_i)
        if session is None or session.responder.state is not SaState.RESP_EXPECT_AUTH_REQUEST:
            run.rebuilds += 1  # type: ignore[attr-defined]
            fresh()  # answered (accepted or refused): the SA is spent

    run.rebuilds = 0  # type: ignore[attr-defined]
    return run, [seed]


# -- targets: the group member ------------------------------------------------------------


def _build_gm_sa_init() -> tuple[Runner, list[bytes]]:
    """A GM expecting the IKE_SA_INIT response receives mutations of the real one."""
    state: dict[str, Any] = {}

    def fresh() -> bytes:
        w = _World()
        _, resp = w.sa_init()
        state["w"] = w
        return resp

    seed = fresh()

    def run(data: bytes) -> None:
        w = state["w"]
        w.gm.receive(data, w.gcks_addr, w.now)
        w.gm.datagrams_to_send(w.now), w.gm.events()
        if w.gm.state(GROUP) is not GmState.GM_EXPECT_SA_INIT_RESPONSE:
            run.rebuilds += 1  # type: ignore[attr-defined]
            fresh()

    run.rebuilds = 0  # type: ignore[attr-defined]
    return run, [seed]


def _build_gm_auth() -> tuple[Runner, list[bytes]]:
    """A GM expecting GSA_AUTH's response; fuzzed plaintext sealed with SK_er/SK_ar."""
    state: dict[str, Any] = {}

    def fresh() -> bytes:
        w = _World()
        _, resp = w.sa_init()
        w.gm.receive(resp, w.gcks_addr, w.now)
        auth_req = w.gm.datagrams_to_send(w.now)[-1][0]
        w.gcks.receive(auth_req, w.gm_addr, w.now)
        state.update(w=w, sa=w.gm_sa())
        return w.gcks_out()

    good = fresh()
    sa = state["sa"]
    seed = _plain_of(good, sa.suite.sk_suite(), sa.keys.sk_er, sa.keys.sk_ar)

    def run(data: bytes) -> None:
        w, sa = state["w"], state["sa"]
        header = sa.header(ExchangeType.GSA_AUTH, FLAG_RESPONSE, 1)
        raw = _seal(header, data, sa.suite.sk_suite(), sa.keys.sk_er, sa.keys.sk_ar)
        w.gm.receive(raw, w.gcks_addr, w.now)
        w.gm.datagrams_to_send(w.now), w.gm.events()
        if w.gm.state(GROUP) is not GmState.GM_EXPECT_AUTH_RESPONSE:
            run.rebuilds += 1  # type: ignore[attr-defined]
            fresh()

    run.rebuilds = 0  # type: ignore[attr-defined]
    return run, [seed]


def _build_gm_rekey() -> tuple[Runner, list[bytes]]:
    """A member receives GSA_REKEYs with fuzzed plaintext, signed and sealed for real."""
    state: dict[str, Any] = {}

    def fresh() -> bytes:
        w = _World()
        sent = w.register()
        sa = w.rekey_sa()
        state.update(w=w, sa=sa, msg_id=w.gm._groups[GROUP].last_message_id + 1)
        first, _, body = _sk_body(sent["rekey"])
        plain = sk.open(sa.suite, sa.gsk_e, sa.gsk_a, sent["rekey"][: HEADER_LEN + 4], body)
        # Drop the AUTH payload; the runner signs whatever plaintext comes in.
        *_, last = _payload_offsets(plain)
        before = bytearray(plain[:last])
        offsets = _payload_offsets(bytes(before))
        if offsets:
            before[offsets[-1]] = PayloadType.AUTH
        return bytes([first]) + bytes(before)

    seed = fresh()

    def run(data: bytes) -> None:
        w, sa = state["w"], state["sa"]
        state["msg_id"] += 1
        header = sa.header(state["msg_id"])
        first, before = (data[0], data[1:]) if data else (0, b"")
        any_prefix = sk_prefix(header, first, 0)
        auth = sign_rekey_auth(w.h.signer, any_prefix[:HEADER_LEN], any_prefix[HEADER_LEN:], before)
        plain = before + auth
        prefix = sk_prefix(header, first, sa.suite.body_len(len(plain)))
        raw = prefix + sk.seal(sa.suite, sa.gsk_e, sa.gsk_a, prefix, plain, bytes(8))
        w.gm.receive(raw, w.gcks_addr, w.now)
        w.gm.datagrams_to_send(w.now), w.gm.events()
        group = w.gm._groups[GROUP]
        if group.rekey_sa is not sa or w.gm.state(GROUP) is not GmState.GM_MEMBER:
            run.rebuilds += 1  # type: ignore[attr-defined]
            fresh()

    run.rebuilds = 0  # type: ignore[attr-defined]
    return run, [seed]


def _build_gm_any() -> tuple[Runner, list[bytes]]:
    """A member receives raw mutations of real datagrams (GSA_REKEY among them)."""
    w = _World()
    sent = w.register()

    def run(data: bytes) -> None:
        w.gm.receive(data, w.gcks_addr, w.now)
        w.gm.datagrams_to_send(w.now), w.gm.events()

    return run, list(sent.values())


# -- targets: routing digests -------------------------------------------------------------

_SRC6 = bytes.fromhex("fe800000000000000000000000000001")


def _build_ospfv2() -> tuple[Runner, list[bytes]]:
    hello = bytes([2, 1, 0, 44]) + bytes(20) + bytes(20)
    keys = {7: (IntegId.ROUTING_HMAC_SHA256, bytes(32)), 8: (IntegId.ROUTING_KEYED_MD5, bytes(16))}
    seeds = [
        routing_ospf.ospfv2_sign(i, hello, key_id=k, key=key, sequence=5)
        for k, (i, key) in keys.items()
    ]
    return (lambda data: (routing_ospf.ospfv2_verify(data, keys), None)[1]), seeds


def _build_ospfv3() -> tuple[Runner, list[bytes]]:
    hello = bytes([3, 1, 0, 36]) + bytes(12) + bytes([0, 0, 0, 0, 0, 0, 0x04, 0]) + bytes(12)
    keys = {3: (IntegId.ROUTING_HMAC_SHA256, bytes(32))}
    seed = routing_ospf.ospfv3_sign(
        IntegId.ROUTING_HMAC_SHA256, hello, sa_id=3, key=bytes(32), sequence=9, src_ipv6=_SRC6
    )
    return (lambda data: (routing_ospf.ospfv3_verify(data, _SRC6, keys), None)[1]), [seed]


def _build_ah() -> tuple[Runner, list[bytes]]:
    integ, key = IntegId.AUTH_HMAC_SHA2_256_128, bytes(32)
    pim = bytes([0x20, 0, 0, 0]) + bytes(10)
    ip = bytes([0x45, 0, 0, 20 + len(pim), 0, 1, 0, 0, 1, 103, 0, 0, 10, 0, 0, 1, 224, 0, 0, 13])
    seed = routing_ah.ah_protect_ipv4(integ, key, ip + pim, spi=0x100, sequence=1)
    return (lambda data: (routing_ah.ah_verify(integ, key, data), None)[1]), [seed]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("decode-message", "decode_message: header and payload chain", _build_message),
        Target("decode-chain", "decode_chain, any first payload (every codec)", _build_chain),
        Target("wrapped-key", "WrappedKey.decode (RFC 9838 §4.5.3)", _build_wrapped_key),
        Target("sk-open", "SK open, AES-GCM and AES-CBC+HMAC, right keys", _build_sk_open),
        Target("rekey-open", "open_rekey with the right Rekey SA and GCKS key", _build_rekey_open),
        Target("gcks-any", "KeyServer.receive: registered, one SA half open", _build_gcks_any),
        Target("gcks-auth", "KeyServer.receive: GSA_AUTH, fuzzed plaintext", _build_gcks_auth),
        Target("gm-sa-init", "GroupMember.receive: IKE_SA_INIT response", _build_gm_sa_init),
        Target("gm-auth", "GroupMember.receive: GSA_AUTH, fuzzed plaintext", _build_gm_auth),
        Target("gm-rekey", "GroupMember.receive: signed GSA_REKEY, fuzzed", _build_gm_rekey),
        Target("gm-any", "GroupMember.receive: member, raw datagrams", _build_gm_any),
        Target("ospfv2-verify", "OSPFv2 cryptographic authentication (RFC 5709)", _build_ospfv2),
        Target("ospfv3-verify", "OSPFv3 authentication trailer (RFC 7166)", _build_ospfv3),
        Target("ah-verify", "AH ICV of a PIM packet (RFC 4302)", _build_ah),
    ]
}


# -- mutations ------------------------------------------------------------------------------


_OPS = ("flip", "cut", "insert", "u8", "u16", "u32", "splice")
_INTERESTING = (0, 1, 2, 3, 4, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF)


def mutate(seeds: list[bytes], index: int, rnd: random.Random) -> bytes:
    """Seed ``index`` with 1-6 mutations: flips, cuts, inserts, integer overwrites, splices."""
    data = bytearray(seeds[index % len(seeds)])
    for _ in range(rnd.randint(1, 6)):
        op = rnd.choice(_OPS)
        pos = rnd.randrange(max(1, len(data)))
        if op == "flip":
            if data:
                data[pos] ^= 1 << rnd.randrange(8)
        elif op == "cut":
            del data[pos : pos + rnd.randint(1, 16)]
        elif op == "insert":
            data[pos:pos] = rnd.randbytes(rnd.randint(1, 16))
        elif op == "splice":
            other = rnd.choice(seeds)
            data[pos:] = other[rnd.randrange(max(1, len(other))) :]
        else:
            width = {"u8": 1, "u16": 2, "u32": 4}[op]
            value = rnd.choice(_INTERESTING) if rnd.random() < 0.5 else rnd.getrandbits(8 * width)
            data[pos : pos + width] = (value & ((1 << 8 * width) - 1)).to_bytes(width, "big")
    return bytes(data)


def inputs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Hypothesis inputs: raw bytes, the seeds, and seeded mutations of them.

    A mutation is drawn as (seed index, PRNG seed) and applied in plain Python:
    two draws per example instead of dozens keeps the fuzzer fast.
    """
    mutations = st.builds(
        lambda i, s: mutate(seeds, i, random.Random(s)),
        st.integers(0, len(seeds) - 1),
        st.integers(0, 2**64 - 1),
    )
    return st.one_of(st.binary(max_size=512), st.sampled_from(seeds), mutations, mutations)


def _failure_key(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/mrkm/" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}: {str(exc)[:80]}"


def _record(report: FuzzReport, runner: Runner, data: bytes) -> None:
    """Run one input; a non-MRKM exception is a finding, kept with a short input."""
    report.examples += 1
    try:
        runner(data)
    except MrkmError:
        pass
    except Exception as exc:  # the finding itself
        key = _failure_key(exc)
        old = report.failures.get(key)
        if old is None or len(old) > 2 * len(data.hex()):
            report.failures[key] = data.hex()


#: Inputs the memory soak feeds at least, whatever the time budget.
SOAK_MIN_INPUTS = 100


def fuzz_hypothesis(target: Target, budget: float, soak: float = 0.25) -> FuzzReport:
    """Run one target for ``budget`` seconds; never raises for findings.

    The first ``1 - soak`` of the budget is Hypothesis-driven. The rest is a
    memory soak: seeded mutations fed straight to the same runner under
    ``tracemalloc`` (which would slow Hypothesis itself down tenfold); the
    traced memory after a fifth of the soak and at its end give the growth.
    """
    report = FuzzReport(target.name, "hypothesis")
    runner, seeds = target.build()
    start = time.monotonic()
    deadline = start + budget * (1 - soak)

    def one(data: bytes) -> None:
        if time.monotonic() <= deadline:
            _record(report, runner, data)

    test = settings(
        max_examples=500,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(given(inputs(seeds))(one))
    while time.monotonic() < deadline:
        test()
    rnd = random.Random(report.examples)
    soak_start = time.monotonic()
    soak_end = soak_start + budget * soak
    warm_at = soak_start + (soak_end - soak_start) / 5
    gc.collect()
    tracemalloc.start()
    try:
        warmed, fed = False, 0
        # Time-boxed, but never fewer than SOAK_MIN_INPUTS (a fifth before the
        # warm-up reading): on a loaded host a short soak would measure nothing.
        while (now := time.monotonic()) < soak_end or fed < SOAK_MIN_INPUTS:
            if not warmed and now >= warm_at and fed >= SOAK_MIN_INPUTS // 5:
                gc.collect()
                report.memory_after_warmup_kib = tracemalloc.get_traced_memory()[0] / 1024
                warmed = True
            _record(report, runner, mutate(seeds, rnd.randrange(len(seeds)), rnd))
            fed += 1
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    report.memory_end_kib = current / 1024
    report.memory_peak_kib = peak / 1024
    report.seconds = time.monotonic() - start
    report.rebuilds = getattr(runner, "rebuilds", 0)
    return report


# -- atheris engine (coverage-guided, one child process per target) ------------------------


def _atheris_child(name: str, budget: float, corpus: str) -> None:
    import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]

    runner, _ = TARGETS[name].build()

    def one(data: bytes) -> None:
        with contextlib.suppress(MrkmError):
            runner(data)

    atheris.instrument_all()
    args = [sys.argv[0], f"-max_total_time={int(budget)}", "-rss_limit_mb=2048", corpus]
    atheris.Setup(args, one)
    atheris.Fuzz()


_STAT = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+).*?rss: (\d+)Mb", re.M)


def fuzz_atheris(target: Target, budget: float) -> FuzzReport:
    """Run one target under libFuzzer in a child; its stderr carries the statistics."""
    report = FuzzReport(target.name, "atheris")
    _, seeds = target.build()
    with tempfile.TemporaryDirectory(prefix="mrkm-fuzz-") as corpus:
        for i, seed in enumerate(seeds):
            Path(corpus, f"seed{i}").write_bytes(seed)
        cmd = [sys.executable, __file__, "--engine", "atheris", "--child", target.name]
        cmd += ["--budget", str(budget), "--corpus", corpus]
        start = time.monotonic()
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=budget + 120, check=False
        )
        report.seconds = time.monotonic() - start
    stats = _STAT.findall(proc.stderr)
    if stats:
        first = next((s for s in stats if s[1] == "INITED"), stats[0])
        report.examples, report.coverage = int(stats[-1][0]), int(stats[-1][2])
        report.memory_after_warmup_kib = int(first[3]) * 1024.0
        report.memory_end_kib = int(stats[-1][3]) * 1024.0
        report.memory_peak_kib = max(int(s[3]) for s in stats) * 1024.0
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if "Error" in ln or "Exception" in ln]
        report.failures[(tail or ["exit " + str(proc.returncode)])[-1][:160]] = ""
    return report


# -- command line ------------------------------------------------------------------------


def _row(r: FuzzReport) -> str:
    cov = "" if r.coverage is None else f" cov {r.coverage}"
    return (
        f"{r.target:15} {r.examples:9} ex {r.seconds:6.1f} s {r.rebuilds:5} rebuilds "
        f"{len(r.failures):3} failures  mem {r.memory_after_warmup_kib / 1024:7.2f} -> "
        f"{r.memory_end_kib / 1024:7.2f} MiB (peak {r.memory_peak_kib / 1024:.2f}){cov}"
    )


def main(argv: list[str] | None = None) -> int:
    """``tools/fuzz.py --help``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per target")
    parser.add_argument("--target", action="append", help="a target name (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    parser.add_argument("--max-growth-mb", type=float, default=16.0, help="memory growth bound")
    parser.add_argument("--out", default="results/fuzz", help="folder for fuzz.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _atheris_child(args.child, args.budget, args.corpus)
        return 0
    if args.list:
        for t in TARGETS.values():
            print(f"{t.name:15} {t.doc}")
        return 0
    names = args.target or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    if args.engine == "atheris":
        try:
            import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]  # noqa: F401
        except ImportError:
            parser.error("the atheris engine needs `pip install atheris`")
    reports = []
    bad = False
    for name in names:
        engine = fuzz_atheris if args.engine == "atheris" else fuzz_hypothesis
        report = engine(TARGETS[name], args.budget)
        reports.append(report)
        print(_row(report), flush=True)
        for key, data in report.failures.items():
            print(f"    FAILURE {key}\n      input {data[:200]}")
        bad |= bool(report.failures) or report.growth_kib > args.max_growth_mb * 1024
    out = Path(args.out) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "engine": args.engine,
        "budget_s": args.budget,
        "max_growth_mb": args.max_growth_mb,
        "targets": [{**r.__dict__, "growth_kib": round(r.growth_kib, 1)} for r in reports],
    }
    (out / "fuzz.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written: {out / 'fuzz.json'}")
    return 1 if bad else 0


if __name__ == "__main__":
    if os.path.dirname(os.path.abspath(__file__)) in sys.path[:1]:
        sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
