"""f0mesh: a peer-to-peer mesh over real WebRTC DataChannels."""

__version__ = "0.1.0"
WIRE_VERSION = (1, 0)
