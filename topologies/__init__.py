"""Topologies for the testbed: the shared model, YAML files, generators, real networks.

* :mod:`topologies.model` — ``Topology``, ``Router``, ``Link``, ``Lan`` and the addressing plan;
* :mod:`topologies.loader` — the YAML format and ``load_topology(path)``;
* :mod:`topologies.generators` — ``line``, ``ring``, ``grid``, ``star``, seeded ``random``;
* :mod:`topologies.zoo` — Topology Zoo and SNDlib networks bundled in ``topohub``;
* :mod:`topologies.validate` — the rules every topology must pass;
* :mod:`topologies.addressing` — ``assign(topology)`` fills in every address;
* :mod:`topologies.registry` — ``get_topology(name)``; ``python -m topologies`` shows one.
"""
