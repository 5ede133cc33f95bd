// The mesh on a globe: an orthographic projection in SVG, rotated by dragging (or the arrow keys), with
// nodes at their declared locations, links as great-circle arcs coloured by health that pulse when gossip
// crosses them, and a node × node QoS heatmap from the same gossiped telemetry.

import { fmtFigure, h, isNum, peerLabel, s } from "./util.js";
import { LAND } from "./worldmap.js";

const SIZE = 400;
const R = 180;
const C = SIZE / 2;
const D = Math.PI / 180;
const ARC_STEPS = 32;
const MAX_PULSES = 8; // edges pulsing at once; a burst of messages does not repaint the whole globe
const MAX_HEATMAP = 24;

/** Orthographic projection of (lat, lon) seen from above (lat0, lon0); `front` is false behind the limb. */
export function project(lat, lon, lat0, lon0) {
  const phi = lat * D;
  const lam = (lon - lon0) * D;
  const phi0 = lat0 * D;
  const cosc = Math.sin(phi0) * Math.sin(phi) + Math.cos(phi0) * Math.cos(phi) * Math.cos(lam);
  const x = R * Math.cos(phi) * Math.sin(lam);
  const y = R * (Math.cos(phi0) * Math.sin(phi) - Math.sin(phi0) * Math.cos(phi) * Math.cos(lam));
  return { x: C + x, y: C - y, front: cosc >= 0 };
}

function vec(lat, lon) {
  return [Math.cos(lat * D) * Math.cos(lon * D), Math.cos(lat * D) * Math.sin(lon * D), Math.sin(lat * D)];
}

/** Points along the great circle from a to b (spherical linear interpolation). */
function arc(a, b) {
  const va = vec(a.lat, a.lon);
  const vb = vec(b.lat, b.lon);
  const dot = Math.min(1, Math.max(-1, va[0] * vb[0] + va[1] * vb[1] + va[2] * vb[2]));
  const omega = Math.acos(dot);
  const out = [];
  for (let i = 0; i <= ARC_STEPS; i++) {
    const t = i / ARC_STEPS;
    const [ka, kb] = omega < 1e-6 ? [1 - t, t] : [Math.sin((1 - t) * omega) / Math.sin(omega), Math.sin(t * omega) / Math.sin(omega)];
    const v = va.map((c, k) => ka * c + kb * vb[k]);
    out.push({ lat: Math.asin(Math.max(-1, Math.min(1, v[2]))) / D, lon: Math.atan2(v[1], v[0]) / D });
  }
  return out;
}

const f1 = (v) => v.toFixed(1);

export class Globe {
  constructor(svg) {
    this.svg = svg;
    this.lat0 = 20;
    this.lon0 = 10;
    this.model = null;
    this.pulses = 0;
    this.frame = 0;
    let drag = null;
    svg.addEventListener("pointerdown", (ev) => {
      drag = { x: ev.clientX, y: ev.clientY, lat0: this.lat0, lon0: this.lon0 };
      svg.setPointerCapture(ev.pointerId);
      svg.classList.add("dragging");
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      // One globe radius of drag turns it by about a right angle, whatever the rendered size.
      const scale = 90 / Math.max(svg.getBoundingClientRect().width / 2.2, 1);
      this.rotateTo(drag.lat0 + (ev.clientY - drag.y) * scale, drag.lon0 - (ev.clientX - drag.x) * scale);
    });
    const end = () => {
      drag = null;
      svg.classList.remove("dragging");
    };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener("keydown", (ev) => {
      const step = { ArrowLeft: [0, -15], ArrowRight: [0, 15], ArrowUp: [15, 0], ArrowDown: [-15, 0] }[ev.key];
      if (!step) return;
      ev.preventDefault();
      this.rotateTo(this.lat0 + step[0], this.lon0 + step[1]);
    });
  }

  rotateTo(lat0, lon0) {
    this.lat0 = Math.max(-89, Math.min(89, lat0));
    this.lon0 = ((((lon0 + 180) % 360) + 360) % 360) - 180;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  render(model) {
    const first = !this.model;
    this.model = model;
    if (first) {
      // Start above the middle of the located nodes.
      const located = [...model.nodes.values()].filter((n) => n.location);
      if (located.length) {
        const v = located.map((n) => vec(n.location.lat, n.location.lon)).reduce((a, b) => a.map((c, k) => c + b[k]));
        const len = Math.hypot(...v);
        if (len > 0.3) {
          this.lat0 = Math.max(-60, Math.min(60, Math.asin(v[2] / len) / D));
          this.lon0 = Math.atan2(v[1], v[0]) / D;
        }
      }
    }
    this.draw();
  }

  draw() {
    const model = this.model;
    if (!model) return;
    const p = (lat, lon) => project(lat, lon, this.lat0, this.lon0);
    const base = s("g", { class: "base", "aria-hidden": "true" }, s("circle", { class: "sphere", cx: C, cy: C, r: R }));
    for (const outline of LAND) {
      const pts = outline.map(([lon, lat]) => p(lat, lon));
      if (!pts.some((q) => q.front)) continue;
      // Points behind the limb are pushed onto it: coarse, but the outline stays one closed shape.
      const xy = pts.map((q) => {
        if (q.front) return `${f1(q.x)},${f1(q.y)}`;
        const d = Math.hypot(q.x - C, q.y - C) || 1;
        return `${f1(C + ((q.x - C) * R) / d)},${f1(C + ((q.y - C) * R) / d)}`;
      });
      base.append(s("polygon", { class: "land", points: xy.join(" ") }));
    }
    const lines = [];
    for (let lon = -180; lon < 180; lon += 30) lines.push(Array.from({ length: 37 }, (_, i) => p(-90 + i * 5, lon)));
    for (let lat = -60; lat <= 60; lat += 30) lines.push(Array.from({ length: 73 }, (_, i) => p(lat, -180 + i * 5)));
    for (const pts of lines) {
      const d = pathOf(pts);
      if (d) base.append(s("path", { class: "graticule", d }));
    }

    const edges = s("g", { class: "edges" });
    for (const e of model.edges.values()) {
      const a = model.nodes.get(e.a).location;
      const b = model.nodes.get(e.b).location;
      if (!a || !b) continue;
      const d = pathOf(arc(a, b).map((q) => p(q.lat, q.lon)));
      const label = `Link ${peerLabel(e.a)} – ${peerLabel(e.b)}: ${e.health}, RTT ${fmtFigure("rtt_ms", e.rtt_ms)}, loss ${fmtFigure("loss_pct", e.loss_pct)}`;
      edges.append(
        s("g", { class: `edge ${e.health}`, dataset: { key: e.key } }, s("title", { text: label }), d ? s("path", { class: "vis", d }) : null),
      );
    }
    const nodes = s("g", { class: "nodes" });
    for (const n of model.nodes.values()) {
      if (!n.location) continue;
      const q = p(n.location.lat, n.location.lon);
      const label = `${peerLabel(n.id)}${n.self ? " (this node)" : ""} at ${n.locationText}${q.front ? "" : ", on the far side"}`;
      nodes.append(
        s(
          "g",
          { class: `node${n.self ? " self" : ""}${q.front ? "" : " behind"}`, dataset: { peerId: n.id } },
          s("title", { text: label }),
          s("circle", { class: "dot", cx: f1(q.x), cy: f1(q.y), r: n.self ? 7 : 5.5 }),
          q.front ? s("text", { x: f1(q.x), y: f1(q.y - 10), "text-anchor": "middle", text: peerLabel(n.id) }) : null,
        ),
      );
    }
    const located = [...model.nodes.values()].filter((n) => n.location).length;
    this.svg.setAttribute(
      "aria-label",
      `Globe centred on ${Math.round(this.lat0)}°, ${Math.round(this.lon0)}°: ${located} of ${model.nodes.size} nodes have a location. Drag or use the arrow keys to turn it.`,
    );
    this.svg.replaceChildren(base, edges, nodes);
  }

  /** Gossip from `origin` reached `selfId`: pulse the links along a shortest path between them. */
  pulse(origin, selfId) {
    if (!this.model || !origin || !selfId || origin === selfId) return;
    const path = shortestPath(this.model, origin, selfId);
    if (!path) return;
    const live = this.svg.querySelectorAll(".edge.pulse").length;
    path.slice(0, Math.max(0, MAX_PULSES - live)).forEach((key, i) => {
      const g = this.svg.querySelector(`.edge[data-key="${CSS.escape(key)}"]`);
      if (!g) return;
      g.classList.remove("pulse");
      void g.getBoundingClientRect(); // restart the animation
      g.style.animationDelay = `${i * 0.25}s`;
      g.classList.add("pulse");
      setTimeout(() => g.classList.remove("pulse"), 1200 + i * 250);
    });
    this.pulses++;
    this.svg.dataset.pulses = String(this.pulses);
  }
}

/** Edge keys from a to b by breadth-first search, or null when they are not connected. */
function shortestPath(model, a, b) {
  const adj = new Map();
  for (const e of model.edges.values()) {
    for (const [x, y] of [[e.a, e.b], [e.b, e.a]]) {
      if (!adj.has(x)) adj.set(x, []);
      adj.get(x).push([y, e.key]);
    }
  }
  const prev = new Map([[a, null]]);
  const queue = [a];
  for (let i = 0; i < queue.length && !prev.has(b); i++) {
    for (const [y, key] of adj.get(queue[i]) || []) {
      if (!prev.has(y)) {
        prev.set(y, [queue[i], key]);
        queue.push(y);
      }
    }
  }
  if (!prev.has(b)) return null;
  const keys = [];
  for (let at = b; prev.get(at); at = prev.get(at)[0]) keys.unshift(prev.get(at)[1]);
  return keys;
}

/** "M x,y L …" for the runs of points in front of the limb, or "" when none is. */
function pathOf(points) {
  let d = "";
  let pen = false;
  for (const q of points) {
    if (!q.front) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${f1(q.x)},${f1(q.y)}`;
    pen = true;
  }
  return d;
}

const BUCKETS = {
  rtt_ms: [20, 60, 150, 300],
  loss_pct: [0.5, 2, 5, 15],
};

/** Node × node RTT or loss as each row's node measured its link to each column's node. */
export function renderHeatmap(table, telemetry, metric, selfId) {
  const reports = (telemetry && telemetry.nodes) || {};
  const ids = new Set(Object.keys(reports));
  for (const r of Object.values(reports)) for (const l of Array.isArray(r.links) ? r.links : []) if (l && typeof l.peer_id === "string") ids.add(l.peer_id);
  const order = [...ids].sort((x, y) => (x === selfId ? -1 : y === selfId ? 1 : peerLabel(x).localeCompare(peerLabel(y)))).slice(0, MAX_HEATMAP);
  const head = h("tr", {}, h("th", { scope: "col", class: "corner", text: "from \\ to" }), ...order.map((id) => h("th", { scope: "col", title: id, text: peerLabel(id) })));
  const rows = order.map((from) => {
    const links = new Map();
    for (const l of Array.isArray(reports[from]?.links) ? reports[from].links : []) if (l && typeof l.peer_id === "string") links.set(l.peer_id, l);
    return h(
      "tr",
      {},
      h("th", { scope: "row", title: from, text: peerLabel(from) }),
      ...order.map((to) => {
        const l = links.get(to);
        const v = l ? l[metric] : null;
        if (from === to) return h("td", { class: "self", "aria-label": "same node" });
        if (!isNum(v)) return h("td", { class: "none", dataset: { from, to }, title: l ? "not measured yet" : "no link" }, l ? "·" : "");
        const level = BUCKETS[metric].filter((limit) => v > limit).length;
        return h(
          "td",
          { class: `heat h${level}`, dataset: { from, to, value: String(v) }, title: `${peerLabel(from)} → ${peerLabel(to)}: RTT ${fmtFigure("rtt_ms", l.rtt_ms)}, loss ${fmtFigure("loss_pct", l.loss_pct)}` },
          metric === "rtt_ms" ? Math.round(v).toString() : v.toFixed(v < 10 ? 1 : 0),
        );
      }),
    );
  });
  const unit = metric === "rtt_ms" ? "RTT in ms" : "loss in %";
  table.replaceChildren(
    h("caption", { class: "sr-only", text: `${unit} of each node's link to each other node, as the row's node measured it` }),
    h("thead", {}, head),
    h("tbody", {}, ...rows),
  );
  return ids.size - order.length;
}
