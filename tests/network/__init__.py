"""Network tests: f0mesh nodes over impaired links (netlab namespaces) and through a TURN relay."""
