// The active links table: one row per peer, updated in place as links and QoS samples arrive.

import { ago, FIGURES, fmtFigure, h, HEALTH_RANK, isNum, isoTime, peerLabel, tagText } from "./util.js";

const FIELDS = ["rtt_ms", "jitter_ms", "loss_pct", "bitrate_kbps"];
const STATE_RANK = { open: 0, connecting: 1, new: 1, failed: 2, closed: 3 };

export class LinksTable {
  /**
   * @param {HTMLTableElement} table
   * @param {{onClose: (link) => void, onBlock: (link) => void, onSelect: (link) => void}} handlers
   */
  constructor(table, { onClose, onBlock, onSelect }) {
    this.table = table;
    this.body = table.tBodies[0];
    this.onClose = onClose;
    this.onBlock = onBlock;
    this.onSelect = onSelect;
    this.rows = new Map(); // peer_id -> {tr, cells, link}
    this.sort = { key: "state", dir: 1 };
    this.showClosed = false;
    this.selected = null;
    for (const th of table.tHead.querySelectorAll("th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => this.sortBy(th.dataset.sort));
    }
    this.markSortHeader();
  }

  get links() {
    return [...this.rows.values()].map((r) => r.link);
  }

  visibleCount() {
    return [...this.rows.values()].filter((r) => !r.tr.hidden).length;
  }

  /** Replace the whole set with the API's /api/mesh-rtc/links answer. */
  update(links) {
    const seen = new Set();
    for (const link of links) {
      seen.add(link.peer_id);
      this.upsert(link);
    }
    for (const [peerId, row] of this.rows) {
      if (!seen.has(peerId)) {
        row.tr.remove();
        this.rows.delete(peerId);
      }
    }
    this.order();
  }

  /** A QoS sample (SSE "qos" event): only the figures of the link it belongs to change. */
  applySample(sample) {
    const row = this.rows.get(sample.peer_id);
    if (!row || (sample.link_id && row.link.link_id !== sample.link_id)) return false;
    const link = { ...row.link };
    for (const f of [...FIELDS, "health"]) if (f in sample) link[f] = sample[f];
    link.updated_at = sample.updated_at ?? sample.at ?? link.updated_at;
    this.fill(row, link);
    if (["health", ...FIELDS].includes(this.sort.key)) this.order();
    return true;
  }

  /** A link event (state change): the state shows at once; the figures come with the next poll. */
  applyState(event) {
    const row = this.rows.get(event.peer_id);
    if (!row) return false;
    if (row.link.link_id !== event.link_id && event.state !== "open") return true;
    this.fill(row, { ...row.link, link_id: event.link_id, state: event.state, reason: event.reason });
    this.order();
    return true;
  }

  upsert(link) {
    let row = this.rows.get(link.peer_id);
    if (!row) {
      row = this.createRow(link);
      this.rows.set(link.peer_id, row);
      this.body.append(row.tr);
    }
    this.fill(row, link);
  }

  createRow(link) {
    // data-label names each cell in the stacked layout used on phones.
    const cells = {
      link_id: h("td", { class: "mono link-id", dataset: { label: "Link" } }),
      peer_id: h("td", { class: "mono peer", dataset: { label: "Peer" } }),
      state: h("td", { class: "state", dataset: { field: "state", label: "State" } }),
      health: h("td", { class: "health", dataset: { field: "health", label: "Health" } }),
      updated_at: h("td", { class: "updated", dataset: { field: "updated_at", label: "Updated" } }),
    };
    for (const f of FIELDS) cells[f] = h("td", { class: "num", dataset: { field: f, label: FIGURES[f].label } });
    const history = h("button", { type: "button", class: "small", text: "History" });
    const close = h("button", { type: "button", class: "small", text: "Close" });
    const block = h("button", { type: "button", class: "small danger", text: "Block" });
    const tr = h(
      "tr",
      { dataset: { peerId: link.peer_id } },
      cells.link_id,
      cells.peer_id,
      cells.state,
      cells.health,
      ...FIELDS.map((f) => cells[f]),
      cells.updated_at,
      h("td", { class: "row-actions" }, h("div", { class: "actions" }, history, close, block)),
    );
    const row = { tr, cells, link, history, close, block };
    history.addEventListener("click", (ev) => {
      ev.stopPropagation();
      this.onSelect(row.link);
    });
    close.addEventListener("click", (ev) => {
      ev.stopPropagation();
      this.onClose(row.link, close);
    });
    block.addEventListener("click", (ev) => {
      ev.stopPropagation();
      this.onBlock(row.link, block);
    });
    tr.addEventListener("click", () => this.onSelect(row.link));
    return row;
  }

  fill(row, link) {
    const prev = row.link;
    row.link = link;
    const { tr, cells } = row;
    const peer = peerLabel(link.peer_id);
    tr.dataset.linkId = link.link_id;
    tr.dataset.state = link.state;
    tr.hidden = !this.showClosed && link.state === "closed";
    setText(cells.link_id, link.link_id.slice(0, 8), link.link_id);
    const tags = tagText(link.peer_id);
    setText(cells.peer_id, peer, tags ? `${link.peer_id}\n${tags}` : link.peer_id);
    setText(cells.state, link.state, link.reason ? `${link.state}: ${link.reason}` : link.state);

    const word = link.state === "open" ? link.health || "unknown" : link.state;
    cells.health.dataset.value = link.health ?? "";
    const badge = cells.health.firstElementChild || cells.health.appendChild(h("span"));
    if (badge.textContent !== word) {
      badge.textContent = word;
      badge.className = `badge ${word}`;
      if (prev !== link) flash(cells.health);
    }
    badge.title = link.reason ? `${word}: ${link.reason}` : word;

    for (const f of FIELDS) {
      const v = link[f];
      const cell = cells[f];
      const raw = isNum(v) ? String(v) : "";
      if (cell.dataset.value !== raw) {
        cell.dataset.value = raw;
        cell.textContent = fmtFigure(f, v);
        if (prev !== link && raw) flash(cell);
      }
    }
    cells.updated_at.dataset.value = isNum(link.updated_at) ? String(link.updated_at) : "";
    cells.updated_at.title = isoTime(link.updated_at);
    this.tickRow(row);

    row.close.disabled = link.state !== "open";
    row.close.setAttribute("aria-label", `Close the link to ${peer}`);
    row.block.setAttribute("aria-label", `Block ${peer}`);
    row.history.setAttribute("aria-label", `QoS history of the link to ${peer}`);
    tr.classList.toggle("selected", this.selected === link.peer_id);
  }

  tickRow(row) {
    const text = ago(row.link.updated_at);
    if (row.cells.updated_at.textContent !== text) row.cells.updated_at.textContent = text;
  }

  /** Refresh the relative "updated" times (called every second). */
  tick() {
    for (const row of this.rows.values()) this.tickRow(row);
  }

  setShowClosed(show) {
    this.showClosed = show;
    for (const row of this.rows.values()) this.fill(row, row.link);
  }

  select(peerId) {
    this.selected = peerId;
    for (const [id, row] of this.rows) row.tr.classList.toggle("selected", id === peerId);
  }

  sortBy(key) {
    this.sort = this.sort.key === key ? { key, dir: -this.sort.dir } : { key, dir: 1 };
    this.markSortHeader();
    this.order();
  }

  markSortHeader() {
    for (const th of this.table.tHead.querySelectorAll("th[data-sort]")) {
      if (th.dataset.sort === this.sort.key) {
        th.setAttribute("aria-sort", this.sort.dir > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
  }

  order() {
    const { key, dir } = this.sort;
    const value = (link) => {
      if (key === "health") return HEALTH_RANK[link.health] ?? 9;
      if (key === "state") return STATE_RANK[link.state] ?? 9;
      return link[key];
    };
    const rows = [...this.rows.values()].sort((a, b) => {
      const va = value(a.link);
      const vb = value(b.link);
      // Missing figures sort last in either direction.
      const na = va === null || va === undefined;
      const nb = vb === null || vb === undefined;
      if (na || nb) return na === nb ? a.link.peer_id.localeCompare(b.link.peer_id) : na ? 1 : -1;
      const c = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
      return c !== 0 ? c * dir : a.link.peer_id.localeCompare(b.link.peer_id);
    });
    // Move only rows out of place, so focus and hover survive a live update.
    let cursor = this.body.firstElementChild;
    for (const row of rows) {
      if (row.tr === cursor) {
        cursor = cursor.nextElementSibling;
      } else {
        this.body.insertBefore(row.tr, cursor);
      }
    }
  }
}

function setText(cell, text, title) {
  if (cell.textContent !== text) cell.textContent = text;
  if (title !== undefined && cell.title !== title) cell.title = title;
}

function flash(cell) {
  cell.classList.remove("flash");
  // Restart the animation: reading offsetWidth forces a reflow between remove and add.
  void cell.offsetWidth;
  cell.classList.add("flash");
}
