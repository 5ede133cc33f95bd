"""f0mesh: a peer-to-peer mesh over real WebRTC DataChannels."""

__version__ = "0.1.0"
WIRE_VERSION = (1, 1)  # 1.1: map peer records and direct frames, sent only to 1.1 peers
