"""Logical key hierarchy (LKH) for evicting members (RFC 9838 §3.2.1, §3.3, Appendix A).

The GCKS keeps a complete binary tree per group. Each authorized member owns a
leaf; every node holds a key-wrap key (KWK) with a Key ID unique for the
group's life. The Rekey SA's keying material plays the root: it is wrapped
under the top-level nodes. A member learns its path (leaf up to a top node)
at registration, as WRAP_KEY attributes chained down to GSK_w.

Evicting a member replaces every key on its path with a fresh key under a
fresh Key ID and sends, under the *old* Rekey SA:

* each new node key wrapped under each of its children's current keys, except
  the evicted leaf (WRAP_KEY attributes), and
* the new Rekey SA keymat wrapped under each top-level node (SA_KEY).

That is at most ``2 * ceil(log2 N)`` wrapped keys for N leaves, and the
evicted member holds none of the keys they are wrapped under.

:class:`KeyTree` is the GCKS side; :class:`KeyPath` is the GM side, the
"Working Key Path" of §3.3: it follows WRAP_KEY chains from an SA_KEY down
to a key it holds, and then replaces the stale part of its path.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mrkm.crypto import keywrap
from mrkm.errors import BadValue, IntegrityCheckFailed
from mrkm.wire import WrappedKey

__all__ = ["KeyPath", "KeyTree", "NotOnPath"]

Rng = Callable[[int], bytes]


class NotOnPath(IntegrityCheckFailed):
    """No SA_KEY can be traced to a key this member holds: it is excluded (§3.3)."""


@dataclass
class _Node:
    key_id: int
    key: bytes = field(repr=False)


class KeyTree:
    """The GCKS's key tree for one group, stored as an implicit complete binary tree.

    Positions follow the heap layout: position 1 is the root (the Rekey SA,
    holding no KWK here), the children of ``p`` are ``2p`` and ``2p + 1``,
    and leaves are positions ``capacity .. 2 * capacity - 1``.
    """

    def __init__(self, capacity: int, kwa: int, rng: Rng) -> None:
        size = 2
        while size < capacity:
            size *= 2
        self.capacity, self.kwa, self._rng = size, kwa, rng
        self._next_id = 1
        self._nodes: dict[int, _Node] = {p: self._fresh() for p in range(2, 2 * size)}
        self.leaves: dict[str, int] = {}  # member -> leaf position

    def _fresh(self) -> _Node:
        node = _Node(self._next_id, self._rng(keywrap.kwk_len(self.kwa)))
        self._next_id += 1
        return node

    def _wrap(self, under: _Node, key_id: int, secret: bytes) -> WrappedKey:
        return WrappedKey(key_id, under.key_id, keywrap.wrap(self.kwa, under.key, secret))

    def _path(self, leaf: int) -> list[int]:
        """Positions from the leaf up to its top-level node (root excluded)."""
        out = []
        while leaf > 1:
            out.append(leaf)
            leaf //= 2
        return out

    def join(self, member: str) -> int:
        """Give ``member`` a leaf (the same one again if it already has one)."""
        if member in self.leaves:
            return self.leaves[member]
        taken = set(self.leaves.values())
        free = next((p for p in range(self.capacity, 2 * self.capacity) if p not in taken), None)
        if free is None:
            raise BadValue(f"key tree full: {self.capacity} members")
        self.leaves[member] = free
        return free

    def member_path(self, member: str, gsk_w: bytes, gsk_w_kwa: int) -> list[WrappedKey]:
        """WRAP_KEYs for a registration: leaf under GSK_w (KWK ID 0), each node under its child.

        ``gsk_w_kwa`` is the KWA negotiated for the registration IKE SA, which
        may differ from the tree's (RFC 9838 §4.5.4).
        """
        path = self._path(self.join(member))
        leaf = self._nodes[path[0]]
        out = [WrappedKey(leaf.key_id, 0, keywrap.wrap(gsk_w_kwa, gsk_w, leaf.key))]
        for child, parent in itertools.pairwise(path):
            node = self._nodes[parent]
            out.append(self._wrap(self._nodes[child], node.key_id, node.key))
        return out

    def wrap_root(self, keymat: bytes) -> list[WrappedKey]:
        """The Rekey SA keymat wrapped under both top-level nodes (SA_KEY, Key ID 0)."""
        return [self._wrap(self._nodes[p], 0, keymat) for p in (2, 3)]

    def evict(self, member: str) -> list[WrappedKey]:
        """Forget ``member``; renew every key on its path; return the WRAP_KEYs to send.

        The evicted leaf gets a new key too, so whoever takes it later learns
        nothing of the past. Call :meth:`wrap_root` afterwards for the SA_KEYs.
        """
        leaf = self.leaves.pop(member, None)
        if leaf is None:
            raise BadValue(f"{member} holds no leaf in this group's key tree")
        self._nodes[leaf] = self._fresh()
        out: list[WrappedKey] = []
        for position in self._path(leaf)[1:]:
            node = self._nodes[position] = self._fresh()
            for child in (2 * position, 2 * position + 1):
                if child != leaf:
                    out.append(self._wrap(self._nodes[child], node.key_id, node.key))
        return out

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state (keys included)."""
        return {
            "capacity": self.capacity,
            "next_id": self._next_id,
            "nodes": {str(p): [n.key_id, n.key.hex()] for p, n in self._nodes.items()},
            "leaves": self.leaves,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Continue from :meth:`snapshot` output of a tree of the same capacity."""
        if int(data["capacity"]) != self.capacity:
            raise BadValue("key tree capacity changed; members must re-register")
        self._next_id = int(data["next_id"])
        self._nodes = {
            int(p): _Node(int(v[0]), bytes.fromhex(v[1])) for p, v in data["nodes"].items()
        }
        self.leaves = {str(m): int(p) for m, p in data["leaves"].items()}


@dataclass
class KeyPath:
    """A GM's Working Key Path: its KWKs from the top-level node down to its leaf."""

    kwa: int
    keys: list[tuple[int, bytes]] = field(default_factory=list)

    def held(self) -> dict[int, bytes]:
        """Key ID -> key for every KWK on the path."""
        return dict(self.keys)

    def learn(self, wrap_keys: Iterable[WrappedKey], gsk_w: bytes, gsk_w_kwa: int) -> None:
        """Take the path a registration sends: leaf under GSK_w, each node under its child."""
        by_kwk = {w.kwk_id: w for w in wrap_keys}
        path: list[tuple[int, bytes]] = []
        key, kwa, kwk_id = gsk_w, gsk_w_kwa, 0
        while kwk_id in by_kwk and len(path) <= len(by_kwk):
            link = by_kwk[kwk_id]
            key = keywrap.unwrap(kwa, key, link.encrypted)
            kwa, kwk_id = self.kwa, link.key_id
            path.append((link.key_id, key))
        self.keys = list(reversed(path))

    def resolve(
        self,
        sa_keys: Iterable[WrappedKey],
        wrap_keys: Iterable[WrappedKey],
        default_kwk: bytes,
        default_kwa: int,
    ) -> bytes:
        """Unwrap the first SA_KEY that chains down to a key we hold; update the path.

        KWK ID 0 is ``default_kwk`` (GSK_w of the SA protecting the message).
        Raises :class:`NotOnPath` when no SA_KEY can be traced (we are excluded).
        """
        by_id: dict[int, list[WrappedKey]] = {}
        for w in wrap_keys:  # one key may come wrapped under several children
            by_id.setdefault(w.key_id, []).append(w)
        held = self.held()

        def chain_from(kwk_id: int, depth: int) -> list[WrappedKey] | None:
            """WRAP_KEY links from ``kwk_id`` down to a key we hold, top first."""
            if kwk_id == 0 or kwk_id in held:
                return []
            if depth > len(by_id):
                return None
            for link in by_id.get(kwk_id, ()):
                rest = chain_from(link.kwk_id, depth + 1)
                if rest is not None:
                    return [link, *rest]
            return None

        for sa_key in sa_keys:
            found = chain_from(sa_key.kwk_id, 0)
            if found is None:
                continue
            chain = found
            kwk_id = chain[-1].kwk_id if chain else sa_key.kwk_id
            # Unwrap down from the key we hold: the last link of the chain first.
            key, kwa = (default_kwk, default_kwa) if kwk_id == 0 else (held[kwk_id], self.kwa)
            learned: list[tuple[int, bytes]] = []
            for link in reversed(chain):
                key = keywrap.unwrap(kwa, key, link.encrypted)
                kwa = self.kwa
                learned.insert(0, (link.key_id, key))
            keymat = keywrap.unwrap(kwa, key, sa_key.encrypted)
            self._replace(learned, kwk_id)
            return keymat
        raise NotOnPath("no SA_KEY chains to a key this member holds: excluded from the group")

    def _replace(self, learned: list[tuple[int, bytes]], anchor: int) -> None:
        """Put ``learned`` (top first) in front of the part of the path from ``anchor`` down."""
        if not learned:
            return
        ids = [k for k, _ in self.keys]
        rest = self.keys[ids.index(anchor) :] if anchor in ids else []
        self.keys = learned + rest
