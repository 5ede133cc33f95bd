"""Container health check: exit 0 when this container's node answers /healthz with status "ok".

It reads the same F0MESH_* variables as `f0mesh up`. Over TLS it does not verify the certificate:
it talks to its own process over loopback, where the certificate's names need not match
127.0.0.1, and it sends no secret. Trust between machines is `f0mesh up`'s job, not this check's.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request


def main() -> int:
    tls = bool(os.environ.get("F0MESH_TLS_CERT"))
    url = f"{'https' if tls else 'http'}://127.0.0.1:{os.environ.get('F0MESH_PORT', '8700')}/healthz"
    context = ssl._create_unverified_context() if tls else None
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:
            status = json.load(response).get("status")
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != "ok":
        print(f"unhealthy: {url} says status {status!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
