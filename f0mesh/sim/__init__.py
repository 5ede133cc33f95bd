"""Internet scale by simulation: the unchanged gossip engine, trust selection and CRDTs on up to
10,000+ simulated peers in one process, in virtual time (docs/scale.md).

clock.py (virtual-time event loop), network.py (regions, latency, loss, partial view), crypto.py
(seeded identities, memoised signature checks), mesh.py (engines and Sybils on the network),
crdt_sync.py (LWW-map anti-entropy), serf.py (the reference model), experiments.py (the runs
behind `f0mesh simulate`), plots.py, validate.py (the simulator against MemoryNetwork, and the
simulated side of tests/sim/test_agreement_real.py against real links).
"""
