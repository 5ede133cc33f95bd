// Small DOM and formatting helpers shared by the dashboard modules.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Build an HTML element: h("td", {class: "num", dataset: {field: "rtt_ms"}}, "1.2 ms"). */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** Build an SVG element the same way. */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** PeerIds share their leading multihash bytes ("12D3KooW…"): the tail tells peers apart. */
export function shortId(id) {
  if (!id) return "";
  return id.length > 12 ? `…${id.slice(-8)}` : id;
}

const names = new Map(); // peer id -> the name it gave itself (its /healthz, its signed telemetry)
const MAX_NAMES = 10000;

/** Remember a peer's own name; anything not a short printable string is ignored (peers are strangers). */
export function setName(id, name) {
  if (typeof id !== "string" || typeof name !== "string") return;
  if (name.length < 1 || name.length > 32 || /[[\p{C}\p{Z}]--[ ]]/v.test(name)) return;
  if (!names.has(id) && names.size >= MAX_NAMES) return;
  names.set(id, name);
}

const tags = new Map(); // peer id -> ["key=value", ...] from its signed record (/api/peers)
const MAX_TAGS = 16;

/** Remember a peer's tags as text; a peer states them itself, so only short strings are kept. */
export function setTags(id, given) {
  if (typeof id !== "string" || !given || typeof given !== "object") return;
  const pairs = Object.entries(given)
    .filter(([k, v]) => typeof v === "string" && k.length <= 32 && v.length <= 128)
    .slice(0, MAX_TAGS)
    .map(([k, v]) => `${k}=${v}`);
  if (!tags.has(id) && tags.size >= MAX_NAMES) return;
  tags.set(id, pairs);
}

/** A peer's tags as one line of text ("" when it states none). */
export function tagText(id) {
  return (tags.get(id) || []).join(" ");
}

/** A table cell with a peer's tags, each as a chip of plain text. */
export function tagsCell(id) {
  return h("td", { class: "tags" }, ...(tags.get(id) || []).map((t) => h("span", { class: "chip", text: t })));
}

export function peerName(id) {
  return names.get(id) || null;
}

/** Where a PeerId is shown: "berlin …Xy3kP9" when the peer named itself, else the tail alone. */
export function peerLabel(id) {
  const name = names.get(id);
  return name ? `${name} ${shortId(id)}` : shortId(id);
}

export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

function fixed(v, small = 2, big = 1) {
  return Math.abs(v) < 10 ? v.toFixed(small) : v.toFixed(big);
}

export const FIGURES = {
  rtt_ms: { label: "RTT", unit: "ms", fmt: (v) => `${fixed(v)} ms` },
  jitter_ms: { label: "Jitter", unit: "ms", fmt: (v) => `${fixed(v)} ms` },
  loss_pct: { label: "Loss", unit: "%", fmt: (v) => `${fixed(v, 1, 1)} %` },
  bitrate_kbps: { label: "Bitrate", unit: "kbps", fmt: fmtBitrate },
};

export function fmtBitrate(kbps) {
  if (kbps >= 1000) return `${(kbps / 1000).toFixed(kbps >= 10000 ? 0 : 1)} Mbps`;
  return `${fixed(kbps, 1, 0)} kbps`;
}

export function fmtFigure(field, v) {
  if (!isNum(v)) return "—";
  return FIGURES[field] ? FIGURES[field].fmt(v) : String(v);
}

/** "4 s ago" for a Unix time in seconds. */
export function ago(ts, now = Date.now() / 1000) {
  if (!isNum(ts)) return "—";
  const d = Math.max(0, now - ts);
  if (d < 1.5) return "just now";
  if (d < 90) return `${Math.round(d)} s ago`;
  if (d < 5400) return `${Math.round(d / 60)} min ago`;
  if (d < 129600) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}

export function clock(ts) {
  if (!isNum(ts)) return "—";
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}

export function isoTime(ts) {
  return isNum(ts) ? new Date(ts * 1000).toISOString() : "";
}

export const HEALTH_RANK = { good: 0, degraded: 1, bad: 2, unknown: 3 };

/** The worse of two health words ("unknown" only wins over nothing). */
export function worseHealth(a, b) {
  if (!a || a === "unknown") return b || a || "unknown";
  if (!b || b === "unknown") return a;
  return HEALTH_RANK[b] > HEALTH_RANK[a] ? b : a;
}

export function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** Run fn at most once per `ms`, trailing call guaranteed. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn(...args);
    }, ms);
  };
}

/** A stable pseudo-random number in [0, 1) from a string (FNV-1a). */
export function hash01(text) {
  let x = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    x ^= text.charCodeAt(i);
    x = Math.imul(x, 0x01000193);
  }
  return (x >>> 0) / 4294967296;
}

/** "lat,lon" → {lat, lon}, or null when absent or out of range. */
export function parseLocation(value) {
  if (typeof value !== "string") return null;
  const m = value.trim().match(/^(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)$/);
  if (!m) return null;
  const lat = Number(m[1]);
  const lon = Number(m[2]);
  if (Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  return { lat, lon };
}

export function setStatus(el, text, kind = "") {
  el.textContent = text;
  el.className = `status ${kind}`.trim();
  el.setAttribute("aria-busy", kind === "busy" ? "true" : "false");
}
