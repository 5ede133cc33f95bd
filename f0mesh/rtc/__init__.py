"""WebRTC links: signaling, the link registry, one Link per peer, and the framing of its channels.

Knows nothing of gossip, QoS or the store; the node supplies those through LinkDelegate.
"""
