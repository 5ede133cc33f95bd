// The whole mesh as an SVG graph, from the link telemetry every node gossips.
// Layouts: force-directed (Fruchterman–Reingold), circle, or an equirectangular world map when peers
// declare "lat,lon" locations. Nodes are sized by trust, links coloured by health and widened by bitrate.

import { fmtFigure, hash01, isNum, parseLocation, s, peerLabel, worseHealth } from "./util.js";
import { LAND } from "./worldmap.js";

const W = 1000;
const H = 560;
const MARGIN = 40;
const MAP_H = 500; // world map area; the band below holds peers without a location
const FRESH_S = 30; // two ends' views of a link within this many seconds of each other both count

/**
 * Nodes and undirected edges from GET /api/telemetry.
 * An edge both ends report on is shown only if the fresher end still reports it (a dead peer's
 * last report does not keep its links alive); figures combine the ends' current views conservatively.
 */
export function buildModel(telemetry, selfId, now = Date.now() / 1000) {
  const reports = (telemetry && telemetry.nodes) || {};
  const nodes = new Map();
  const ensure = (id) => {
    if (!nodes.has(id)) nodes.set(id, { id, url: null, location: null, locationText: null, reported: false, receivedAt: null, degree: 0 });
    return nodes.get(id);
  };
  if (selfId) ensure(selfId).self = true;
  for (const [id, r] of Object.entries(reports)) {
    const n = ensure(id);
    n.reported = true;
    n.url = typeof r.url === "string" ? r.url : null;
    n.locationText = typeof r.location === "string" ? r.location : null;
    n.location = parseLocation(r.location);
    n.receivedAt = id === selfId ? now : isNum(r.received_at) ? r.received_at : null;
  }
  const edges = new Map();
  for (const [id, r] of Object.entries(reports)) {
    for (const l of Array.isArray(r.links) ? r.links : []) {
      if (!l || typeof l.peer_id !== "string" || l.peer_id === id) continue;
      ensure(l.peer_id);
      const [a, b] = id < l.peer_id ? [id, l.peer_id] : [l.peer_id, id];
      const key = `${a}|${b}`;
      if (!edges.has(key)) edges.set(key, { key, a, b, reports: [] });
      edges.get(key).reports.push({ ...l, from: id });
    }
  }
  for (const [key, e] of edges) {
    if (reports[e.a] && reports[e.b]) {
      const ta = nodes.get(e.a).receivedAt ?? 0;
      const tb = nodes.get(e.b).receivedAt ?? 0;
      const fresher = ta >= tb ? e.a : e.b;
      if (!e.reports.some((r) => r.from === fresher)) {
        edges.delete(key);
        continue;
      }
    }
    // Telemetry arrives at different times: a view much older than the other end's does not count.
    const at = (r) => nodes.get(r.from).receivedAt ?? 0;
    const freshest = Math.max(...e.reports.map(at));
    const current = e.reports.filter((r) => at(r) >= freshest - FRESH_S);
    const nums = (f) => current.map((r) => r[f]).filter(isNum);
    const rtts = nums("rtt_ms");
    e.health = current.reduce((h, r) => worseHealth(h, r.health), "unknown");
    e.rtt_ms = rtts.length ? rtts.reduce((x, y) => x + y, 0) / rtts.length : null;
    e.jitter_ms = nums("jitter_ms").length ? Math.max(...nums("jitter_ms")) : null;
    e.loss_pct = nums("loss_pct").length ? Math.max(...nums("loss_pct")) : null;
    e.bitrate_kbps = nums("bitrate_kbps").length ? Math.max(...nums("bitrate_kbps")) : null;
    nodes.get(e.a).degree++;
    nodes.get(e.b).degree++;
  }
  return { nodes, edges };
}

export class Topology {
  constructor(svg, { onSelectEdge, onSelectNode }) {
    this.svg = svg;
    this.onSelectEdge = onSelectEdge;
    this.onSelectNode = onSelectNode;
    this.pos = new Map(); // peer id -> {x, y}, kept between refreshes so the graph does not jump
    this.structure = "";
    this.signature = "";
    this.mode = "auto";
    this.selected = null; // {kind: "edge"|"node", key}
    this.model = { nodes: new Map(), edges: new Map() };
    this.scores = {};
    this.selfId = null;
  }

  setMode(mode) {
    this.mode = mode;
    this.structure = "";
    this.render(this.model, this.scores, this.selfId);
  }

  select(kind, key) {
    this.selected = kind ? { kind, key } : null;
    for (const el of this.svg.querySelectorAll(".selected")) el.classList.remove("selected");
    if (!this.selected) return;
    const sel = kind === "edge" ? `.edge[data-key="${cssEscape(key)}"]` : `.node[data-peer-id="${cssEscape(key)}"]`;
    const el = this.svg.querySelector(sel);
    if (el) el.classList.add("selected");
  }

  effectiveMode(model) {
    if (this.mode !== "auto") return this.mode;
    const located = [...model.nodes.values()].filter((n) => n.location).length;
    if (located > 0 && located >= model.nodes.size / 2) return "world";
    return model.nodes.size <= 3 ? "circle" : "force";
  }

  render(model, scores, selfId) {
    this.model = model;
    this.scores = scores || {};
    this.selfId = selfId;
    const mode = this.effectiveMode(model);
    const ids = [...model.nodes.keys()].sort();
    const structure = `${mode}#${ids.join(",")}#${[...model.edges.keys()].sort().join(",")}#${ids.map((id) => model.nodes.get(id).locationText || "").join(",")}`;
    if (structure !== this.structure) {
      this.layout(mode, model, ids);
      this.structure = structure;
    }
    const maxScore = Math.max(0, ...ids.map((id) => this.scores[id] || 0));
    const radius = (id) => (maxScore > 0 ? 7 + 13 * Math.sqrt((this.scores[id] || 0) / maxScore) : 10);
    const signature = JSON.stringify([
      structure,
      [...model.edges.values()].map((e) => [e.health, Math.round(edgeWidth(e.bitrate_kbps) * 4), fmtFigure("rtt_ms", e.rtt_ms)]),
      ids.map((id) => [Math.round(radius(id)), peerLabel(id)]),
    ]);
    if (signature === this.signature) return;
    this.signature = signature;
    this.draw(mode, model, ids, radius);
  }

  layout(mode, model, ids) {
    if (mode === "world") return this.worldLayout(model, ids);
    if (mode === "circle") return this.circleLayout(ids);
    return this.forceLayout(model, ids);
  }

  circleLayout(ids) {
    const n = ids.length;
    const cx = W / 2;
    const cy = H / 2;
    const r = Math.min(W, H) / 2 - MARGIN - 20;
    ids.forEach((id, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
      this.pos.set(id, n === 1 ? { x: cx, y: cy } : { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) });
    });
  }

  worldLayout(model, ids) {
    const unplaced = [];
    const taken = new Map();
    for (const id of ids) {
      const loc = model.nodes.get(id).location;
      if (!loc) {
        unplaced.push(id);
        continue;
      }
      let x = ((loc.lon + 180) / 360) * W;
      let y = ((90 - loc.lat) / 180) * MAP_H;
      // Peers in one place fan out around it so every one stays visible and clickable.
      const cell = `${Math.round(x / 24)}:${Math.round(y / 24)}`;
      const k = taken.get(cell) || 0;
      taken.set(cell, k + 1);
      if (k > 0) {
        const a = k * 2.4;
        x += 22 * Math.cos(a) * Math.sqrt(k);
        y += 22 * Math.sin(a) * Math.sqrt(k);
      }
      this.pos.set(id, { x: clamp(x, 12, W - 12), y: clamp(y, 12, MAP_H - 12) });
    }
    unplaced.forEach((id, i) => {
      this.pos.set(id, { x: 120 + ((i + 0.5) * (W - 160)) / unplaced.length, y: MAP_H + 32 });
    });
  }

  forceLayout(model, ids) {
    const n = ids.length;
    if (n === 0) return;
    const area = (W - 2 * MARGIN) * (H - 2 * MARGIN);
    const k = Math.sqrt(area / n) * 0.75;
    const fresh = ids.filter((id) => !this.pos.has(id) || this.lastMode !== "force");
    const p = new Map();
    ids.forEach((id, i) => {
      const known = this.lastMode === "force" && this.pos.get(id);
      if (known) {
        p.set(id, { ...known });
      } else {
        // A stable start: the peer id decides its place on a circle, so reloads look alike.
        const a = 2 * Math.PI * (hash01(id) + i / (n * 7));
        p.set(id, { x: W / 2 + (W / 4) * Math.cos(a), y: H / 2 + (H / 4) * Math.sin(a) });
      }
    });
    const edges = [...model.edges.values()];
    const iterations = fresh.length ? 400 : 60;
    let temp = fresh.length ? W / 8 : W / 40;
    const cool = temp / (iterations + 1);
    for (let it = 0; it < iterations; it++) {
      const disp = new Map(ids.map((id) => [id, { x: 0, y: 0 }]));
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          const a = p.get(ids[i]);
          const b = p.get(ids[j]);
          let dx = a.x - b.x;
          let dy = a.y - b.y;
          let d = Math.hypot(dx, dy);
          if (d < 0.01) {
            dx = hash01(ids[i] + ids[j]) - 0.5;
            dy = 0.5 - hash01(ids[j] + ids[i]);
            d = 0.01;
          }
          const f = (k * k) / d;
          const da = disp.get(ids[i]);
          const db = disp.get(ids[j]);
          da.x += (dx / d) * f;
          da.y += (dy / d) * f;
          db.x -= (dx / d) * f;
          db.y -= (dy / d) * f;
        }
      }
      for (const e of edges) {
        const a = p.get(e.a);
        const b = p.get(e.b);
        const dx = a.x - b.x;
        const dy = a.y - b.y;
        const d = Math.max(Math.hypot(dx, dy), 0.01);
        const f = (d * d) / k;
        const da = disp.get(e.a);
        const db = disp.get(e.b);
        da.x -= (dx / d) * f;
        da.y -= (dy / d) * f;
        db.x += (dx / d) * f;
        db.y += (dy / d) * f;
      }
      for (const id of ids) {
        const v = p.get(id);
        const dv = disp.get(id);
        // Gravity keeps separate components on the canvas.
        dv.x += (W / 2 - v.x) * 0.02 * k * 0.1;
        dv.y += (H / 2 - v.y) * 0.02 * k * 0.1;
        const d = Math.max(Math.hypot(dv.x, dv.y), 0.01);
        v.x = clamp(v.x + (dv.x / d) * Math.min(d, temp), MARGIN, W - MARGIN);
        v.y = clamp(v.y + (dv.y / d) * Math.min(d, temp), MARGIN, H - MARGIN);
      }
      temp = Math.max(temp - cool, 1);
    }
    fit(p);
    for (const [id, v] of p) this.pos.set(id, v);
  }

  draw(mode, model, ids, radius) {
    this.lastMode = mode;
    const focused = document.activeElement && this.svg.contains(document.activeElement)
      ? document.activeElement.dataset.key || document.activeElement.dataset.peerId
      : null;
    const layers = [];
    if (mode === "world") layers.push(graticule(ids.some((id) => !model.nodes.get(id).location)));
    const edgeLayer = s("g", { class: "edges" });
    for (const e of model.edges.values()) {
      const a = this.pos.get(e.a);
      const b = this.pos.get(e.b);
      if (!a || !b) continue;
      const label = `Link ${peerLabel(e.a)} – ${peerLabel(e.b)}: ${e.health}, RTT ${fmtFigure("rtt_ms", e.rtt_ms)}, loss ${fmtFigure("loss_pct", e.loss_pct)}, bitrate ${fmtFigure("bitrate_kbps", e.bitrate_kbps)}`;
      const g = s(
        "g",
        {
          class: `edge ${e.health}`,
          tabindex: 0,
          role: "button",
          "aria-label": label,
          dataset: { key: e.key, a: e.a, b: e.b, health: e.health },
        },
        s("title", { text: label }),
        s("line", { class: "vis", x1: f1(a.x), y1: f1(a.y), x2: f1(b.x), y2: f1(b.y), "stroke-width": f1(edgeWidth(e.bitrate_kbps)) }),
        s("line", { class: "hit", x1: f1(a.x), y1: f1(a.y), x2: f1(b.x), y2: f1(b.y) }),
      );
      activate(g, () => this.onSelectEdge(e));
      edgeLayer.append(g);
    }
    const nodeLayer = s("g", { class: "nodes" });
    for (const id of ids) {
      const node = model.nodes.get(id);
      const v = this.pos.get(id);
      if (!v) continue;
      const r = radius(id);
      const score = this.scores[id];
      const label = [
        `Peer ${id}${node.self ? " (this node)" : ""}`,
        node.url ? `URL ${node.url}` : null,
        `trust ${isNum(score) ? score.toFixed(3) : "unknown"}`,
        `${node.degree} link${node.degree === 1 ? "" : "s"}`,
        node.locationText ? `location ${node.locationText}` : null,
        node.reported ? null : "sent no telemetry yet",
      ]
        .filter(Boolean)
        .join(", ");
      const cls = ["node", node.self ? "self" : "", node.reported ? "" : "silent"].filter(Boolean).join(" ");
      const below = v.y + r + 14 <= (mode === "world" ? H - 2 : H - 4);
      const g = s(
        "g",
        { class: cls, tabindex: 0, role: "button", "aria-label": label, dataset: { peerId: id } },
        s("title", { text: label }),
        node.self ? s("circle", { class: "ring", cx: f1(v.x), cy: f1(v.y), r: f1(r + 4) }) : null,
        s("circle", { class: "dot", cx: f1(v.x), cy: f1(v.y), r: f1(r) }),
        s("text", { x: f1(v.x), y: f1(below ? v.y + r + 14 : v.y - r - 6), "text-anchor": "middle", text: peerLabel(id) }),
      );
      activate(g, () => this.onSelectNode(node));
      nodeLayer.append(g);
    }
    layers.push(edgeLayer, nodeLayer);
    const band = mode === "world" && ids.some((id) => !model.nodes.get(id).location);
    this.svg.setAttribute("viewBox", `0 0 ${W} ${mode === "world" && !band ? MAP_H : H}`);
    this.svg.replaceChildren(...layers);
    this.svg.setAttribute("aria-label", `Mesh topology: ${model.nodes.size} peers, ${model.edges.size} links, ${mode === "world" ? "world map" : mode} layout`);
    if (this.selected) this.select(this.selected.kind, this.selected.key);
    if (focused) {
      const el = this.svg.querySelector(`[data-key="${cssEscape(focused)}"], [data-peer-id="${cssEscape(focused)}"]`);
      if (el) el.focus({ preventScroll: true });
    }
  }
}

/** Meridians and parallels every 30°, the equator and prime meridian stronger. */
function graticule(withBand) {
  const g = s("g", { class: "graticule", "aria-hidden": "true" });
  const project = ([lon, lat]) => `${f1(((lon + 180) / 360) * W)},${f1(((90 - lat) / 180) * MAP_H)}`;
  for (const outline of LAND) g.append(s("polygon", { class: "land", points: outline.map(project).join(" ") }));
  g.append(s("rect", { x: 0.5, y: 0.5, width: W - 1, height: MAP_H - 1, fill: "none", class: "major", stroke: "currentColor" }));
  for (let lon = -150; lon <= 150; lon += 30) {
    const x = ((lon + 180) / 360) * W;
    g.append(s("line", { x1: f1(x), y1: 0, x2: f1(x), y2: MAP_H, class: lon === 0 ? "major" : "" }));
    g.append(s("text", { x: f1(x + 3), y: MAP_H - 4, text: `${Math.abs(lon)}°${lon < 0 ? "W" : lon > 0 ? "E" : ""}` }));
  }
  for (let lat = -60; lat <= 60; lat += 30) {
    const y = ((90 - lat) / 180) * MAP_H;
    g.append(s("line", { x1: 0, y1: f1(y), x2: W, y2: f1(y), class: lat === 0 ? "major" : "" }));
    g.append(s("text", { x: 4, y: f1(y - 3), text: `${Math.abs(lat)}°${lat < 0 ? "S" : lat > 0 ? "N" : ""}` }));
  }
  if (withBand) g.append(s("text", { class: "band-label", x: 8, y: MAP_H + 36, text: "no location" }));
  return g;
}

export function edgeWidth(kbps) {
  return 1.5 + (isNum(kbps) && kbps > 0 ? Math.min(7, 1.3 * Math.log2(1 + kbps / 4)) : 0);
}

function activate(el, fn) {
  el.addEventListener("click", fn);
  el.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      fn();
    }
  });
}

/** Scale and centre positions to fill the canvas (a dense mesh otherwise huddles in the middle). */
function fit(p) {
  const pts = [...p.values()];
  if (pts.length < 2) {
    for (const v of pts) Object.assign(v, { x: W / 2, y: H / 2 });
    return;
  }
  const xs = pts.map((v) => v.x);
  const ys = pts.map((v) => v.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const pad = MARGIN + 20;
  const scale = Math.min((W - 2 * pad) / Math.max(x1 - x0, 1), (H - 2 * pad) / Math.max(y1 - y0, 1), 4);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  for (const v of pts) {
    v.x = W / 2 + (v.x - cx) * scale;
    v.y = H / 2 + (v.y - cy) * scale;
  }
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

function f1(v) {
  return v.toFixed(1);
}

function cssEscape(text) {
  return window.CSS && CSS.escape ? CSS.escape(text) : text.replace(/["\\]/g, "\\$&");
}
