"""A small network-namespace lab for root tests of real routers with real GCKS and GMs.

Until the Mininet testbed exists, the sink tests build their routers with
plain ``ip netns``: every name they create starts with a per-run prefix, every
process is started by the lab and stopped by PID, and :meth:`Lab.close`
removes every namespace in reverse order (use the ``lab`` context manager).

Layout::

    <p>mgmt:  bridge "mgmt0" 10.61.0.254/24, the GCKS listens there
      |  veth "mg" in each router namespace, 10.61.0.N/24: the
      |  out-of-band management network (registration and rekeys)
    <p>r1 --- <p>r2 --- <p>r3 ...   veth links "<a>-<b>", 10.60.L.0/24 and fd00:60:L::/64

Rekeys are multicast on the management bridge (no PIM needed there); each
GM joins the rekey group on its ``mg`` interface.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mrkm.runtime.pem import private_key_pem, write_new_file
from testbed.processes import Proc, Procs, events_of, read_events, wait_until

PSK_HEX = "6d726b6d2d6c61622d70736b2d303132333435363738396162"
MGMT_NET = "10.61.0"
GCKS_ADDR = f"{MGMT_NET}.254"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, failing loudly with its stderr."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


@dataclass
class Router:
    """One router namespace: its name, number, links and management address."""

    name: str
    netns: str
    number: int
    workdir: Path
    interfaces: list[str] = field(default_factory=list)

    @property
    def mgmt_address(self) -> str:
        return f"{MGMT_NET}.{self.number}"

    @property
    def loopback(self) -> str:
        return f"10.255.60.{self.number}"

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside the router's namespace."""
        return sh("ip", "netns", "exec", self.netns, *cmd, check=check)


class Lab:
    """Namespaces, links, a management LAN, and the MRKM processes on it."""

    def __init__(self, prefix: str, workdir: Path) -> None:
        self.prefix, self.workdir = prefix, workdir
        self.routers: dict[str, Router] = {}
        self.namespaces: list[str] = []
        self.procs = Procs(workdir)
        self.links = 0
        self.mgmt_ns = f"{prefix}mgmt"

    def start(self) -> None:
        """Create the management namespace and its bridge."""
        self._netns(self.mgmt_ns)
        sh("ip", "-n", self.mgmt_ns, "link", "add", "mgmt0", "type", "bridge")
        sh(
            "ip",
            "-n",
            self.mgmt_ns,
            "link",
            "set",
            "mgmt0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        )
        sh("ip", "-n", self.mgmt_ns, "addr", "add", f"{GCKS_ADDR}/24", "dev", "mgmt0")
        sh("ip", "-n", self.mgmt_ns, "link", "set", "mgmt0", "up")

    def _netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def add_router(self, name: str) -> Router:
        """A router namespace with forwarding on and a management interface ``mg``."""
        number = len(self.routers) + 1
        netns = f"{self.prefix}{name}"
        self._netns(netns)
        router = Router(name, netns, number, self.workdir / name)
        router.workdir.mkdir(parents=True, exist_ok=True)
        router.exec(
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        )
        sh("ip", "-n", netns, "addr", "add", f"{router.loopback}/32", "dev", "lo")
        peer = f"mg{number}"
        sh(
            "ip",
            "link",
            "add",
            "mg",
            "netns",
            netns,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            self.mgmt_ns,
        )
        sh("ip", "-n", self.mgmt_ns, "link", "set", peer, "master", "mgmt0", "up")
        sh("ip", "-n", netns, "addr", "add", f"{router.mgmt_address}/24", "dev", "mg")
        sh("ip", "-n", netns, "link", "set", "mg", "up")
        self.routers[name] = router
        return router

    def link(self, a: str, b: str) -> tuple[str, str]:
        """A point-to-point veth link between routers ``a`` and ``b``; returns both names."""
        self.links += 1
        ra, rb = self.routers[a], self.routers[b]
        ia, ib = f"{a}-{b}", f"{b}-{a}"
        sh(
            "ip",
            "link",
            "add",
            ia,
            "netns",
            ra.netns,
            "type",
            "veth",
            "peer",
            "name",
            ib,
            "netns",
            rb.netns,
        )
        for router, ifname in ((ra, ia), (rb, ib)):
            sh(
                "ip",
                "-n",
                router.netns,
                "addr",
                "add",
                f"10.60.{self.links}.{router.number}/24",
                "dev",
                ifname,
            )
            sh(
                "ip",
                "-n",
                router.netns,
                "-6",
                "addr",
                "add",
                f"fd00:60:{self.links}::{router.number}/64",
                "dev",
                ifname,
                "nodad",
            )
            sh("ip", "-n", router.netns, "link", "set", ifname, "up")
            router.interfaces.append(ifname)
        return ia, ib

    # -- MRKM processes ------------------------------------------------------------------

    def start_gcks(self, groups: Sequence[dict[str, Any]], members: Sequence[str]) -> Proc:
        """A GCKS on the management bridge, authorizing ``members`` for every group."""
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = self.workdir / "gcks.key"
        write_new_file(key, private_key_pem(ed25519.Ed25519PrivateKey.generate()), 0o600)
        config = {
            "gcks": {
                "identity": "gcks.mrkm",
                "listen": f"{GCKS_ADDR}:848",
                "rekey_interface": "mgmt0",
                "signing_key": str(key),
                "state": str(self.workdir / "gcks-state.json"),
            },
            "groups": [
                {"psk": PSK_HEX, "members": [{"id": m} for m in members], **g} for g in groups
            ],
        }
        path = self.workdir / "gcks.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = self.procs.start(
            "gcks",
            "gcks",
            "--config",
            str(path),
            "--log",
            str(self.workdir / "gcks.jsonl"),
            "--control",
            str(self.workdir / "gcks.sock"),
            prefix=("ip", "netns", "exec", self.mgmt_ns),
        )
        wait_until(
            lambda: events_of(self.events("gcks"), "process_started") != [], 15, "the GCKS to start"
        )
        return proc

    def start_gm(
        self,
        router: Router,
        groups: Sequence[str],
        sinks: Sequence[dict[str, Any]],
        rekey_groups: Sequence[str] = ("239.192.0.1:848",),
    ) -> Proc:
        """A GM inside ``router``'s namespace, registering over the management LAN."""
        identity = f"{router.name}.mrkm"
        config = {
            "gm": {
                "identity": identity,
                "gcks": f"{GCKS_ADDR}:848",
                "groups": list(groups),
                "psk": PSK_HEX,
                "interface": "mg",
                "rekey_groups": list(rekey_groups),
                "retransmit_initial": 0.5,
                "retry_delay": 1,
                "sinks": list(sinks),
            }
        }
        path = router.workdir / "gm.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.procs.start(
            f"gm-{router.name}",
            "gm",
            "--config",
            str(path),
            "--log",
            str(self.workdir / f"gm-{router.name}.jsonl"),
            prefix=("ip", "netns", "exec", router.netns),
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        """The event log of ``gcks`` or ``gm-<router>``."""
        return read_events(self.workdir / f"{name}.jsonl")

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process by PID, then delete every namespace (reverse order)."""
        try:
            self.procs.stop_all()
        finally:
            for name in reversed(self.namespaces):
                sh("ip", "netns", "delete", name, check=False)


@contextlib.contextmanager
def lab(workdir: Path, tag: str) -> Iterator[Lab]:
    """A lab whose names start with ``mk<tag><pid % 1000>``; always cleaned up."""
    prefix = f"mk{tag}{os.getpid() % 1000}"
    the_lab = Lab(prefix, workdir)
    try:
        the_lab.start()
        yield the_lab
    finally:
        the_lab.close()
