// Gossip messages, audit entries, trust components and CRDT conflicts.

import { clock, h, isNum, isoTime, peerLabel, tagsCell, truncate } from "./util.js";

const MAX_MESSAGES = 200; // rows kept, hidden system ones included, so user messages survive a telemetry burst
// Topics the nodes gossip among themselves (node.py RESERVED_TOPICS): link telemetry, trust opinions,
// replicated-state deltas. They are most of the traffic, so the panel hides them unless asked.
export const SYSTEM_TOPICS = new Set(["telemetry", "trust", "state", "state/signed"]);

function peerCell(id) {
  return h("td", { class: "mono", title: id || "" }, id ? peerLabel(id) : "—");
}

function timeCell(ts) {
  return h("td", { title: isoTime(ts) }, clock(ts));
}

function preview(payload) {
  let text;
  try {
    text = JSON.stringify(payload);
  } catch {
    text = String(payload);
  }
  return text === undefined ? "" : text;
}

export class MessagesPanel {
  constructor(body) {
    this.body = body;
    this.ids = new Set();
    this.topic = "";
    this.showSystem = false;
  }

  /** A system message shows when asked for, or when its topic is the one filtered on. */
  hides(topic) {
    return !this.showSystem && SYSTEM_TOPICS.has(topic) && this.topic !== topic;
  }

  setShowSystem(show) {
    this.showSystem = show;
    for (const tr of this.body.querySelectorAll("tr[data-topic]")) tr.hidden = this.hides(tr.dataset.topic);
    this.updateEmpty();
  }

  /** The "nothing to show" row, counting what the filter hides. */
  updateEmpty() {
    const rows = [...this.body.querySelectorAll("tr[data-topic]")];
    const hidden = rows.filter((tr) => tr.hidden).length;
    const old = this.body.querySelector("tr.empty");
    if (old) old.remove();
    if (rows.length > hidden) return;
    let text = this.topic ? `No messages on “${this.topic}”.` : "No gossip messages yet.";
    if (hidden) text = `Only system messages so far (${hidden} hidden): tick “system topics” to see them.`;
    this.body.append(emptyRow(5, text));
  }

  row(m) {
    const text = preview(m.payload);
    const system = SYSTEM_TOPICS.has(m.topic);
    return h(
      "tr",
      { class: system ? "system" : "", hidden: this.hides(m.topic), dataset: { id: m.id, topic: m.topic } },
      timeCell(m.received_at),
      h("td", { class: "mono", text: m.topic }),
      peerCell(m.origin),
      h("td", { class: "num", text: isNum(m.hops) ? String(m.hops) : "—" }),
      h("td", { class: "payload mono", title: truncate(text, 2000) }, truncate(text, 160)),
    );
  }

  /** The API's newest-first list replaces the table. */
  set(messages) {
    this.ids = new Set(messages.map((m) => m.id));
    this.body.replaceChildren(...messages.slice(0, MAX_MESSAGES).map((m) => this.row(m)));
    this.updateEmpty();
  }

  /** A live "message" event goes on top. */
  add(m) {
    if (this.ids.has(m.id) || (this.topic && m.topic !== this.topic)) return;
    this.ids.add(m.id);
    this.body.prepend(this.row(m));
    const rows = this.body.querySelectorAll("tr[data-topic]");
    for (let i = MAX_MESSAGES; i < rows.length; i++) rows[i].remove();
    this.updateEmpty();
  }
}

export function renderAudit(body, entries) {
  const rows = entries.map((e) =>
    h(
      "tr",
      { class: e.event === "rejected" ? "rejected" : "", dataset: { event: e.event } },
      timeCell(e.at),
      h("td", { text: e.event }),
      h("td", { class: "mono", title: e.message_id || "" }, e.message_id ? truncate(e.message_id, 12) : "—"),
      peerCell(e.peer_id),
      h("td", { class: "reason", text: e.reason || "" }),
    ),
  );
  body.replaceChildren(...(rows.length ? rows : [emptyRow(5, "No audit entries.")]));
}

export function renderTrust(body, trust, selfId) {
  const components = (trust && trust.components) || {};
  const scores = (trust && trust.scores) || {};
  const ids = new Set([...Object.keys(components), ...Object.keys(scores)]);
  const rows = [...ids]
    .map((id) => ({ id, ...(components[id] || {}), score: components[id]?.score ?? scores[id] ?? 0 }))
    .sort((a, b) => b.score - a.score || a.id.localeCompare(b.id));
  const max = Math.max(0, ...rows.map((r) => r.score));
  const fmt = (v, digits = 3) => (isNum(v) ? v.toFixed(digits) : "—");
  const out = rows.map((r) =>
    h(
      "tr",
      { dataset: { peerId: r.id } },
      h("td", { class: "mono", title: r.id }, peerLabel(r.id), r.id === selfId ? h("span", { class: "muted", text: " (this node)" }) : null),
      h(
        "td",
        { class: "num" },
        h("span", { class: "bar", "aria-hidden": "true" }),
        fmt(r.score),
      ),
      h("td", { class: "num", text: fmt(r.opinion, 2) }),
      h("td", { class: "num", text: fmt(r.behaviour, 2) }),
      h("td", { class: "num", text: isNum(r.trusted_by) ? String(r.trusted_by) : "—" }),
      h("td", { text: r.pretrusted ? "yes" : "no" }),
      tagsCell(r.id),
    ),
  );
  body.replaceChildren(...(out.length ? out : [emptyRow(7, "No trust information yet.")]));
  // Bars through the CSSOM (allowed by the page's Content-Security-Policy, unlike style attributes).
  body.querySelectorAll("tr").forEach((tr, i) => {
    const bar = tr.querySelector(".bar");
    if (bar && rows[i]) bar.style.width = `${max > 0 ? Math.round((40 * rows[i].score) / max) : 0}px`;
  });
}

/** Per topic, the peers a new message is pushed to at once (/api/gossip/mesh), with their scores. */
export function renderMesh(body, mesh) {
  const fmt = (v) => (isNum(v) ? v.toFixed(3) : "—");
  const rows = [];
  for (const [topic, entry] of Object.entries(mesh || {})) {
    const peers = Array.isArray(entry && entry.peers) ? entry.peers : [];
    const label = entry && entry.fanout ? `${topic} (fanout)` : topic;
    const topicCell = () => h("td", { class: "mono", title: topic, text: truncate(label, 48) });
    if (!peers.length) {
      rows.push(h("tr", { dataset: { topic } }, topicCell(), h("td", { class: "muted", colspan: 4, text: "no mesh peers yet" })));
      continue;
    }
    for (const p of [...peers].sort((a, b) => (b.score ?? 0) - (a.score ?? 0))) {
      rows.push(
        h(
          "tr",
          { dataset: { topic, peerId: p.peer_id } },
          topicCell(),
          peerCell(p.peer_id),
          h("td", { class: "num score", text: fmt(p.score) }),
          h("td", { class: "num", text: fmt(p.trust) }),
          tagsCell(p.peer_id),
        ),
      );
    }
  }
  body.replaceChildren(...(rows.length ? rows : [emptyRow(5, "No topic meshes yet.")]));
}

/** Conflicts of one replicated state in words: who wrote what, when, which write was kept. */
export function renderConflicts(container, data) {
  const list = Array.isArray(data) ? data : Array.isArray(data?.conflicts) ? data.conflicts : null;
  if (list && list.length === 0) {
    container.replaceChildren(h("p", { class: "muted", text: "No conflicts: every replica agreed." }));
    return;
  }
  if (list && list.every((c) => c && typeof c === "object" && !Array.isArray(c))) {
    const rules = [...new Set(list.map((c) => c.resolution).filter((r) => typeof r === "string"))];
    container.replaceChildren(
      h("ol", { class: "conflicts" }, ...list.map(conflictItem)),
      ...rules.map((r) => h("p", { class: "muted small", text: `Rule: ${r}.` })),
    );
    return;
  }
  container.replaceChildren(h("pre", { class: "json", text: JSON.stringify(data, null, 2) }));
}

const HLC_RE = /^(\d{15})-(\d{10})-(.+)$/;

/** "000001765050443123-0000000000-12D3Koo…" → {wall: Unix seconds, node}; null when not an HLC string. */
export function parseHlc(text) {
  const m = typeof text === "string" ? HLC_RE.exec(text) : null;
  return m ? { wall: Number(m[1]) / 1000, logical: Number(m[2]), node: m[3] } : null;
}

function conflictItem(c) {
  if (typeof c.resolution === "string" && c.resolution.startsWith("refused")) {
    // an op the document's write policy refused (f0mesh.state.policy): who, and whose policy
    const who = typeof c.discarded_origin === "string" ? c.discarded_origin : "?";
    return h(
      "li",
      { class: "conflict" },
      h("span", { class: "who", title: who }, `node ${peerLabel(who)}`),
      h("span", { text: ` op ${Number(c.discarded_seq) || "?"} refused: ${truncate(c.resolution, 200)}` }),
    );
  }
  if (c.open && Array.isArray(c.siblings)) return openItem(c);
  const set = c.kept === "add" || c.kept === "remove";
  const side = (which) => {
    const ts = parseHlc(c[`${which}_ts`]);
    const origin = typeof c[`${which}_origin`] === "string" ? c[`${which}_origin`] : ts?.node;
    let what;
    if (set) what = c[which] === "add" ? "added it" : "removed it";
    else if (c[`${which}_deleted`]) what = "deleted it";
    else what = `wrote ${valueText(c[which])}`;
    return h(
      "li",
      { class: which === "kept" ? "won" : "lost", title: ts ? isoTime(ts.wall) : "" },
      origin ? h("span", { class: "who", title: origin }, `node ${peerLabel(origin)}`) : "a write",
      ` ${what}`,
      ts ? ` at ${clock(ts.wall)}` : "",
      " — ",
      h("strong", { text: which === "kept" ? "kept" : "lost" }),
    );
  };
  const key = typeof c.key === "string" ? c.key : JSON.stringify(c.key);
  return h(
    "li",
    { class: "conflict" },
    h("span", { class: "key" }, set ? "element " : "key ", h("code", { text: truncate(String(key ?? "?"), 80) })),
    h("ul", {}, side("kept"), side("discarded")),
  );
}

/** A key of a ranked or keep-all map whose concurrent values no writer has resolved yet: every value kept,
 * the one readers are shown first. */
function openItem(c) {
  const key = typeof c.key === "string" ? c.key : JSON.stringify(c.key);
  const sibling = (s) => {
    const ts = parseHlc(s.ts);
    const origin = typeof s.origin === "string" ? s.origin : ts?.node;
    const shown = origin === c.kept_origin && s.ts === c.kept_ts;
    return h(
      "li",
      { class: shown ? "won" : "lost", title: ts ? isoTime(ts.wall) : "" },
      origin ? h("span", { class: "who", title: origin }, `node ${peerLabel(origin)}`) : "a write",
      s.deleted ? " deleted it" : ` wrote ${valueText(s.value)}`,
      ts ? ` at ${clock(ts.wall)}` : "",
      " — ",
      h("strong", { text: shown ? "shown" : "kept" }),
    );
  };
  return h(
    "li",
    { class: "conflict open" },
    h("span", { class: "key" }, "key ", h("code", { text: truncate(String(key ?? "?"), 80) }), " — open"),
    h("ul", {}, ...c.siblings.map(sibling)),
  );
}

function valueText(v) {
  let text;
  try {
    text = JSON.stringify(v);
  } catch {
    text = String(v);
  }
  return truncate(text === undefined ? "nothing" : text, 120);
}

/** The replicated documents (GET /api/state), each with a button that shows its conflicts; a document
 * quarantined at start (it did not load) shows its reason instead. */
export function renderDocuments(container, documents, onPick) {
  if (!documents.length) {
    container.replaceChildren(h("p", { class: "muted", text: "No replicated documents on this node yet." }));
    return;
  }
  const rows = documents.map((d) =>
    h(
      "tr",
      { dataset: { name: d.name } },
      h("td", { class: "mono", text: d.name }),
      h("td", { text: d.quarantined ? `${d.kind}, quarantined: ${d.quarantined}` : d.kind }),
      h("td", { class: "num", text: isNum(d.size) ? String(d.size) : "—" }),
      h("td", { class: "num", text: isNum(d.bytes) ? String(d.bytes) : "—" }),
      h(
        "td",
        {},
        d.quarantined
          ? null
          : h("button", { type: "button", class: "small", "aria-label": `Conflicts of ${d.name}`, onclick: () => onPick(d.name) }, "Conflicts"),
      ),
    ),
  );
  container.replaceChildren(
    h(
      "div",
      { class: "table-wrap short" },
      h(
        "table",
        { class: "data compact" },
        h("caption", { class: "sr-only", text: "Replicated documents on this node" }),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col", text: "Document" }),
            h("th", { scope: "col", text: "Kind" }),
            h("th", { scope: "col", class: "num", text: "Entries" }),
            h("th", { scope: "col", class: "num", text: "Bytes" }),
            h("th", { scope: "col" }, h("span", { class: "sr-only", text: "Actions" })),
          ),
        ),
        h("tbody", {}, ...rows),
      ),
    ),
  );
}

function emptyRow(cols, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: cols, class: "muted", text }));
}
