"""The GCKS and the GMs of a testbed network, as apps: config, start, readiness, stop by PID.

Both are ``python -m mrkm`` processes (:class:`testbed.processes.Proc`) started
inside a Mininet host through its ``prefix`` (``mnexec -da <pid>``), each with
its YAML configuration, JSON-lines event log and stderr file in the run's
workdir (STYLE.md item 14):

* :class:`GcksNode` listens for registrations on the out-of-band management
  network and sends GSA_REKEY from its rekey LAN interface into the routed
  network, where PIM carries it to every router (ARCHITECTURE.md "Bootstrap").
* :class:`GmNode` registers over its router's management interface and joins
  the rekey group on the router's GM bridge only
  (``reference/pim-local-and-tshark.md`` §3); the sinks its router names
  (``frr``, or ``bird`` per protocol) key the router's OSPFv2 and OSPFv3
  links, and its ``pim_ah`` sink keys the router's PIM AH shim
  (:class:`testbed.router.PimAhShim`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519

from mrkm.runtime.control import request
from mrkm.runtime.pem import private_key_pem, write_new_file
from testbed.processes import Proc, events_of, read_events, wait_until

__all__ = [
    "REKEY_GROUP",
    "GcksNode",
    "GmNode",
    "default_groups",
    "member_id",
    "pim_group",
]

REKEY_GROUP = "239.192.0.1"
REKEY_PORT = 848
IKE_PORT = 848
V2_GROUP = "ospfv2-area0"
V3_GROUP = "ospfv3-area0"
PIM_GROUP = "pim-sm"
#: The timer fields a PIM group copies from another group of the same run (pim_group).
TIMER_FIELDS = (
    "lifetime",
    "rekey_margin",
    "atd",
    "dtd",
    "rekey_address",
    "rekey_port",
    "copies",
    "heartbeat",
    "prime",
)


def member_id(router: str) -> str:
    """The GM identity (ID_FQDN) of ``router``'s member."""
    return f"{router}.mrkm"


def default_groups(
    atd: int = 2,
    dtd: int = 4,
    lifetime: float = 600.0,
    rekey_margin: float = 60.0,
    pim: bool = False,
) -> list[dict[str, Any]]:
    """One OSPFv2 Keyed-MD5 group and one OSPFv3 HMAC-SHA-256 group (FRR 8.4.4 can use both),
    and with ``pim`` the PIM AH group :data:`PIM_GROUP` (:func:`pim_group`).

    ATD must exceed the key convergence time (FRR's OSPFv2 switches at T on
    each router) and stay below the dead interval; ATD 2 s fits hello 1 / dead 4.
    The same ATD fits PIM under AH with hello 1 s / hold 4 s.
    """
    common = {
        "lifetime": lifetime,
        "rekey_margin": rekey_margin,
        "atd": atd,
        "dtd": dtd,
        "rekey_address": REKEY_GROUP,
        "rekey_port": REKEY_PORT,
    }
    groups: list[dict[str, Any]] = [
        {"name": V2_GROUP, "protocol": "ospfv2", "algorithm": "md5", **common},
        {"name": V3_GROUP, "protocol": "ospfv3", "algorithm": "hmac-sha-256", **common},
    ]
    if pim:
        groups.append(pim_group(groups[0]))
    return groups


def pim_group(template: Mapping[str, Any] | None = None, name: str = PIM_GROUP) -> dict[str, Any]:
    """The PIM AH group (RFC 5796: AH with HMAC-SHA-256-128) that keys every router's shim.

    Its timers (:data:`TIMER_FIELDS`) come from ``template``, another group
    of the same run, so a scenario's rollover timing applies to PIM too;
    without one: lifetime 600 s, margin 60 s, ATD 2 s, DTD 4 s. ATD must
    exceed the key convergence time, since a router that sends with a key
    its neighbor does not hold yet loses that neighbor after the hold time
    (4 s in the testbed); DTD covers the spread of the switch.
    """
    group: dict[str, Any] = {
        "name": name,
        "protocol": "pim",
        "algorithm": "hmac-sha-256",
        "lifetime": 600.0,
        "rekey_margin": 60.0,
        "atd": 2,
        "dtd": 4,
        "rekey_address": REKEY_GROUP,
        "rekey_port": REKEY_PORT,
    }
    if template is not None:
        group |= {k: template[k] for k in TIMER_FIELDS if k in template}
    return group


class _Node:
    """What the GCKS and GM apps share: a Proc, its event log, its config file."""

    name: str
    workdir: Path
    proc: Proc | None = None

    @property
    def log(self) -> Path:
        """The JSON-lines event log."""
        return self.workdir / f"{self.name}.jsonl"

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every event logged so far, or those of one ``kind``."""
        events = read_events(self.log)
        return events if kind is None else events_of(events, kind)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.alive() else None

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM by PID, SIGKILL after ``timeout``; the exit code."""
        return self.proc.stop(timeout) if self.proc is not None else None

    def check_running(self, what: str) -> None:
        """RuntimeError with the tail of its stderr if the process has exited."""
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(
                f"{self.name} exited ({self.proc.popen.returncode}) while waiting for {what}: "
                f"{self.proc.stderr().strip()[-2000:]}"
            )


class GcksNode(_Node):
    """The key server: registration on ``listen``, GSA_REKEY out of ``rekey_interface``."""

    def __init__(
        self,
        workdir: Path,
        prefix: Sequence[str],
        listen: str,
        rekey_interface: str,
        groups: Sequence[Mapping[str, Any]],
        members: Sequence[str],
        psk: str,
        multicast_ttl: int = 64,
        rekey_source: str | None = None,
    ) -> None:
        self.name = "gcks"
        self.rekey_source = rekey_source
        self.workdir, self.prefix = workdir, prefix
        self.listen, self.rekey_interface = listen, rekey_interface
        self.groups = [dict(g) for g in groups]
        self.members, self.psk, self.multicast_ttl = list(members), psk, multicast_ttl

    @property
    def control_path(self) -> Path:
        return self.workdir / "gcks.sock"

    def write_config(self) -> Path:
        """gcks.yaml and a fresh Ed25519 signing key (the state file starts empty)."""
        key = self.workdir / "gcks.key"
        key.unlink(missing_ok=True)
        write_new_file(key, private_key_pem(ed25519.Ed25519PrivateKey.generate()), 0o600)
        (self.workdir / "gcks-state.json").unlink(missing_ok=True)
        config = {
            "gcks": {
                "identity": "gcks.mrkm",
                "listen": f"{self.listen}:{IKE_PORT}",
                "rekey_interface": self.rekey_interface,
                **({"rekey_source": self.rekey_source} if self.rekey_source else {}),
                "multicast_ttl": self.multicast_ttl,
                "signing_key": str(key),
                "state": str(self.workdir / "gcks-state.json"),
            },
            "groups": [
                {"psk": self.psk, "members": [{"id": m} for m in self.members], **g}
                for g in self.groups
            ],
        }
        path = self.workdir / "gcks.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout: float = 15) -> None:
        """Start the process with a fresh key and state; wait for ``process_started``."""
        self._launch(self.write_config(), timeout)

    def restart(self, timeout: float = 15) -> None:
        """Start again after :meth:`stop` with the same signing key and persisted state.

        The GCKS restores its groups, members and keys from ``gcks-state.json``
        (``mrkm/runtime/persistence.py``), so members keep their registration.
        """
        self._launch(self.workdir / "gcks.yaml", timeout)

    def _launch(self, config: Path, timeout: float) -> None:
        self.control_path.unlink(missing_ok=True)
        starts = len(self.events("process_started"))
        self.proc = Proc(
            [
                "gcks",
                "--config",
                str(config),
                "--log",
                str(self.log),
                "--control",
                str(self.control_path),
            ],
            self.workdir,
            self.name,
            self.prefix,
        )

        def started() -> bool:
            self.check_running("its start")
            return len(self.events("process_started")) > starts

        wait_until(started, timeout, "the GCKS to start (process_started in gcks.jsonl)")

    def registered(self) -> dict[str, set[str]]:
        """{group: members registered so far} from the ``member_registered`` events."""
        out: dict[str, set[str]] = {}
        for event in self.events("member_registered"):
            out.setdefault(event["group"], set()).add(event["member"])
        return out

    def control(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """One control request; its result, or RuntimeError with the daemon's error."""
        answer = request(self.control_path, dict(message))
        if not answer.get("ok"):
            raise RuntimeError(f"GCKS {message.get('cmd')}: {answer.get('error')}")
        result = answer.get("result")
        return result if isinstance(result, dict) else {"result": result}

    def rekey(self, group: str) -> dict[str, Any]:
        """Ask for one rekey of ``group`` now; the GCKS's ``rekey_sent`` event for it."""
        message_id = int(self.control({"cmd": "rekey", "group": group})["message_id"])
        sent = [
            e
            for e in self.events("rekey_sent")
            if e["group"] == group and e["message_id"] == message_id
        ]
        if not sent:
            raise RuntimeError(f"the GCKS log lacks rekey {message_id} of {group}")
        return sent[-1]


class GmNode(_Node):
    """One router's group member with the sinks that key its router's OSPF links."""

    def __init__(
        self,
        router: str,
        workdir: Path,
        prefix: Sequence[str],
        gcks: str,
        groups: Sequence[str],
        psk: str,
        interface: str,
        sinks: Sequence[Mapping[str, Any]],
        liveness: float = 0.0,
    ) -> None:
        self.router = router
        self.name = f"gm-{router}"
        self.workdir, self.prefix, self.gcks = workdir, prefix, gcks
        self.groups, self.psk, self.interface = list(groups), psk, interface
        self.sinks = [dict(s) for s in sinks]
        self.liveness = liveness  # gm.liveness: re-register after this much silence

    @property
    def identity(self) -> str:
        return member_id(self.router)

    def write_config(self) -> Path:
        """<router>/gm.yaml."""
        config = {
            "gm": {
                "identity": self.identity,
                "gcks": f"{self.gcks}:{IKE_PORT}",
                "groups": self.groups,
                "psk": self.psk,
                "interface": self.interface,
                "rekey_groups": [f"{REKEY_GROUP}:{REKEY_PORT}"],
                "retransmit_initial": 0.5,
                "retry_delay": 1,
                "liveness": self.liveness,
                "sinks": self.sinks,
            }
        }
        folder = self.workdir / self.router
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "gm.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> None:
        """Start the process (registration is polled at the GCKS)."""
        config = self.write_config()
        self.proc = Proc(
            ["gm", "--config", str(config), "--log", str(self.log)],
            self.workdir,
            self.name,
            self.prefix,
        )

    def accepted(self, sent: Mapping[str, Any]) -> bool:
        """True once this GM accepted the GCKS's ``rekey_sent`` (same Rekey SA and Message ID)."""
        self.check_running("a rekey")
        return any(
            (e["sa"], e["message_id"]) == (sent["sa"], sent["message_id"])
            for e in self.events("rekey_accepted")
        )

    def installed(self, protocol: str, key_id: int) -> bool:
        """True once the router confirmed ``key_id`` of ``protocol``, from the
        ``router_install`` events: FRR sends with it (OSPFv2) or holds it in its key
        chain (OSPFv3); BIRD holds it (sink ``bird``, after the GM's
        ``keys_installed`` named the key for ``protocol``; BIRD itself starts
        sending with it at its activation time)."""
        word = f"ospfv2 send={key_id};" if protocol == "ospfv2" else None
        row_protocol = "pim-ah" if protocol in ("pim", "pim-ah") else protocol
        events = self.events()
        known: float | None = None  # when the GM first held key_id for protocol
        for event in events:
            if event["event"] == "keys_installed" and known is None:
                rows = event.get("rows") or []
                if any((r["protocol"], r["key_id"]) == (row_protocol, key_id) for r in rows):
                    known = event["t"]
            if event["event"] != "router_install" or not event["ok"]:
                continue
            if event.get("sink") in ("bird", "pim_ah"):
                if known is not None and event["t"] >= known and key_id in event["key_ids"]:
                    return True
                continue
            detail = str(event.get("detail", "")) + ";"
            if word is not None and word in detail:
                return True
            if word is None and "ospfv3 chain=" in detail:
                chain = detail.split("ospfv3 chain=", 1)[1].split(";", 1)[0]
                if str(key_id) in chain.split(","):
                    return True
        return False


def random_psk() -> str:
    """A fresh 32-octet group PSK, hex."""
    return os.urandom(32).hex()
