"""The browser peer's cost: module size, envelopes signed / verified and document ops verified per
second in Chromium.

python -m bench.f0peer_page [--envelopes N] [--ops N]

Starts one node to serve the module (a page needs a secure origin for WebCrypto), then in Debian's
Chromium: one page peer signs N envelopes, another takes each through the whole inbound path
(msgpack decode, SHA-256 message id, Ed25519 verify, seen-cache, delivery) as if a link had
delivered it; then one delta of a map document with --ops keys, each op signed by a node's key, is
verified op by op and merged into the page's replica (peer.document) as if a node had sent it.
Prints one JSON object. Sizes are what the page loads: f0peer.js and the vendored
msgpack modules it imports, raw and gzip-compressed (level 9) as served.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
from pathlib import Path

import httpx

from f0mesh.crdt import HLC, LWWMap
from f0mesh.identity import Identity

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from nodes import NodeProcess  # noqa: E402

CHROMIUM = "/usr/bin/chromium"

RUN = """async ([url, n, delta]) => {
  const { F0Peer } = await import(url + "/f0peer.js");
  const a = await F0Peer.create({ persist: false });
  const b = await F0Peer.create({ persist: false });
  const wires = [];
  let t = performance.now();
  for (let i = 0; i < n; i++) {
    const id = await a.publish("bench", { i, text: "a message of a typical chat size, some fifty bytes" });
    wires.push(a._held.get(id));
  }
  const signMs = performance.now() - t;
  const link = { peerId: a.peerId, state: "open", send: async () => {} };
  let delivered = 0;
  b.subscribe("bench", () => { delivered++; });
  t = performance.now();
  for (const wire of wires) await b._accept(link, wire);
  const verifyMs = performance.now() - t;
  b._acks.clear();
  const doc = b.document("bench");
  t = performance.now();
  await b._merge(link, doc, Uint8Array.from(delta));
  const opsMs = performance.now() - t;
  return { n, delivered, signMs, verifyMs, rejected: b.stats.rejected, keys: doc.entries().length, opsMs };
}"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envelopes", type=int, default=2000)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    author = Identity.generate()
    hlc = HLC(author.peer_id)
    doc = LWWMap(author.peer_id)
    for i in range(args.ops):
        doc.set(f"key-{i}", {"i": i, "text": "a value of a typical size"}, hlc.now())
    doc.sign_ops(author.peer_id, "map/bench", author.sign)
    delta = list(doc.to_bytes())
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        node = NodeProcess(Path(tmp) / "n").start()
        try:
            with sync_playwright() as pw:
                flags = ["--headless=new", "--no-sandbox"]
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=flags)
                page = browser.new_page()
                urls: set[str] = set()
                page.on("request", lambda r: urls.add(r.url) if "/f0peer" in r.url else None)
                page.goto(node.url + "/healthz")
                result = page.evaluate(RUN, [node.url, args.envelopes, delta])
                browser.close()
            loaded = {url: httpx.get(url).content for url in sorted(urls)}
        finally:
            node.close()
    raw = sum(len(b) for b in loaded.values())
    packed = sum(len(gzip.compress(b, 9)) for b in loaded.values())
    own = next(b for url, b in loaded.items() if url.endswith("/f0peer.js"))
    assert result["delivered"] == result["n"] and not result["rejected"], result
    assert result["keys"] == args.ops, result
    print(
        json.dumps(
            {
                "module_bytes": len(own),
                "module_gzip_bytes": len(gzip.compress(own, 9)),
                "loaded_files": len(loaded),
                "loaded_bytes": raw,
                "loaded_gzip_bytes": packed,
                "envelopes": result["n"],
                "signed_per_s": round(result["n"] / result["signMs"] * 1000),
                "verified_per_s": round(result["n"] / result["verifyMs"] * 1000),
                "document_ops": args.ops,
                "document_ops_verified_per_s": round(args.ops / result["opsMs"] * 1000),
                "chromium": CHROMIUM,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
