"""``mrkm status``: a running daemon's status as a short readable summary.

The input is the ``result`` of the control socket's ``status`` command
(:mod:`mrkm.runtime.control`); ``--json`` prints that object unchanged.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["render_status"]


def _counters(counters: dict[str, Any], indent: str = "  ") -> list[str]:
    if not counters:
        return [f"{indent}(none)"]
    width = max(len(k) for k in counters)
    return [f"{indent}{k:<{width}}  {counters[k]}" for k in sorted(counters)]


def _when(t: float, now: float) -> str:
    delta = t - now
    stamp = time.strftime("%H:%M:%S", time.localtime(t))
    return (
        f"{stamp} ({'in ' if delta >= 0 else ''}{abs(delta):.1f} s{'' if delta >= 0 else ' ago'})"
    )


def _gcks(status: dict[str, Any]) -> list[str]:
    runtime = status.get("runtime", {})
    lines = [
        f"GCKS {status.get('identity', '?')}  pid {runtime.get('pid', '?')}  "
        f"listen {runtime.get('listen', '?')}  up {runtime.get('uptime', 0):.0f} s",
        f"  state: {runtime.get('state_file') or '(not persisted)'}  "
        f"version {runtime.get('state_version', '?')}"
        f"{'  (restored)' if runtime.get('restored') else ''}",
        f"  registration SAs: {status.get('registration_sas', 0)}",
    ]
    for name, group in sorted(status.get("groups", {}).items()):
        members = group.get("members", [])
        shown = ", ".join(members[:8]) + (
            f", ... ({len(members)} in all)" if len(members) > 8 else ""
        )
        lines += [
            f"group {name}",
            f"  members ({len(members)}): {shown or '(none)'}",
            f"  key ids: {', '.join(str(k) for k in group.get('key_ids', [])) or '(none)'}"
            f"  (current {group['key_ids'][-1] if group.get('key_ids') else '-'})",
            f"  next message id: {group.get('next_message_id', '?')}  "
            f"next rekey in {group.get('next_rekey_in', 0):.1f} s",
        ]
    lines.append("counters")
    lines += _counters(status.get("counters", {}) | runtime.get("counters", {}))
    return lines


def _gm(status: dict[str, Any]) -> list[str]:
    runtime = status.get("runtime", {})
    now = time.time()
    lines = [
        f"GM {status.get('identity', '?')}  pid {runtime.get('pid', '?')}  "
        f"listen {runtime.get('listen', '?')}  GCKS {status.get('gcks', '?')}  "
        f"up {runtime.get('uptime', 0):.0f} s",
    ]
    for name, state in sorted(status.get("groups", {}).items()):
        lines.append(f"group {name}: {state}")
        rows = [r for r in status.get("keys", []) if r.get("group") == name]
        if not rows:
            lines.append("  no keys")
        for row in rows:
            sending = row["send_start"] <= now < row["send_end"]
            lines.append(
                f"  {row['protocol']} key {row['key_id']} {row['algorithm']}"
                f"{'  SENDING' if sending else ''}: send from {_when(row['send_start'], now)},"
                f" accepted until {_when(row['accept_end'], now)}"
            )
    lines.append("counters")
    lines += _counters(status.get("counters", {}) | runtime.get("counters", {}))
    return lines


def render_status(status: dict[str, Any]) -> str:
    """The summary of a ``status`` result, GCKS or GM (told apart by ``runtime.role``)."""
    role = status.get("runtime", {}).get("role")
    lines = _gcks(status) if role == "gcks" else _gm(status)
    return "\n".join(lines)
