"""Impaired-network harness: namespaces joined by a user-space link emulator (see netlab.py)."""

from .netlab import LinkSpec, Netlab, NetlabError, check_prerequisites, cleanup_stale, list_namespaces

__all__ = ["LinkSpec", "Netlab", "NetlabError", "check_prerequisites", "cleanup_stale", "list_namespaces"]
