"""Numbers a scenario's assertions can name, derived from the summary and the faults.

:func:`testbed.metrics.summarize` counts every adjacency flap. A scenario
that takes links down or evicts a member expects some flaps; what must not
happen is a flap that no fault explains. A flap is *explained* when its
router or the router at the other end of its interface is a target of a
fault that acts on routing or on a router's keys (:data:`ROUTING_FAULTS`)
and was active from ``grace`` seconds before it until ``grace`` seconds
after the fault ended (the dead interval plus SPF and hello timers).

Derived numbers (all in ``summary.json``):

* ``rekeys_converged_fraction``: rekeys every expected GM accepted and
  installed, over all rekeys;
* ``key_convergence_max_s`` / ``accept_convergence_max_s``: the slowest
  router over all rekeys;
* ``ospf_flaps`` / ``pim_flaps``: flaps by protocol family;
* ``unexplained_flaps``: flaps no fault explains (the number to keep at 0);
* ``evictions`` and ``evicted_cut_off``: evicted routers, and how many of
  them lost an OSPF adjacency after their eviction (forward access
  control made visible in routing).

After attacks (``attack`` records of :mod:`testbed.faults`, which never
explain a flap), also:

* ``attacks`` and ``attack_datagrams``: attacks played, datagrams sent;
* ``attacks_rejected``: ``{reason: count}`` the daemons counted during the
  attacks (``gm.rekey_duplicate``, ``gm.rekey_rejected.<error>``,
  ``gcks.dropped.<error>``, ``gcks.registration_rejected.<notify>``,
  ``gcks.cookies_sent``, ...);
* ``attacks_uncounted``: attack datagrams with no matching rejection in the
  daemons' logs (the number to keep at 0);
* ``attacks_accepted``: registrations the attacks achieved (intruder or
  evicted member registered);
* ``keys_changed_by_attacks``: keys a GM installed with no legitimate
  registration or GCKS rekey behind them
  (:func:`unauthorized_key_changes`);
* ``flood_registrations_ok`` / ``flood_registration_s``: GMs that
  registered during a registration flood, and the slowest of them;
* ``daemon_rejections``: the whole run's rejections by reason, from every
  log (legitimate duplicate copies included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mrkm.wire.registry import NotifyType
from topologies.model import Topology

__all__ = [
    "FLAP_GRACE_S",
    "ROUTING_FAULTS",
    "daemon_rejections",
    "derived",
    "explained",
    "flap_peer",
    "unauthorized_key_changes",
]

#: Seconds around a fault in which a flap counts as its consequence: the OSPF
#: dead interval (4 s in the testbed) plus hello and SPF delays.
FLAP_GRACE_S = 10.0


def flap_peer(topology: Topology, flap: Mapping[str, Any]) -> str | None:
    """The router at the other end of the flap's interface (``neighbor`` is ``id@ifname``)."""
    ifname = str(flap.get("neighbor", "")).rpartition("@")[2]
    router = str(flap.get("router", ""))
    for link in topology.links:
        if router in (link.a, link.b) and link.interface(router) == ifname:
            return link.b if link.a == router else link.a
    return None


#: Fault kinds that may break adjacencies: links, loss, rate, partitions, routing
#: daemons, and GMs that miss keys (stopped, restarting, evicted).
ROUTING_FAULTS = frozenset(
    {
        "link_down",
        "loss",
        "rate",
        "partition",
        "daemon_down",
        "daemon_restart",
        "gm_down",
        "gm_restart",
        "evict",
    }
)


def explained(
    flap: Mapping[str, Any],
    faults: Sequence[Mapping[str, Any]],
    topology: Topology,
    grace: float = FLAP_GRACE_S,
) -> bool:
    """True if a fault active around ``flap`` touched its router or its peer.

    Only faults that act on routing or on a router's keys explain a flap
    (:data:`ROUTING_FAULTS`): loss on the GM interface, a GCKS outage or an
    attack must not break an adjacency, so a flap during one stays unexplained.
    """
    involved = {str(flap.get("router")), flap_peer(topology, flap)}
    t = float(flap["t_down"])
    for record in faults:
        if str(record.get("kind", "")) not in ROUTING_FAULTS:
            continue
        start = float(record["t"])
        until = record.get("until")
        end = float(until) if until is not None else float("inf")
        if not (start - grace <= t <= end + grace):
            continue
        targets = set(record.get("targets") or [])
        if not targets or targets & involved:
            return True
    return False


def derived(
    summary: Mapping[str, Any], faults: Sequence[Mapping[str, Any]], topology: Topology
) -> dict[str, Any]:
    """The module doc's numbers for one run."""
    count = summary.get("rekey_count") or 0
    incomplete = len(summary.get("incomplete_rekeys") or [])
    convergence = summary.get("key_convergence_ms") or {}
    install = convergence.get("install") or {}
    accept = convergence.get("accept") or {}
    flaps = list(summary.get("flaps") or [])
    evictions = [f for f in faults if f.get("kind") == "evict"]
    cut_off = {
        target
        for e in evictions
        for target in e.get("targets") or []
        if any(
            f["router"] == target
            and str(f["proto"]).startswith("ospf")
            and float(f["t_down"]) >= float(e["t"])
            for f in flaps
        )
    }
    out = {
        "rekeys_converged_fraction": round((count - incomplete) / count, 4) if count else 0.0,
        "key_convergence_max_s": (install.get("max") or 0) / 1000 if install else None,
        "accept_convergence_max_s": (accept.get("max") or 0) / 1000 if accept else None,
        "ospf_flaps": sum(1 for f in flaps if str(f["proto"]).startswith("ospf")),
        "pim_flaps": sum(1 for f in flaps if f["proto"] == "pim"),
        "unexplained_flaps": sum(1 for f in flaps if not explained(f, faults, topology)),
        "evictions": len(evictions),
        "evicted_cut_off": len(cut_off),
    }
    attacks = [f for f in faults if f.get("kind") == "attack"]
    if attacks:
        out |= _attack_numbers(attacks, [f for f in faults if f.get("kind") == "attack_check"])
    return out


def _attack_numbers(
    attacks: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The attack numbers of the module doc."""
    rejected: dict[str, int] = {}
    uncounted = 0
    for record in attacks:
        counts = record.get("rejected") or {}
        for reason, n in counts.items():
            rejected[reason] = rejected.get(reason, 0) + int(n)
        uncounted += max(0, int(record.get("expected", 0)) - sum(int(n) for n in counts.values()))
    floods = [r for r in attacks if r.get("attack") == "registration-flood"]
    check = checks[-1] if checks else {}
    return {
        "attacks": len(attacks),
        "attack_datagrams": sum(int(r.get("sent", 0)) for r in attacks),
        "attacks_rejected": dict(sorted(rejected.items())),
        "attacks_uncounted": uncounted,
        "attacks_accepted": sum(int(r.get("registered", 0)) for r in attacks),
        # no check (the run died before its end) is not "no change": None fails assertions
        "keys_changed_by_attacks": check.get("keys_changed"),
        "flood_registrations_ok": sum(1 for r in floods if r.get("legit_registered")),
        "flood_registration_s": max(
            (float(r["registration_s"]) for r in floods if "registration_s" in r), default=None
        ),
        "daemon_rejections": check.get("daemon_rejections", {}),
    }


def _reason(event: Mapping[str, Any]) -> str:
    """The error class of a rejection reason (``"BadLength: ..."`` -> ``BadLength``)."""
    return str(event.get("reason", "")).split(":")[0]


def _notify_name(value: Any) -> str:
    """A notify type's RFC name (``46`` -> ``AUTHORIZATION_FAILED``), else the value."""
    try:
        return NotifyType(int(value)).name
    except (TypeError, ValueError):
        return str(value)


def daemon_rejections(
    gcks: Sequence[Mapping[str, Any]], gms: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, int]:
    """Every rejection in the GCKS's and the GMs' event logs, counted by reason."""
    out: dict[str, int] = {}

    def add(key: str) -> None:
        out[key] = out.get(key, 0) + 1

    for e in gcks:
        if e["event"] == "datagram_dropped":
            add(f"gcks.dropped.{_reason(e)}")
        elif e["event"] == "registration_rejected":
            add(f"gcks.registration_rejected.{_reason(e)}")
    for events in gms.values():
        for e in events:
            if e["event"] == "rekey_rejected":
                add(f"gm.rekey_rejected.{_reason(e)}")
            elif e["event"] == "rekey_duplicate":
                add("gm.rekey_duplicate")
            elif e["event"] == "registration_failed":
                add(f"gm.registration_failed.{_notify_name(e.get('notify_type'))}")
    return dict(sorted(out.items()))


#: s between a GCKS ``member_registered`` and the GM's ``registration_completed``
REGISTRATION_SLACK_S = 5.0


def unauthorized_key_changes(
    gcks: Sequence[Mapping[str, Any]], gms: Mapping[str, Sequence[Mapping[str, Any]]]
) -> list[str]:
    """Every key change of a GM that no legitimate GCKS action explains, in words.

    A GM's ``keys_installed`` must come in the same step (same ``t``) as its
    ``registration_completed`` or ``rekey_accepted`` of that group; a
    ``rekey_accepted`` must match a GCKS ``rekey_sent`` on ``(sa,
    message_id)``; a ``registration_completed`` must follow a GCKS
    ``member_registered`` of that member and group within
    :data:`REGISTRATION_SLACK_S`. ``[]`` means no router's keys changed but
    by the GCKS's will.
    """
    sent = {(e.get("sa"), e["message_id"]) for e in gcks if e["event"] == "rekey_sent"}
    registered: dict[tuple[str, str], list[float]] = {}
    for e in gcks:
        if e["event"] == "member_registered":
            registered.setdefault((e["group"], e["member"]), []).append(float(e["t"]))
    problems = []
    for router, events in gms.items():
        legit_steps: set[tuple[str, float]] = set()
        for e in events:
            if e["event"] == "rekey_accepted":
                if (e.get("sa"), e["message_id"]) in sent:
                    legit_steps.add((e["group"], float(e["t"])))
                else:
                    problems.append(
                        f"{router}: accepted rekey {e['message_id']} of {e['group']} "
                        f"(SA {e.get('sa')}) that the GCKS never sent"
                    )
            elif e["event"] == "registration_completed":
                t = float(e["t"])
                times = registered.get((e["group"], str(e.get("node", ""))), [])
                if any(t - REGISTRATION_SLACK_S <= r <= t for r in times):
                    legit_steps.add((e["group"], t))
                else:
                    problems.append(
                        f"{router}: registered in {e['group']} without the GCKS registering "
                        f"{e.get('node')}"
                    )
        for e in events:
            step = (e.get("group"), float(e["t"]))
            if e["event"] == "keys_installed" and e.get("rows") and step not in legit_steps:
                ids = sorted({r.get("key_id") for r in e["rows"]})
                problems.append(
                    f"{router}: installed {e['group']} key ids {ids} with no legitimate "
                    "registration or rekey"
                )
    return problems
