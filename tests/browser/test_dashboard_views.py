"""The dashboard's operator views in a real browser against three named, located ``f0mesh up`` nodes.

Node names next to PeerIds, conflicts in words, system topics hidden until asked for, the topic meshes
with scores and the tags peers state, QoS charts with axes and units, confirm dialogs before Close and
Block (also when the click came before logging in), the globe with one dot per located node that turns
when dragged and pulses when gossip arrives, and the QoS heatmap. Screenshots of each view go to the
test's tmp dir.
"""

from __future__ import annotations

import re
import time

from f0mesh.crdt.hlc import HLCTimestamp

from nodes import TOKEN, wait_for

FAST = ["--qos-interval", "1", "--probe-rate", "5"]
PLACES = [("alpha", "52.52,13.40"), ("beta", "40.71,-74.01"), ("gamma", "35.68,139.69")]
HLC_TEXT = re.compile(r"\d{15}-\d{10}-")


def test_names_conflicts_topics_charts_confirm_globe_heatmap(node_factory, dashboard, tmp_path) -> None:
    def place(i: int) -> list[str]:
        return ["--name", PLACES[i][0], "--location", PLACES[i][1]]

    a = node_factory("a", extra=[*FAST, *place(0)])
    b, c = (
        node_factory(n, extra=[*FAST, "--bootstrap", a.url, *place(i), "--tag", f"role=edge-{n}"])
        for i, n in ((1, "b"), (2, "c"))
    )
    ids = {a.peer_id, b.peer_id, c.peer_id}
    health = a.http.get("/healthz").json()
    assert health["name"] == "alpha"

    def mesh_known() -> bool:
        nodes = a.http.get("/api/telemetry").json()["nodes"]
        return set(nodes) >= ids and all(nodes[i]["links"] for i in ids)

    wait_for(mesh_known, 60, 0.5, "every node's telemetry at node a")
    names = {p["peer_id"]: p["name"] for p in a.http.get("/api/peers").json()["peers"]}
    assert names[b.peer_id] == "beta" and names[c.peer_id] == "gamma"  # from their signed telemetry
    wait_for(lambda: a.link_to(b.peer_id) and a.link_to(b.peer_id)["state"] == "open", 30, 0.2, "a–b link")

    dash = dashboard(a.url + "/")
    page = dash.page
    page.emulate_media(reduced_motion="reduce")
    page.click("#login-dismiss")
    shots = tmp_path / "shots"
    shots.mkdir()

    # Names wherever a PeerId is: the header, the links table, the topology.
    wait_for(lambda: page.inner_text("#self-id") == f"alpha …{a.peer_id[-8:]}", 15, 0.2, "own name")
    row = page.locator(f'#links-body tr[data-peer-id="{b.peer_id}"]')
    wait_for(lambda: row.locator("td.peer").inner_text().startswith("beta …"), 15, 0.2, "peer name")
    topology = page.locator("#topology-svg")
    wait_for(lambda: "gamma" in topology.text_content(), 15, 0.2, "names in the topology")

    # The globe: one dot per located node; a drag turns it; gossip arriving pulses a link.
    dots = page.locator("#globe-svg .node circle.dot")
    wait_for(lambda: dots.count() == 3, 15, 0.2, "3 located nodes on the globe")
    assert set(page.locator("#globe-svg .node").evaluate_all("els => els.map(e => e.dataset.peerId)")) == ids
    assert page.locator("#globe-svg .edge path").count() >= 2
    dot = page.locator(f'#globe-svg .node[data-peer-id="{a.peer_id}"] circle')
    before = float(dot.get_attribute("cx"))
    page.locator("#globe-svg").scroll_into_view_if_needed()
    box = page.locator("#globe-svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    wait_for(lambda: float(dot.get_attribute("cx")) > before + 5, 5, 0.1, "the globe to turn with the drag")
    assert b.http.post("/api/gossip", json={"topic": "hello", "payload": {"from": "beta"}}).status_code == 200
    wait_for(
        lambda: page.get_attribute("#globe-svg", "data-pulses"), 15, 0.2, "a pulse as the message arrives"
    )

    # The heatmap: RTT of node a's links from a's own telemetry, loss on request.
    cell = page.locator(f'#heatmap td[data-from="{a.peer_id}"][data-to="{b.peer_id}"]')
    wait_for(lambda: cell.get_attribute("data-value") is not None, 15, 0.2, "a measured heatmap cell")
    assert float(cell.get_attribute("data-value")) > 0 and cell.inner_text().isdigit()
    assert "beta" in page.inner_text("#heatmap thead")
    page.select_option("#heatmap-metric", "loss_pct")
    wait_for(lambda: "." in cell.inner_text(), 5, 0.1, "loss figures")
    page.locator("#globe-card").screenshot(path=str(shots / "globe.png"))
    page.emulate_media(color_scheme="dark", reduced_motion="reduce")
    page.locator("#globe-card").screenshot(path=str(shots / "globe-dark.png"))
    page.emulate_media(color_scheme="light", reduced_motion="reduce")

    # The topic meshes: per topic the mesh peers with their gossip score; tags wherever peers are listed.
    mesh_row = page.locator(f'#mesh-body tr[data-topic="telemetry"][data-peer-id="{b.peer_id}"]')
    wait_for(lambda: mesh_row.count() == 1, 20, 0.2, "b in node a's telemetry mesh")
    float(mesh_row.locator("td.score").inner_text())
    mesh_tags = mesh_row.locator("td.tags")
    wait_for(lambda: mesh_tags.inner_text() == "role=edge-b", 20, 0.2, "b's tags in the mesh view")
    trust_tags = page.locator(f'#trust-body tr[data-peer-id="{c.peer_id}"] td.tags')
    wait_for(lambda: trust_tags.count() and trust_tags.inner_text() == "role=edge-c", 15, 0.2, "c's tags")
    link_title = row.locator("td.peer")
    wait_for(lambda: "role=edge-b" in (link_title.get_attribute("title") or ""), 20, 0.2, "tags on the link")
    page.locator("#mesh").screenshot(path=str(shots / "mesh.png"))

    # System topics hidden by default; the toggle shows them; the user's message always shows.
    hello = page.locator('#messages-body tr[data-topic="hello"]')
    hello.wait_for()
    telemetry = page.locator('#messages-body tr[data-topic="telemetry"]')
    wait_for(lambda: telemetry.count() > 0, 20, 0.2, "a telemetry message in the panel")
    assert telemetry.first.is_hidden() and hello.is_visible()
    page.check("#messages-show-system")
    assert telemetry.first.is_visible()
    page.locator("#messages").screenshot(path=str(shots / "messages-system.png"))
    page.uncheck("#messages-show-system")
    assert telemetry.first.is_hidden()
    page.locator("#messages").screenshot(path=str(shots / "messages.png"))

    # QoS history with a time axis and units; the table's name is not the page's business.
    row.get_by_role("button", name="QoS history").click()
    chart = page.locator("#detail-charts figure.chart.rtt")
    chart.locator("polyline").wait_for()
    assert chart.locator(".axis-title").inner_text() == "RTT (ms)"
    ticks = chart.locator("text.tick.x").all_text_contents()
    assert len(ticks) == 4 and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in ticks), ticks
    assert chart.locator("text.tick.y").count() == 3
    assert "link_samples" not in page.inner_text("#detail")
    page.locator("#detail").screenshot(path=str(shots / "charts.png"))

    # Conflicts in words, from real HLC strings: who wrote what, when, which was kept; no raw stamps.
    wall = int(time.time() * 1000)
    conflicts = [
        {
            "key": "colour",
            "kept": "blue",
            "discarded": "red",
            "kept_ts": HLCTimestamp(wall, 0, b.peer_id).to_str(),
            "discarded_ts": HLCTimestamp(wall - 1000, 3, c.peer_id).to_str(),
            "kept_deleted": False,
            "discarded_deleted": False,
            "kept_origin": b.peer_id,
            "discarded_origin": c.peer_id,
            "resolution": "last writer wins: the later HLC timestamp (wall time, counter, node id) is kept",
        },
        {
            "key": "a-very-long-key-" + "x" * 60,
            "kept": {"nested": ["a" * 200]},
            "discarded": None,
            "kept_ts": HLCTimestamp(wall, 1, c.peer_id).to_str(),
            "discarded_ts": HLCTimestamp(wall, 0, b.peer_id).to_str(),
            "kept_deleted": False,
            "discarded_deleted": True,
            "kept_origin": c.peer_id,
            "discarded_origin": b.peer_id,
            "resolution": "last writer wins: the later HLC timestamp (wall time, counter, node id) is kept",
        },
    ]
    page.route(
        "**/api/state/config/conflicts", lambda r: r.fulfill(json={"name": "config", "conflicts": conflicts})
    )
    page.wait_for_function("() => !document.querySelector('#state-name').disabled")
    page.fill("#state-name", "config")
    page.click("#state-form button[type=submit]")
    body = page.locator("#state-body")
    wait_for(lambda: "2 concurrent writes" in page.inner_text("#state-status"), 10, 0.1, "conflicts loaded")
    text = body.inner_text()
    assert not HLC_TEXT.search(text), text
    first = body.locator("ol.conflicts > li").first.inner_text()
    assert re.search(r'node beta …\S{8} wrote "blue" at \d\d:\d\d:\d\d — kept', first), first
    assert re.search(r'node gamma …\S{8} wrote "red" at \d\d:\d\d:\d\d — lost', first), first
    assert "deleted it" in text and "last writer wins" in text
    card = page.locator("#state")
    overflow = card.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert overflow[0] <= overflow[1], overflow  # long values wrap inside the card
    card.screenshot(path=str(shots / "conflicts.png"))

    # Close clicked while read-only: log in, and the dialog still asks; cancelling keeps the link open.
    close = row.get_by_role("button", name="Close the link")
    close.click()
    page.locator("#login").wait_for()
    page.fill("#login-token", TOKEN)
    page.click("#login-form button[type=submit]")
    dialog = page.locator("#confirm")
    dialog.wait_for()
    assert "Close the link to beta" in dialog.inner_text()
    page.screenshot(path=str(shots / "confirm.png"))
    page.click("#confirm-cancel")
    dialog.wait_for(state="hidden")
    wait_for(lambda: "Kept the link" in page.inner_text("#links-status"), 5, 0.1, "cancel in words")
    assert a.link_to(b.peer_id)["state"] == "open"
    # Block asks too; cancelled, nothing is blocked.
    row.get_by_role("button", name="Block").click()
    dialog.wait_for()
    page.click("#confirm-cancel")
    dialog.wait_for(state="hidden")
    blocked = {p["peer_id"]: p["blocked"] for p in a.http.get("/api/peers").json()["peers"]}
    assert blocked[b.peer_id] is False
    # Confirmed, the link closes.
    close.click()
    dialog.wait_for()
    page.click("#confirm-ok")
    wait_for(lambda: "Closed the link" in page.inner_text("#links-status"), 15, 0.1, "closed")
    assert a.link_to(b.peer_id)["state"] == "closed"


def test_globe_projection_and_peer_given_names_in_the_page(node_factory, dashboard) -> None:
    """The page's own modules: the orthographic projection, and names a stranger may send."""
    node = node_factory("p")
    page = dashboard(node.url + "/").page
    result = page.evaluate(
        """async () => {
          const { project } = await import('/dashboard/globe.js');
          const { peerLabel, setName } = await import('/dashboard/util.js');
          const r = (p) => [Math.round(p.x), Math.round(p.y), p.front];
          setName('12D3KooWgoodgoodgood', 'berlin 1');
          setName('12D3KooWlonglonglong', 'x'.repeat(33));
          setName('12D3KooWctrlctrlctrl', 'evil\\u202eeman');
          setName('12D3KooWhtmlhtmlhtml', '<b>bold</b>');
          return {
            centre: r(project(52, 13, 52, 13)),
            north: r(project(90, 0, 0, 0)),
            east: r(project(0, 90, 0, 0)),
            behind: r(project(0, 180, 0, 0)),
            labels: ['good', 'long', 'ctrl', 'html'].map((k) => peerLabel(`12D3KooW${k}${k}${k}`)),
          };
        }"""
    )
    assert result["centre"] == [200, 200, True]  # the point looked at is the middle of the disc
    assert result["north"] == [200, 20, True] and result["east"] == [380, 200, True]  # on the limb
    assert result["behind"][2] is False
    assert result["labels"] == ["berlin 1 …goodgood", "…longlong", "…ctrlctrl", "<b>bold</b> …htmlhtml"]
