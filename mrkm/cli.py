"""The ``mrkm`` command: run a GCKS or a GM, make keys, inspect daemons and messages.

::

    mrkm gcks   --config gcks.yaml [--log events.jsonl] [--control /run/mrkm-gcks.sock]
    mrkm gm     --config r1.yaml   [--log r1.jsonl] [--control /run/r1.sock] [--keytable keys.json]
    mrkm keygen --out pki --gcks gcks.mrkm --member r1.mrkm r2.mrkm [--algorithm ecdsa-p256]
    mrkm status --control /run/mrkm-gcks.sock [--json]
    mrkm decode message.bin | mrkm decode --hex -

Exit codes: 0 success; 1 a runtime failure (socket, state file, unreachable
daemon, undecodable message); 2 a usage or configuration error, printed as
one line that names the field.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import mrkm
from mrkm.config import ConfigError, load_gcks_config, load_gm_config
from mrkm.errors import DecodeError
from mrkm.runtime.control import ControlError, request
from mrkm.runtime.decode import parse_input, render_message
from mrkm.runtime.eventlog import EventLog
from mrkm.runtime.keygen import ALGORITHMS, gcks_snippet, gm_snippet, keygen
from mrkm.runtime.persistence import StateError
from mrkm.runtime.render import render_status
from mrkm.runtime.transport import TransportError

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_LOG_HELP = "append JSON-lines events here ('-' = stdout, the default)"
_CONTROL_HELP = "serve JSON-lines control requests on this unix socket (mode 0600)"


class _Failure(Exception):
    """A runtime failure to report on one line (exit 1)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mrkm",
        description="G-IKEv2 (RFC 9838) group key management for routing protocols.",
        epilog="Run 'mrkm COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"mrkm {mrkm.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gcks = sub.add_parser(
        "gcks",
        help="run a key server (GCKS)",
        description="Run a GCKS: answer registrations over UDP, roll keys with signed "
        "multicast GSA_REKEYs, persist state to gcks.state. Stops cleanly on SIGTERM/SIGINT.",
    )
    gcks.add_argument("--config", required=True, type=Path, help="GCKS YAML configuration")
    gcks.add_argument("--log", default="-", help=_LOG_HELP)
    gcks.add_argument("--control", type=Path, help=_CONTROL_HELP)

    gm = sub.add_parser(
        "gm",
        help="run a group member (GM)",
        description="Run a GM: register with the GCKS for each group, join the rekey "
        "groups on the configured interface, follow rekeys. Stops cleanly on SIGTERM/SIGINT.",
    )
    gm.add_argument("--config", required=True, type=Path, help="GM YAML configuration")
    gm.add_argument("--log", default="-", help=_LOG_HELP)
    gm.add_argument("--control", type=Path, help=_CONTROL_HELP)
    gm.add_argument(
        "--keytable",
        type=Path,
        help="write the key table, keys included, to this JSON file whenever it changes "
        "(atomic, mode 0600)",
    )

    kg = sub.add_parser(
        "keygen",
        help="make a CA and keys and certificates for a GCKS and its members",
        description="Write a test CA, and a private key (0600) and certificate (SAN = the "
        "identity) for the GCKS and each member, then print matching configuration snippets. "
        "Never overwrites files.",
    )
    kg.add_argument("--out", required=True, type=Path, help="folder to write the PEM files to")
    kg.add_argument("--gcks", required=True, metavar="NAME", help="the GCKS identity (FQDN)")
    kg.add_argument(
        "--member",
        required=True,
        nargs="+",
        action="extend",
        metavar="NAME",
        help="member identities (FQDNs); repeat the option or list several",
    )
    kg.add_argument("--algorithm", choices=ALGORITHMS, default="ed25519", help="key type")
    kg.add_argument("--days", type=int, default=365, help="certificate validity (default 365)")

    st = sub.add_parser(
        "status",
        help="show a running GCKS or GM",
        description="Ask a running daemon for its status over its control socket: groups, "
        "members, current key ids, counters.",
    )
    st.add_argument("--control", required=True, type=Path, help="the daemon's control socket")
    st.add_argument("--json", action="store_true", help="print the raw JSON status")

    dec = sub.add_parser(
        "decode",
        help="decode an IKE message",
        description="Decode one IKE/G-IKEv2 message and print its header and payload tree "
        "(SK payloads stay sealed).",
    )
    dec.add_argument("file", nargs="?", default="-", help="message file, '-' = stdin (default)")
    dec.add_argument("--hex", action="store_true", help="the input is hex text, not raw octets")
    return parser


def _run_gcks(args: argparse.Namespace) -> int:
    from mrkm.runtime.gcks_process import GcksProcess  # each daemon loads only its own side

    config = load_gcks_config(args.config)
    log = EventLog(args.log, config.identity)
    return asyncio.run(GcksProcess(config, log, args.control).run())


def _run_gm(args: argparse.Namespace) -> int:
    from mrkm.runtime.gm_process import GmProcess

    config = load_gm_config(args.config)
    log = EventLog(args.log, config.identity)
    return asyncio.run(GmProcess(config, log, args.control, args.keytable).run())


def _keygen(args: argparse.Namespace) -> int:
    try:
        result = keygen(args.out, args.gcks, args.member, args.algorithm, args.days)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except FileExistsError as exc:
        raise _Failure(str(exc)) from None
    print(f"# wrote the CA, {1 + len(result.members)} keys and certificates to {args.out}")
    print("# --- GCKS configuration ---")
    print(gcks_snippet(result), end="")
    for member in result.members:
        print(f"# --- GM configuration for {member.name} ---")
        print(gm_snippet(result, member), end="")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    try:
        response = request(args.control, {"cmd": "status"})
    except (OSError, ControlError) as exc:
        raise _Failure(f"cannot reach {args.control}: {exc}") from None
    if not response.get("ok"):
        raise _Failure(f"{args.control}: {response.get('error', 'request failed')}")
    result = response.get("result", {})
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else render_status(result))
    return EXIT_OK


def _decode(args: argparse.Namespace) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise _Failure(f"{args.file}: cannot read: {exc.strerror}") from None
    try:
        lines = render_message(parse_input(raw, args.hex))
    except DecodeError as exc:
        raise _Failure(f"not a valid IKE message: {type(exc).__name__}: {exc}") from None
    print("\n".join(lines))
    return EXIT_OK


_COMMANDS = {
    "gcks": _run_gcks,
    "gm": _run_gm,
    "keygen": _keygen,
    "status": _status,
    "decode": _decode,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mrkm`` and ``python -m mrkm``; returns the exit code."""
    args = build_parser().parse_args(argv)
    prefix = f"mrkm {args.command}"
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"{prefix}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StateError, TransportError, _Failure, OSError) as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
