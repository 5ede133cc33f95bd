"""Pages as full peers (f0peer.js) in Debian's Chromium, with three real ``f0mesh up`` processes.

One module-scoped scenario: nodes a, b, c form a mesh; page 1 (on a's origin) and page 2 (on b's
origin, so its module, /healthz and /offer calls are cross-origin) join through node a. A page's
message reaches the three nodes and the other page, a node's message reaches both pages; the pages
link directly (signaled through a) and measure that link; page 2, playing a malicious peer, sends
page 1 a forged envelope, which page 1 refuses and audits; closing page 2 shows on node a as a
failed link. The README's example runs as printed.
"""

from __future__ import annotations

import base64
import random
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser.conftest import Console

from f0mesh.crdt import RGA, HLCTimestamp, LWWElementSet, LWWMap, VectorClock
from f0mesh.crdt.codec import element_key
from f0mesh.identity import Identity

from nodes import NodeProcess, wait_for

README = Path(__file__).resolve().parents[2] / "README.md"
FAST = ["--qos-interval", "1", "--probe-rate", "5"]
FOREIGN = "http://app.example"

JOIN = """async ([base, node]) => {
  const { F0Peer } = await import(base + "/f0peer.js");
  const peer = await F0Peer.join(node, { topics: ["chat"], persist: false });
  window.peer = peer;
  window.got = [];
  window.topics = [];  // of every message the page took, from its first link on
  peer.events.addEventListener("message", (e) => window.topics.push(e.detail.topic));
  peer.subscribe("chat", (payload, msg) => window.got.push({ id: msg.id, origin: msg.origin, payload }));
  return peer.peerId;
}"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    root = tmp_path_factory.mktemp("f0peer")
    a = NodeProcess(root / "a", extra=FAST)
    b = NodeProcess(root / "b", extra=[*FAST, "--bootstrap", a.url])
    # bootstrapped to both, so the triangle closes without waiting for a round of peer exchange
    c = NodeProcess(
        root / "c", extra=[*FAST, "--bootstrap", a.url, "--bootstrap", b.url, "--cors-origin", FOREIGN]
    )
    nodes = [a, b, c]
    try:
        with ThreadPoolExecutor(3) as pool:  # started together: each takes seconds to import and open
            list(pool.map(NodeProcess.start, nodes))
        ids = {n.peer_id for n in nodes}
        for node in nodes:
            wait_for(
                lambda node=node: len({lk["peer_id"] for lk in node.open_links()} & ids) == 2,
                30,
                what=f"{node.url} linked to both other nodes",
            )
        yield nodes
    finally:
        for node in nodes:
            node.close()


@pytest.fixture(scope="module")
def pages(browser: Any, mesh: list[NodeProcess]) -> Iterator[list[Any]]:
    a, b, _ = mesh
    opened = []
    for origin in (a.url, b.url):
        context = browser.new_context()
        context.set_default_timeout(20_000)
        page = context.new_page()
        console = Console()
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)
        page.goto(origin + "/healthz")
        page.evaluate(JOIN, [a.url, a.url])
        opened.append((page, console))
    yield [page for page, _ in opened]
    errors = [e for _, console in opened for e in console.errors]
    for page, _ in opened:
        page.context.close()
    assert not errors, "console errors in the pages:\n" + "\n".join(errors)


def peer_id(page: Any) -> str:
    return page.evaluate("() => window.peer.peerId")


def got(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("() => window.got")


def chat(node: NodeProcess) -> list[dict[str, Any]]:
    return node.http.get("/api/gossip/messages", params={"topic": "chat", "limit": 100}).json()["messages"]


def test_pages_and_nodes_hear_each_other(mesh: list[NodeProcess], pages: list[Any]) -> None:
    a, _, c = mesh
    page1, page2 = pages
    p1, p2 = peer_id(page1), peer_id(page2)
    rows = {lk["peer_id"]: lk for lk in a.open_links()}
    assert rows[p1]["browser"] is True and rows[p2]["browser"] is True
    # Chromium hides its host addresses behind mDNS names, which the page leaves out of its offer:
    # node a learned each page's address from the page's own connectivity checks
    assert rows[p1]["path"] == rows[p2]["path"] == "prflx", rows
    assert not any(lk["browser"] for lk in c.open_links())

    sent = page1.evaluate("() => window.peer.publish('chat', {text: 'from page 1', n: 1.5})")
    for node in mesh:
        wait_for(lambda node=node: any(m["id"] == sent for m in chat(node)), 20, what=f"{node.url} got it")
    (stored,) = [m for m in chat(c) if m["id"] == sent]
    assert stored["origin"] == p1 and stored["payload"] == {"n": 1.5, "text": "from page 1"}
    wait_for(lambda: any(m["id"] == sent for m in got(page2)), 20, what="page 2 got page 1's message")

    published = c.http.post("/api/gossip", json={"topic": "chat", "payload": {"text": "from c"}}).json()["id"]
    for page in pages:
        arrived = wait_for(
            lambda page=page: [m for m in got(page) if m["id"] == published], 20, what="a page got c's"
        )
        assert arrived[0]["origin"] == c.peer_id and arrived[0]["payload"] == {"text": "from c"}
    for page in pages:
        stats = page.evaluate("() => window.peer.stats")
        assert stats["verified"] >= 1 and not stats["rejected"], stats
    # a page is a link, not a member: no node keeps a peer row for it
    for node in mesh:
        known = {p["peer_id"] for p in node.http.get("/api/peers").json()["peers"]}
        assert not known & {p1, p2}


def test_pages_link_directly_and_a_forged_envelope_is_refused(
    mesh: list[NodeProcess], pages: list[Any]
) -> None:
    page1, page2 = pages
    p2 = peer_id(page2)
    link = page1.evaluate("async (to) => (await window.peer.connect(to)).describe()", p2)
    assert link["state"] == "open" and link["signaling"] == "mesh" and link["browser"] is True
    figures = wait_for(
        lambda: page1.evaluate(
            "(to) => { const l = window.peer.links.get(to).describe(); return l.rtt_ms !== null && l; }", p2
        ),
        20,
        what="QoS figures of the page-to-page link",
    )
    assert figures["rtt_ms"] > 0 and figures["loss_pct"] is not None and figures["probes_sent"] > 0
    assert page2.evaluate("(to) => window.peer.links.get(to).state", peer_id(page1)) == "open"

    # Page 2 plays a malicious peer: a real envelope of its own with one payload byte changed.
    genuine = page2.evaluate(
        """async ([node, to]) => {
          const { encode, decode } = await import(node + "/f0peer/vendor/msgpack/index.mjs");
          const real = await window.peer.publish("chat", {text: "genuine"});
          const [signed, signature] = decode(window.peer._held.get(real));
          const forged = Uint8Array.from(signed);
          forged[forged.length - 1] ^= 1;  // "genuine" -> "genuind"
          const msgs = [encode([forged, signature, 0])];
          await window.peer.links.get(to).send({t: "gossip", m: {type: "msgs", msgs}});
          return real;
        }""",
        [mesh[0].url, peer_id(page1)],
    )
    wait_for(
        lambda: page1.evaluate("() => window.peer.stats.rejected.bad_signature") == 1, 20, what="the refusal"
    )
    audit = page1.evaluate("() => window.peer.audit.filter((row) => row.event === 'rejected')")
    assert [(r["peer_id"], r["reason"]) for r in audit] == [(p2, "bad_signature")]
    wait_for(lambda: any(m["id"] == genuine for m in got(page1)), 20, what="the genuine one still arrives")
    assert all(m["payload"] != {"text": "genuind"} for m in got(page1))


def test_a_page_takes_only_the_topics_it_announced(mesh: list[NodeProcess], pages: list[Any]) -> None:
    """A page announces its topics as nodes do: node a sends page 2 neither a topic only page 1 took
    nor the nodes' own (telemetry went out when the pages linked), and page 1 relays none of it
    over its direct link to page 2."""
    a, _, c = mesh
    page1, page2 = pages
    p1, p2 = peer_id(page1), peer_id(page2)

    def announced() -> dict[str, Any]:
        return a.http.get("/api/gossip/subscriptions").json()["neighbours"]

    page1.evaluate(
        "() => { window.news = []; window.peer.subscribe('news', (_p, msg) => window.news.push(msg.id)); }"
    )
    wait_for(lambda: announced().get(p1) == ["chat", "news"], 20, what="node a to hear page 1's new topic")
    assert announced()[p2] == ["chat"]
    wait_for(
        lambda: page2.evaluate("(p) => window.peer.links.get(p).describe().subs", p1) == ["chat", "news"],
        20,
        what="page 2 to hear page 1's topics over their direct link",
    )
    assert page1.evaluate("(p) => window.peer.links.get(p).describe().subs", p2) == ["chat"]

    news = c.http.post("/api/gossip", json={"topic": "news", "payload": {"text": "page 1 only"}}).json()["id"]
    wait_for(lambda: news in page1.evaluate("() => window.news"), 20, what="page 1 to get the news")
    # published by page 1 once it holds the news: on each link to page 2, after any copy of it
    marker = page1.evaluate("() => window.peer.publish('chat', {text: 'after the news'})")
    wait_for(lambda: any(m["id"] == marker for m in got(page2)), 20, what="page 2 to get the marker")
    assert a.http.get("/api/gossip/messages", params={"topic": "news"}).json()["messages"]
    assert set(page2.evaluate("() => window.topics")) == {"chat"}
    offered = page2.evaluate(
        "() => window.peer.audit.filter((row) => row.reason === 'not_subscribed').map((row) => row.detail)"
    )
    assert "news" not in offered, offered
    assert set(page1.evaluate("() => window.topics")) == {"chat", "news"}


def _forged_op(name: str, victim: str, value: str) -> bytes:
    """A delta with one op in the victim's name, stamped by its clock, signed by another key."""
    forger = Identity.generate()
    delta = LWWMap(forger.peer_id)
    delta.set("title", value, HLCTimestamp(int(time.time() * 1000) + 1, 0, victim), origin=victim)
    delta.sign_ops(victim, f"map/{name}", forger.sign)
    return delta.to_bytes()


def test_a_page_reads_a_document_and_refuses_a_forged_op(mesh: list[NodeProcess], pages: list[Any]) -> None:
    a, _, c = mesh
    page1 = pages[0]
    page1.evaluate(
        """() => {
          window.changes = [];
          window.board = window.peer.document("board", {onchange: (c) => window.changes.push(c.changed)});
          window.tags = window.peer.document("tags", {kind: "set"});
          window.todo = window.peer.document("todo", {kind: "list"});
        }"""
    )
    todo = "/api/state/todo"
    a.http.post(todo, json={"kind": "list", "append": ["one", "two", "three"]}).raise_for_status()
    ids = a.http.get(todo).json()["ids"]
    edit = {"kind": "list", "delete": [ids[1]], "insert": [{"after": ids[0], "values": ["1.5"]}]}
    a.http.post(todo, json=edit).raise_for_status()
    held = a.http.get(todo).json()
    assert held["value"] == ["one", "1.5", "three"]
    pairs = [list(p) for p in zip(held["ids"], held["value"], strict=True)]
    wait_for(lambda: page1.evaluate("() => window.todo.entries()") == pairs, 20, what="the page's list")
    a.http.post("/api/state/tags", json={"kind": "set", "add": ["x", "y"]}).raise_for_status()
    a.http.post("/api/state/tags", json={"kind": "set", "remove": ["x"]}).raise_for_status()
    wait_for(lambda: page1.evaluate("() => window.tags.value()") == ["y"], 20, what="the page's set")
    # written on c: it reaches the page through node a, the only node the page is linked to
    written = c.http.post("/api/state/board", json={"kind": "map", "set": {"title": "hello", "n": 2}})
    assert written.status_code == 200, written.text
    wait_for(
        lambda: page1.evaluate("() => window.board.value()") == {"title": "hello", "n": 2},
        20,
        what="the page",
    )
    c.http.post("/api/state/board", json={"kind": "map", "delete": ["n"]}).raise_for_status()
    wait_for(
        lambda: page1.evaluate("() => window.board.value()") == {"title": "hello"}, 20, what="the delete"
    )
    assert ["n"] in page1.evaluate("() => window.changes")

    # a delta from node a's link holding an op in c's name that c never signed
    forged = _forged_op("board", c.peer_id, "forged")
    page1.evaluate(
        """([node, data]) => window.peer._onState(window.peer.links.get(node),
             {t: "state", op: "delta", name: "board", kind: "map", xfer: 2 ** 40, page: 0, pages: 1,
              data: Uint8Array.from(data)})""",
        [a.peer_id, list(forged)],
    )
    wait_for(lambda: page1.evaluate("() => window.peer.stats.rejected.forged") == 1, 20, what="the refusal")
    (row,) = page1.evaluate("() => window.peer.audit.filter((row) => row.reason === 'forged')")
    assert row["peer_id"] == a.peer_id and "not signed by its origin" in row["detail"], row
    assert page1.evaluate("() => window.board.get('title')") == "hello"

    # the page never writes: it publishes no envelope of the nodes' own topics, and a delta it sends
    # its node is refused there and audited
    refused = page1.evaluate("() => window.peer.publish('state', {}).then(() => 'sent', (e) => e.message)")
    assert "nodes' own" in refused
    page1.evaluate(
        """([node, data]) => window.peer.links.get(node).send(
             {t: "state", op: "delta", name: "board", kind: "map", xfer: 1, page: 0, pages: 1,
              data: Uint8Array.from(data)})""",
        [a.peer_id, list(forged)],
    )
    me = peer_id(page1)
    wait_for(
        lambda: any(
            e["peer_id"] == me and e["reason"] == "state_browser_write"
            for e in a.http.get("/api/audit", params={"event": "rejected"}).json()["entries"]
        ),
        20,
        what="node a's audit of the page's write",
    )
    assert c.http.get("/api/state/board").json()["value"] == {"title": "hello"}


def _history(rng: random.Random, kind: str) -> tuple[list[bytes], Any]:
    """Three replicas writing concurrently (ties on the wall clock included), merging now and then:
    deltas of their states at random points, and the state every replica converges to."""
    crdt = {"map": LWWMap, "set": LWWElementSet, "list": RGA}[kind]
    names = [f"r{i}" for i in range(3)]
    replicas = [crdt(name) for name in names]
    clocks = dict.fromkeys(names, 0)
    deltas: list[bytes] = []
    for _ in range(rng.randint(5, 25)):
        i = rng.randrange(3)
        r, name = replicas[i], names[i]
        clocks[name] += 1
        ts = HLCTimestamp(rng.randint(1, 4), clocks[name], name)
        key = rng.choice(["a", "b", "c", "d", "é", "🙂"])
        value = rng.choice([None, True, 1, -7, 2.5, "x", [1, "y"], {"k": {"z": 1, "a": [0.5]}}])
        if kind == "map":
            r.set(key, value, ts) if rng.random() < 0.7 else r.delete(key, ts)
        elif kind == "set":
            element = rng.choice([key, 3, 300])
            r.add(element, ts) if rng.random() < 0.6 else r.remove(element, ts)
        elif (ids := r.ids()) and rng.random() < 0.3:
            r.delete(rng.choice(ids))
        else:
            r.insert(rng.choice([None, *ids]), value)
        r.sign_ops(name, f"{kind}/t", lambda _data: bytes(64))  # a signature the page's stub accepts
        if rng.random() < 0.3:
            j = rng.randrange(3)
            if j != i:
                replicas[j].merge(replicas[i].delta_since(replicas[j].version()))
        if rng.random() < 0.3:
            deltas.append(r.delta_since(VectorClock()).to_bytes())
    final = crdt("final")
    for r in replicas:
        deltas.append(r.to_bytes())
        final.merge(r)
    rng.shuffle(deltas)
    if kind == "map":
        return deltas, final.to_dict()
    if kind == "set":
        return deltas, sorted(final.elements(), key=element_key)
    return deltas, final.to_list()


def test_a_page_replica_merges_as_the_nodes_do(mesh: list[NodeProcess], pages: list[Any]) -> None:
    """The page's merge against f0mesh.crdt's on random concurrent histories, deltas in any order
    (signatures aside: stubbed out here, verified in the test above)."""
    rng = random.Random(26)
    cases = [(kind, *_history(rng, kind)) for _ in range(12) for kind in ("map", "set", "list")]
    merged = pages[0].evaluate(
        """async ([base, cases]) => {
          const { Replica } = await import(base + "/f0peer/documents.js");
          const out = [];
          for (const [kind, deltas] of cases) {
            const replica = new Replica("t", kind);
            for (const delta of deltas) {
              await replica.apply(Uint8Array.from(atob(delta), (c) => c.charCodeAt(0)), async () => true);
            }
            out.push(kind === "set" ? replica.entries() : replica.value());
          }
          return out;
        }""",
        # base64: a list of ints per byte is what Playwright would take seconds to carry
        [mesh[0].url, [[kind, [base64.b64encode(d).decode() for d in deltas]] for kind, deltas, _ in cases]],
    )
    assert merged == [expected for _, _, expected in cases]


def test_closing_a_page_is_a_failed_link(mesh: list[NodeProcess], pages: list[Any]) -> None:
    a = mesh[0]
    page2 = pages[1]
    p2 = peer_id(page2)
    page2.close()
    row = wait_for(
        lambda: (lk := a.link_to(p2)) is not None and lk["state"] != "open" and lk,
        30,
        what="node a to see the closed page's link end",
    )
    assert row["state"] == "failed", row


def test_cors_is_open_for_joining_and_closed_elsewhere(mesh: list[NodeProcess]) -> None:
    a, _, c = mesh
    origin = {"Origin": "http://elsewhere.example"}
    module = httpx.get(a.url + "/f0peer.js", headers=origin)
    assert module.status_code == 200 and module.headers["content-type"].startswith("application/javascript")
    assert module.headers["access-control-allow-origin"] == "*"
    assert "export class F0Peer" in module.text
    preflight = {
        **origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    assert httpx.options(a.url + "/offer", headers=preflight).status_code == 204
    assert "access-control-allow-origin" not in httpx.get(a.url + "/api/peers", headers=origin).headers
    refused = httpx.options(a.url + "/api/gossip", headers=preflight)
    assert refused.status_code == 403 and refused.json()["error"] == "cors_refused"
    allowed = httpx.options(c.url + "/api/gossip", headers={**preflight, "Origin": FOREIGN})
    assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == FOREIGN
    assert (
        "access-control-allow-origin"
        not in httpx.options(a.url + "/api/gossip", headers={**preflight, "Origin": FOREIGN}).headers
    )


def test_the_readme_example_runs_as_printed(mesh: list[NodeProcess], browser: Any) -> None:
    b = mesh[1]
    section = README.read_text().split("\n## Join from a browser\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```html\n(.*?)^```$", section, re.M | re.S)
    context = browser.new_context()
    try:
        page = context.new_page()
        logged: list[str] = []
        page.on("console", lambda msg: logged.append(msg.text))
        page.goto(b.url + "/healthz")
        page.set_content(block.replace("http://127.0.0.1:8700", b.url))
        wait_for(
            lambda: any(m["payload"] == {"text": "hello from a page"} for m in chat(b)),
            20,
            what="the page's hello",
        )
        # console events reach this process while it talks to the page: evaluate() lets them in
        wait_for(
            lambda: page.evaluate("() => true") and "chat: hello from a page" in logged,
            10,
            what="the page's own subscriber",
        )
    finally:
        context.close()


def test_the_dashboard_joins_as_a_peer_when_asked(mesh: list[NodeProcess], browser: Any) -> None:
    a = mesh[0]
    context = browser.new_context()
    console = Console()
    try:
        page = context.new_page()
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)
        page.goto(a.url + "/", wait_until="domcontentloaded")
        page.click("#login-dismiss")
        assert not page.is_checked("#peer-join") and page.locator("#peer-status").is_hidden()
        page.check("#peer-join")
        page.wait_for_function("() => document.querySelector('#peer-status').title.startsWith('12D3KooW')")
        me = page.get_attribute("#peer-status", "title")
        row = wait_for(lambda: a.link_to(me), 20, what="node a's link to the dashboard page")
        assert row["state"] == "open" and row["browser"] is True
        page.set_viewport_size({"width": 390, "height": 844})  # the toggle fits a phone's width
        assert page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        assert page.get_by_label("Join as a peer").is_checked()
        page.uncheck("#peer-join")
        wait_for(lambda: a.link_to(me)["state"] == "closed", 20, what="the page's bye to close the link")
    finally:
        context.close()
    assert not console.errors, console.errors
