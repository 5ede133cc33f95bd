// Gossip messages, audit entries, trust components and CRDT conflicts.

import { clock, h, isNum, isoTime, shortId, truncate } from "./util.js";

const MAX_MESSAGES = 100;

function peerCell(id) {
  return h("td", { class: "mono", title: id || "" }, id ? shortId(id) : "—");
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
  }

  row(m) {
    const text = preview(m.payload);
    return h(
      "tr",
      { dataset: { id: m.id, topic: m.topic } },
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
    const rows = messages.slice(0, MAX_MESSAGES).map((m) => this.row(m));
    this.body.replaceChildren(...(rows.length ? rows : [emptyRow(5, this.topic ? `No messages on “${this.topic}”.` : "No gossip messages yet.")]));
  }

  /** A live "message" event goes on top. */
  add(m) {
    if (this.ids.has(m.id) || (this.topic && m.topic !== this.topic)) return;
    this.ids.add(m.id);
    const empty = this.body.querySelector("tr.empty");
    if (empty) empty.remove();
    this.body.prepend(this.row(m));
    while (this.body.rows.length > MAX_MESSAGES) this.body.lastElementChild.remove();
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
      h("td", { class: "mono", title: r.id }, shortId(r.id), r.id === selfId ? h("span", { class: "muted", text: " (this node)" }) : null),
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
    ),
  );
  body.replaceChildren(...(out.length ? out : [emptyRow(6, "No trust information yet.")]));
  // Bars through the CSSOM (allowed by the page's Content-Security-Policy, unlike style attributes).
  body.querySelectorAll("tr").forEach((tr, i) => {
    const bar = tr.querySelector(".bar");
    if (bar && rows[i]) bar.style.width = `${max > 0 ? Math.round((40 * rows[i].score) / max) : 0}px`;
  });
}

/** Conflicts of one replicated state, whatever their shape: a table for a list of objects. */
export function renderConflicts(container, data) {
  const list = Array.isArray(data) ? data : Array.isArray(data?.conflicts) ? data.conflicts : null;
  if (list && list.length === 0) {
    container.replaceChildren(h("p", { class: "muted", text: "No conflicts: every replica agreed." }));
    return;
  }
  if (list && list.every((c) => c && typeof c === "object" && !Array.isArray(c))) {
    const keys = [...new Set(list.flatMap((c) => Object.keys(c)))].slice(0, 8);
    const cell = (v) => (v !== null && typeof v === "object" ? truncate(JSON.stringify(v), 120) : String(v ?? "—"));
    container.replaceChildren(
      h(
        "div",
        { class: "table-wrap short" },
        h(
          "table",
          { class: "data compact" },
          h("thead", {}, h("tr", {}, ...keys.map((k) => h("th", { scope: "col", text: k })))),
          h("tbody", {}, ...list.map((c) => h("tr", {}, ...keys.map((k) => h("td", { class: "mono", text: cell(c[k]) }))))),
        ),
      ),
    );
    return;
  }
  container.replaceChildren(h("pre", { class: "json", text: JSON.stringify(data, null, 2) }));
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
