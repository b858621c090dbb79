"""MRKM: group key management for routing protocols over G-IKEv2 (RFC 9838).

Layers, bottom up: :mod:`mrkm.wire` (bytes <-> payloads), :mod:`mrkm.crypto`
(pure functions), :mod:`mrkm.protocol` (sans-IO state machines). See
ARCHITECTURE.md for the map.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
