"""The dashboard in a real browser (Debian's Chromium) against real ``f0mesh up`` processes.

Log in, connect a peer with one click and watch its live figures, close and reconnect it, stop the
peer and watch its link turn bad; see every node of a 5-node mesh in the topology, open a link's QoS
history, check phone width and accessible names, and save the README's screenshot. Console errors
fail every test (see conftest.py).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from nodes import TOKEN, start_all, wait_for

FAST = ["--qos-interval", "1", "--probe-rate", "5"]
NO_AUTODIAL = ["--d-lo", "0", "--d", "0", "--d-hi", "8"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
# Berlin, New York, São Paulo, Tokyo, Sydney: the world-map layout of the 5-node mesh.
LOCATIONS = ["52.52,13.40", "40.71,-74.01", "-23.55,-46.63", "35.68,139.69", "-33.87,151.21"]


def row(page, peer_id: str):
    return page.locator(f'#links-body tr[data-peer-id="{peer_id}"]')


def figures(page, peer_id: str) -> list[str | None]:
    r = row(page, peer_id)
    return [
        r.locator(f'td[data-field="{f}"]').get_attribute("data-value")
        for f in ("rtt_ms", "jitter_ms", "bitrate_kbps")
    ]


def test_login_connect_live_figures_close_and_bad_link(node_factory, dashboard) -> None:
    a, b = node_factory.many("a", "b", extra=[*FAST, *NO_AUTODIAL])
    assert a.http.post("/api/peers", json={"url": b.url}).status_code == 200  # known, not linked
    dash = dashboard(a.url + "/")
    page = dash.page

    def status_has(selector: str, text: str, timeout: float = 15_000) -> None:
        # Functions, not expression strings: the page's CSP forbids eval, which string expressions need.
        page.wait_for_function(
            "([sel, text]) => document.querySelector(sel).textContent.includes(text)",
            arg=[selector, text],
            timeout=timeout,
        )

    # Read-only first: the page shows the node and asks for the token in a form (no prompt()).
    assert page.locator("#login").is_visible()
    page.wait_for_function("id => document.querySelector('#self-id').title === id", arg=a.peer_id)
    page.evaluate("() => { window.__sameDocument = 'not reloaded'; }")

    dash.console.allow(r"status of 401")  # the wrong token below, on purpose
    page.fill("#login-token", "not-the-token")
    page.click("#login-form button[type=submit]")
    status_has("#login-status", "wrong admin token")
    # The console watcher sees resource errors too: the 401 was logged, and allowed only here.
    assert any("status of 401" in m for m in dash.console.messages), dash.console.messages
    dash.console.allowed.clear()

    page.fill("#login-token", TOKEN)
    page.click("#login-form button[type=submit]")
    page.locator("#login").wait_for(state="hidden")
    assert page.inner_text("#auth-status") == "operator"
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["f0mesh_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert not cookies["f0mesh_csrf"]["httpOnly"]

    # Connect: the known peer is offered; progress, then the new link in words.
    page.wait_for_selector(f'#connect-peer option[value="{b.peer_id}"]', state="attached")
    page.select_option("#connect-peer", b.peer_id)
    page.evaluate(
        """() => {
          window.__connectTexts = [];
          const el = document.querySelector('#connect-status');
          new MutationObserver(() => window.__connectTexts.push(el.textContent))
            .observe(el, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.click("#connect-button")
    status_has("#connect-status", "Linked to", timeout=30_000)
    texts = page.evaluate("() => window.__connectTexts")
    assert any(t.startswith("Connecting to") for t in texts), texts
    link = a.link_to(b.peer_id)
    assert link and link["state"] == "open"
    assert link["link_id"] in page.inner_text("#connect-status")

    # The new row with live figures that change without a reload.
    r = row(page, b.peer_id)
    r.wait_for()
    assert r.get_attribute("data-state") == "open"
    wait_for(lambda: figures(page, b.peer_id)[0], 15, 0.2, "a measured RTT")
    first = figures(page, b.peer_id)
    assert float(first[0]) > 0 and r.locator('td[data-field="rtt_ms"]').inner_text().endswith("ms")
    wait_for(lambda: figures(page, b.peer_id) != first, 10, 0.2, "figures to change live")
    badge = r.locator('td[data-field="health"] .badge')
    wait_for(lambda: badge.inner_text() == "good", 10, 0.2, "health badge good")
    for field in ("rtt_ms", "jitter_ms", "loss_pct", "bitrate_kbps", "health"):
        assert r.locator(f'td[data-field="{field}"]').count() == 1
    assert r.locator("td").nth(1).get_attribute("title") == b.peer_id  # full id on hover

    # Sortable: a header click sorts and says so.
    page.click('#links-table th[data-sort="rtt_ms"] button')
    assert page.get_attribute('#links-table th[data-sort="rtt_ms"]', "aria-sort") == "ascending"
    page.click('#links-table th[data-sort="rtt_ms"] button')
    assert page.get_attribute('#links-table th[data-sort="rtt_ms"]', "aria-sort") == "descending"

    # Close from the row, then reconnect by URL.
    r.get_by_role("button", name="Close the link").click()
    page.click("#confirm-ok")  # the confirm dialog (its Cancel: test_dashboard_views.py)
    status_has("#links-status", "Closed the link")
    wait_for(lambda: r.get_attribute("data-state") == "closed", 10, 0.2, "row closed")
    assert a.link_to(b.peer_id)["state"] == "closed"
    page.fill("#connect-url", b.url)
    page.click("#connect-button")
    status_has("#connect-status", "Linked to", timeout=30_000)
    wait_for(
        lambda: r.get_attribute("data-state") == "open" and badge.inner_text() == "good", 15, 0.2, "relinked"
    )

    # Stop the peer: its link turns bad (then fails) on the page, within a few sampling intervals.
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        wait_for(
            lambda: badge.inner_text() in ("bad", "failed") or r.get_attribute("data-state") == "failed",
            12,
            0.1,
            "the stopped peer's link to turn bad",
        )
        assert time.monotonic() - started < 12
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    assert page.evaluate("() => window.__sameDocument") == "not reloaded"

    # Log out: the page is read-only again, and the session's old cookie no longer works.
    old = {c["name"]: c["value"] for c in page.context.cookies()}
    page.click("#logout")
    wait_for(lambda: page.inner_text("#auth-status") == "read-only", 10, 0.1, "read-only after logging out")
    assert page.locator("#login-open").is_visible() and page.locator("#logout").is_hidden()
    assert not {c["name"] for c in page.context.cookies()} & {"f0mesh_session", "f0mesh_csrf"}
    replay = {"cookie": f"f0mesh_session={old['f0mesh_session']}", "x-csrf-token": old["f0mesh_csrf"]}
    r = httpx.post(a.url + "/api/gossip", json={"topic": "t", "payload": 1}, headers=replay, timeout=10)
    assert r.status_code == 401, r.text


def test_five_node_mesh_topology_history_phone_and_screenshot(node_factory, dashboard) -> None:
    boot = node_factory("boot", extra=[*FAST, "--location", LOCATIONS[0]])
    others = start_all(
        [
            node_factory("n", extra=[*FAST, "--bootstrap", boot.url, "--location", loc], start=False)
            for loc in LOCATIONS[1:]
        ]
    )
    ids = {n.peer_id for n in [boot, *others]}

    def mesh_known() -> bool:
        nodes = boot.http.get("/api/telemetry").json()["nodes"]
        return set(nodes) >= ids and all(nodes[i]["links"] for i in ids)

    wait_for(mesh_known, 60, 0.5, "every node's telemetry at the bootstrap node")

    dash = dashboard(boot.url + "/")
    page = dash.page
    page.click("#login-dismiss")  # read-only views need no token
    assert page.locator("#login").is_hidden()

    # Every node of the mesh in the graph, not only the bootstrap node's neighbours.
    svg_nodes = page.locator("#topology-svg g[data-peer-id]")
    wait_for(lambda: svg_nodes.count() == 5, 15, 0.2, "5 nodes in the topology")
    assert set(svg_nodes.evaluate_all("els => els.map(e => e.dataset.peerId)")) == ids
    assert page.locator("#topology-svg .graticule").count() == 1  # located peers: world layout
    assert page.locator("#topology-svg g.edge").count() >= 4
    page.select_option("#layout-select", "force")
    wait_for(lambda: page.locator("#topology-svg .graticule").count() == 0, 5, 0.1, "force layout")
    assert svg_nodes.count() == 5
    page.select_option("#layout-select", "auto")

    # A link of this node: its QoS history as small charts.
    wait_for(lambda: page.locator('#links-body tr[data-state="open"]').count() >= 1, 15, 0.2, "links table")
    edge = page.locator(
        f'#topology-svg g.edge[data-a="{boot.peer_id}"], #topology-svg g.edge[data-b="{boot.peer_id}"]'
    )
    wait_for(lambda: edge.count() >= 1, 15, 0.2, "an edge of the bootstrap node")
    edge.first.click()
    page.locator('#detail-charts svg[data-field="rtt_ms"] polyline').wait_for()
    assert page.locator("#detail-charts figure.chart").count() == 5  # rtt, jitter, loss, bitrate, health

    # Gossip, audit and trust panels are filled from the API.
    page.wait_for_selector("#messages-body tr[data-topic]", state="attached")  # system topics: hidden
    page.wait_for_selector("#audit-body tr[data-event]")
    page.wait_for_selector("#trust-body tr[data-peer-id]")

    # Accessible names on every control; a favicon.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, input, select, [role=button]')]
            .filter(el => !el.hidden && el.type !== 'hidden' && el.getClientRects().length)
            .filter(el => !((el.labels && el.labels.length) || el.getAttribute('aria-label')
                            || el.getAttribute('aria-labelledby') || el.textContent.trim()))
            .map(el => el.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    icon = page.request.get(boot.url + "/favicon.ico")
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml")

    # For the picture only: give trust scores a moment to spread so nodes are sized by them.
    for _ in range(40):
        scores = boot.http.get("/api/trust").json()["scores"]
        if sum(1 for v in scores.values() if v > 0.01) >= 4:
            break
        time.sleep(0.25)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.emulate_media(reduced_motion="reduce")  # no highlight flashes of live cells in the picture
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 20_000

    # Phone width: nothing wider than the screen, the graph and the controls still there.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    width, client = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width <= client, (width, client)
    assert page.locator("#connect-button").is_visible()
    assert svg_nodes.count() == 5


def test_state_panel_degrades_without_the_state_api_and_shows_conflicts_with_it(
    node_factory, dashboard
) -> None:
    node = node_factory("s")
    paths = node.http.get("/openapi.json").json()["paths"]
    dash = dashboard(node.url + "/")
    page = dash.page
    page.click("#login-dismiss")
    status = page.locator("#state-status")
    if "/api/state/{name}/conflicts" in paths:
        page.wait_for_function("() => !document.querySelector('#state-name').disabled")
    else:  # an older node: the panel says so instead of failing (and never probes with a 404)
        wait_for(lambda: "does not serve" in status.inner_text(), 10, 0.1, "the panel to degrade")
        assert page.locator("#state-name").is_disabled()

    # With the state API (served here by the browser itself): documents, then one's conflicts.
    def json_route(body, status_code=200):
        return lambda route: route.fulfill(status=status_code, json=body)

    page.route(
        "**/openapi.json",
        json_route({"paths": {"/api/state": {"get": {}}, "/api/state/{name}/conflicts": {"get": {}}}}),
    )
    page.route(
        "**/api/state",
        json_route({"documents": [{"name": "config", "kind": "map", "size": 2, "bytes": 96}], "dropped": {}}),
    )
    conflict = {"key": "colour", "kept": "blue", "discarded": "red", "resolution": "last writer wins"}
    page.route("**/api/state/config/conflicts", json_route({"name": "config", "conflicts": [conflict]}))
    page.route(
        "**/api/state/nope/conflicts",
        json_route({"error": "not_found", "detail": "no document named 'nope'"}, 404),
    )
    page.reload()
    page.get_by_role("button", name="Conflicts of config").click()
    wait_for(lambda: "1 concurrent write" in status.inner_text(), 10, 0.1, "conflicts loaded")
    assert "last writer wins" in page.inner_text("#state-body")
    dash.console.allow(r"status of 404")
    page.fill("#state-name", "nope")
    page.click("#state-form button[type=submit]")
    wait_for(lambda: "No replicated document named" in status.inner_text(), 10, 0.1, "404 in words")

    # a keep-all map's open key: every value kept, the one readers are shown first
    sibling = {"deleted": False, "ts": "000001765050443123-0000000000-12D3KooWA", "origin": "12D3KooWA"}
    open_key = {
        "key": "vote",
        "open": True,
        "siblings": [{**sibling, "value": "yes"}, {**sibling, "value": "no", "origin": "12D3KooWB"}],
        "kept": "yes",
        "kept_origin": "12D3KooWA",
        "kept_ts": sibling["ts"],
        "resolution": "keep all: every concurrent value is kept until a writer writes the key again",
    }
    page.route("**/api/state/votes/conflicts", json_route({"name": "votes", "conflicts": [open_key]}))
    page.fill("#state-name", "votes")
    page.click("#state-form button[type=submit]")
    wait_for(lambda: "open" in page.inner_text("#state-body"), 10, 0.1, "the open key shown")
    body = page.inner_text("#state-body")
    assert '"yes"' in body and '"no"' in body and "shown" in body and "keep all" in body, body


def test_topology_model_rules_in_the_page(node_factory, dashboard) -> None:
    """buildModel, run by the page's own module: both ends' views, a dead peer's stale report, strangers."""
    node = node_factory("m")
    page = dashboard(node.url + "/").page
    result = page.evaluate(
        """async () => {
          const { buildModel } = await import('/dashboard/topology.js');
          const now = 1000;
          const link = (peer_id, health, rtt_ms) => ({ peer_id, health, rtt_ms, jitter_ms: 1, loss_pct: 0,
                                                       bitrate_kbps: 10 });
          const model = buildModel({ nodes: {
            A: { url: 'http://a', location: '52.5,13.4', links: [link('B', 'good', 2), link('C', 'good', 3)],
                 received_at: null },
            B: { url: 'http://b', location: null, links: [link('A', 'degraded', 4), link('D', 'bad', 9)],
                 received_at: 990 },
            // C died: its last report, long ago, still lists a link to B that B no longer reports.
            C: { url: 'http://c', location: 'nowhere', links: [link('A', 'good', 3), link('B', 'good', 1)],
                 received_at: 100 },
          } }, 'A', now);
          const edge = (a, b) => model.edges.get([a, b].sort().join('|'));
          return {
            nodes: [...model.nodes.keys()].sort(),
            edges: [...model.edges.keys()].sort(),
            ab: edge('A', 'B') && [edge('A', 'B').health, edge('A', 'B').rtt_ms],
            ac: edge('A', 'C') && edge('A', 'C').health,
            d: model.nodes.get('D').reported,
            locA: model.nodes.get('A').location, locC: model.nodes.get('C').location,
          };
        }"""
    )
    assert result["nodes"] == ["A", "B", "C", "D"]  # D is known only from B's report
    assert result["edges"] == ["A|B", "A|C", "B|D"]  # C–B is gone: B, the fresher end, no longer has it
    assert result["ab"] == ["degraded", 3]  # both ends' current views: the worse health, the mean RTT
    assert result["ac"] == "good"  # C's view is stale: only A's counts
    assert result["d"] is False
    assert result["locA"] == {"lat": 52.5, "lon": 13.4} and result["locC"] is None
