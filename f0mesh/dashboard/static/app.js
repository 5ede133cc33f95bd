// f0mesh dashboard: wires the API, live events (SSE) with a polling fallback, and the panels.

import { api, ApiError, loggedIn, login, logout } from "./api.js";
import { historyCharts } from "./charts.js";
import { Globe, renderHeatmap } from "./globe.js";
import { LinksTable } from "./links.js";
import { peerToggle } from "./peer_toggle.js";
import { MessagesPanel, renderAudit, renderConflicts, renderDocuments, renderMesh, renderTrust } from "./panels.js";
import { buildModel, Topology } from "./topology.js";
import { clock, debounce, fmtFigure, h, isNum, peerLabel, setName, setStatus, setTags } from "./util.js";

const $ = (id) => document.getElementById(id);
const READONLY_KEY = "f0mesh.readonly";
const MAX_HISTORY = 300;

const state = {
  selfId: null,
  sse: "connecting",
  lastQos: 0, // ms timestamp of the last "qos" event: while they flow, polling slows down
  trust: null,
  telemetry: null,
  selection: null, // {peerId, samples} while a link of this node is shown in the detail panel
  pendingAfterLogin: null,
  askedForViewLogin: false,
  stateList: false, // the node serves GET /api/state (the list of replicated documents)
};

const links = new LinksTable($("links-table"), {
  onClose: closeLink,
  onBlock: blockPeer,
  onSelect: (link) => showHistory(link.peer_id, true),
});
const topology = new Topology($("topology-svg"), { onSelectEdge: selectEdge, onSelectNode: selectNode });
const messages = new MessagesPanel($("messages-body"));
const globe = new Globe($("globe-svg"));

// -- access -------------------------------------------------------------------------------------

function updateAuth() {
  const admin = loggedIn();
  const pill = $("auth-status");
  pill.textContent = admin ? "operator" : "read-only";
  pill.classList.toggle("admin", admin);
  pill.title = admin ? "Logged in: changes are allowed" : "Not logged in: viewing only";
  $("login-open").hidden = admin;
  $("logout").hidden = !admin;
}

async function onLogout() {
  try {
    await logout();
  } catch (err) {
    $("auth-status").title = `Log out failed: ${words(err)}`;
  }
  updateAuth();
  $("login-open").focus();
}

function showLogin(message = "") {
  const card = $("login");
  card.hidden = false;
  setStatus($("login-status"), message, message ? "error" : "");
  $("login-token").focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const input = $("login-token");
  const status = $("login-status");
  const token = input.value.trim();
  if (!token) {
    setStatus(status, "Enter the node's admin token.", "error");
    input.focus();
    return;
  }
  const button = ev.submitter || $("login-form").querySelector("button[type=submit]");
  button.disabled = true;
  setStatus(status, "Logging in…", "busy");
  try {
    await login(token);
    input.value = "";
    setStatus(status, "", "");
    $("login").hidden = true;
    sessionStorage.removeItem(READONLY_KEY);
    updateAuth();
    refreshAll();
    const pending = state.pendingAfterLogin;
    state.pendingAfterLogin = null;
    if (pending) pending();
  } catch (err) {
    setStatus(status, `Login failed: ${words(err)}`, "error");
    input.select();
  } finally {
    button.disabled = false;
  }
}

/** Mutations need the session; without it the login form appears and the action runs after. */
function needLogin(what, retry) {
  if (loggedIn()) return false;
  state.pendingAfterLogin = retry;
  showLogin(`Log in with the admin token to ${what}.`);
  return true;
}

/** Destructive actions ask first, in a modal dialog; resolves true only on an explicit confirm. */
function confirmAction(text, verb) {
  const dialog = $("confirm");
  if (dialog.open) return Promise.resolve(false); // one question at a time
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = verb;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

function words(err) {
  return err instanceof ApiError ? err.words : String(err && err.message ? err.message : err);
}

// -- connect panel ------------------------------------------------------------------------------

async function refreshPeers() {
  const { peers } = await api("/api/peers?limit=1000");
  for (const p of peers) {
    setName(p.peer_id, p.name);
    setTags(p.peer_id, p.tags);
  }
  const select = $("connect-peer");
  const chosen = select.value;
  const candidates = peers
    .filter((p) => !p.linked && p.peer_id !== state.selfId)
    .sort((a, b) => (b.last_seen || 0) - (a.last_seen || 0));
  const options = [h("option", { value: "" }, candidates.length ? "Choose a known peer…" : "No unlinked peers known")];
  for (const p of candidates) {
    const label = `${peerLabel(p.peer_id)}${p.url ? ` — ${p.url}` : " — no URL known"}`;
    options.push(h("option", { value: p.peer_id, title: p.peer_id, disabled: !p.url }, label));
  }
  select.replaceChildren(...options);
  if (candidates.some((p) => p.peer_id === chosen)) select.value = chosen;
}

async function onConnect(ev) {
  if (ev) ev.preventDefault();
  const status = $("connect-status");
  const url = $("connect-url").value.trim();
  const peerId = $("connect-peer").value;
  if (!url && !peerId) {
    setStatus(status, "Choose a known peer, or enter the URL of a peer's node.", "error");
    return;
  }
  if (url && !/^https?:\/\/[^\s/?#]+/i.test(url)) {
    setStatus(status, "The URL must look like http://host:port (http or https).", "error");
    $("connect-url").focus();
    return;
  }
  if (needLogin("connect peers", () => onConnect())) return;
  const target = url || peerLabel(peerId);
  const button = $("connect-button");
  const already = links.links.some((l) => l.peer_id === peerId && l.state === "open");
  button.disabled = true;
  $("connect-form").setAttribute("aria-busy", "true");
  setStatus(status, `Connecting to ${target}… (signed offer, ICE and DTLS; both channels must open)`, "busy");
  try {
    const link = await api("/dial", { method: "POST", body: url ? { url } : { peer_id: peerId } });
    const setup = isNum(link.setup_ms) ? `, set up in ${Math.round(link.setup_ms)} ms` : "";
    setStatus(
      status,
      `${already ? "Already linked" : "Linked"} to ${peerLabel(link.peer_id)}: link ${link.link_id}, ${link.state}${setup}.`,
      "ok",
    );
    $("connect-url").value = "";
    await refreshLinks();
    links.select(link.peer_id);
    refreshPeers().catch(report);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin("The session is no longer valid: log in again.");
    setStatus(status, `Could not connect to ${target}: ${words(err)}`, "error");
  } finally {
    button.disabled = false;
    $("connect-form").removeAttribute("aria-busy");
  }
}

// -- links --------------------------------------------------------------------------------------

async function refreshLinks() {
  const data = await api("/api/mesh-rtc/links");
  links.update(data.links);
  $("links-empty").hidden = links.visibleCount() > 0;
  $("self-links").textContent = String(data.links.filter((l) => l.state === "open").length);
  if (state.selection) renderSelectionFacts();
}

// A destructive action clicked while read-only runs after login only through closeLink/blockPeer
// again, so the confirmation is asked then, not skipped.
async function closeLink(link, button) {
  if (needLogin("close links", () => closeLink(link, button))) return;
  const status = $("links-status");
  const peer = peerLabel(link.peer_id);
  const sure = await confirmAction(
    `Close the link to ${peer}? It is not redialled until you connect it again.`,
    "Close link",
  );
  if (!sure) {
    setStatus(status, `Kept the link to ${peer}.`, "");
    return;
  }
  button.disabled = true;
  setStatus(status, `Closing the link to ${peer}…`, "busy");
  try {
    await api(`/api/mesh-rtc/links/${encodeURIComponent(link.peer_id)}`, { method: "DELETE" });
    setStatus(status, `Closed the link to ${peer}; it is not redialled until you connect it again.`, "ok");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin("The session is no longer valid: log in again.");
    setStatus(status, `Could not close the link to ${peer}: ${words(err)}`, "error");
  }
  await refreshLinks().catch(report);
  refreshPeers().catch(report);
}

async function blockPeer(link, button) {
  if (needLogin("block peers", () => blockPeer(link, button))) return;
  const status = $("links-status");
  const peer = peerLabel(link.peer_id);
  const sure = await confirmAction(
    `Block ${peer}? Its link closes and this node refuses it everywhere (offers, dials, peer exchange, gossip) until unblocked.`,
    "Block peer",
  );
  if (!sure) {
    setStatus(status, `Did not block ${peer}.`, "");
    return;
  }
  button.disabled = true;
  setStatus(status, `Blocking ${peer}…`, "busy");
  try {
    await api(`/api/peers/${encodeURIComponent(link.peer_id)}/block`, { method: "POST" });
    setStatus(status, `Blocked ${peer}: unblock it with DELETE /api/peers/{id}/block.`, "ok");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin("The session is no longer valid: log in again.");
    setStatus(status, `Could not block ${peer}: ${words(err)}`, "error");
  } finally {
    button.disabled = false;
  }
  await refreshLinks().catch(report);
  refreshPeers().catch(report);
}

// -- topology and detail ------------------------------------------------------------------------

async function refreshTopology() {
  const [telemetry, trust] = await Promise.all([api("/api/telemetry"), state.trust ? null : api("/api/trust")]);
  state.telemetry = telemetry;
  for (const [id, r] of Object.entries(telemetry.nodes || {})) setName(id, r && r.name);
  if (trust) state.trust = trust;
  drawTopology();
}

function drawTopology() {
  if (!state.telemetry) return;
  const model = buildModel(state.telemetry, state.selfId);
  topology.render(model, state.trust ? state.trust.scores : {}, state.selfId);
  globe.render(model);
  drawHeatmap();
  const stale = [...model.nodes.values()].filter((n) => !n.reported).length;
  $("topology-summary").textContent =
    `${model.nodes.size} peer${model.nodes.size === 1 ? "" : "s"}, ${model.edges.size} link${model.edges.size === 1 ? "" : "s"}` +
    (stale ? ` (${stale} known only from others' reports)` : "") +
    " — from the link telemetry every node gossips.";
}

function drawHeatmap() {
  const left = renderHeatmap($("heatmap"), state.telemetry, $("heatmap-metric").value, state.selfId);
  $("heatmap-note").textContent =
    "Each row is what one node measured on its links, from the telemetry every node gossips" +
    (left > 0 ? ` (${left} more nodes not shown).` : ".");
}

function selectEdge(edge) {
  if (state.selfId && (edge.a === state.selfId || edge.b === state.selfId)) {
    showHistory(edge.a === state.selfId ? edge.b : edge.a, false);
    return;
  }
  state.selection = null;
  links.select(null);
  topology.select("edge", edge.key);
  const body = $("detail-body");
  $("detail-title").textContent = `Link ${peerLabel(edge.a)} – ${peerLabel(edge.b)}`;
  $("detail-hint").hidden = true;
  const rows = [];
  for (const r of edge.reports) {
    rows.push(
      h("dt", { text: `seen by ${peerLabel(r.from)}` }),
      h(
        "dd",
        {},
        h("span", { class: `badge ${r.health || "unknown"}`, text: r.health || "unknown" }),
        ` RTT ${fmtFigure("rtt_ms", r.rtt_ms)} · jitter ${fmtFigure("jitter_ms", r.jitter_ms)} · loss ${fmtFigure("loss_pct", r.loss_pct)} · ${fmtFigure("bitrate_kbps", r.bitrate_kbps)}`,
      ),
    );
  }
  const ends = [edge.a, edge.b]
    .map((id) => ({ id, url: safeUrl(state.telemetry?.nodes?.[id]?.url) }))
    .filter((e) => e.url);
  body.replaceChildren(
    h("dl", {}, ...rows),
    h(
      "p",
      { class: "muted small" },
      "This node is not an end of this link; its QoS history is stored by its two ends",
      ends.length ? ": " : ".",
      ...ends.flatMap((e, i) => [i ? " or " : "", h("a", { href: e.url, rel: "noopener noreferrer" }, `${peerLabel(e.id)}'s dashboard`)]),
    ),
  );
}

function selectNode(node) {
  state.selection = null;
  links.select(null);
  topology.select("node", node.id);
  $("detail-title").textContent = node.self ? "This node" : `Peer ${peerLabel(node.id)}`;
  $("detail-hint").hidden = true;
  const comp = state.trust?.components?.[node.id];
  const url = safeUrl(node.url);
  const linked = [...topology.model.edges.values()].filter((e) => e.a === node.id || e.b === node.id);
  $("detail-body").replaceChildren(
    h(
      "dl",
      {},
      h("dt", { text: "Peer" }),
      h("dd", { class: "mono", text: node.id }),
      h("dt", { text: "URL" }),
      h("dd", {}, url ? h("a", { href: url, rel: "noopener noreferrer" }, url) : "unknown"),
      h("dt", { text: "Location" }),
      h("dd", { text: node.locationText || "not declared" }),
      h("dt", { text: "Trust" }),
      h("dd", { text: comp ? `${comp.score.toFixed(3)} (trusted by ${comp.trusted_by}${comp.pretrusted ? ", pre-trusted" : ""})` : "unknown" }),
      h("dt", { text: "Links" }),
      h("dd", { text: linked.length ? linked.map((e) => `${peerLabel(e.a === node.id ? e.b : e.a)} (${e.health})`).join(", ") : "none reported" }),
      h("dt", { text: "Telemetry" }),
      h("dd", { text: node.self ? "live" : isNum(node.receivedAt) ? `received ${clock(node.receivedAt)}` : "none received" }),
    ),
  );
}

function safeUrl(url) {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

async function showHistory(peerId, fromTable) {
  state.selection = { peerId, samples: null };
  links.select(peerId);
  topology.select("edge", [state.selfId, peerId].sort().join("|"));
  $("detail-title").textContent = `Link to ${peerLabel(peerId)}`;
  $("detail-hint").hidden = true;
  $("detail-body").replaceChildren(h("div", { id: "detail-facts" }), h("div", { id: "detail-charts" }, h("p", { class: "muted", text: "Loading QoS history…" })));
  renderSelectionFacts();
  if (fromTable) $("detail").scrollIntoView({ block: "nearest", behavior: "smooth" });
  await loadHistory();
}

async function loadHistory() {
  const sel = state.selection;
  if (!sel) return;
  try {
    const data = await api(`/api/mesh-rtc/links/${encodeURIComponent(sel.peerId)}/samples?limit=${MAX_HISTORY}`);
    if (state.selection !== sel) return;
    sel.samples = data.samples;
    renderCharts();
  } catch (err) {
    if (state.selection === sel) $("detail-charts").replaceChildren(h("p", { class: "status error", text: `No history: ${words(err)}` }));
  }
}

function renderSelectionFacts() {
  const sel = state.selection;
  const box = $("detail-facts");
  if (!sel || !box) return;
  const link = links.links.find((l) => l.peer_id === sel.peerId);
  if (!link) {
    box.replaceChildren(h("p", { class: "muted", text: "This node has no current link to this peer." }));
    return;
  }
  box.replaceChildren(
    h(
      "dl",
      {},
      h("dt", { text: "Peer" }),
      h("dd", { class: "mono", text: link.peer_id }),
      h("dt", { text: "Link" }),
      h("dd", { class: "mono", text: `${link.link_id} (${link.direction || "?"})` }),
      h("dt", { text: "State" }),
      h("dd", {}, h("span", { class: `badge ${link.state === "open" ? link.health : link.state}`, text: link.state === "open" ? link.health : link.state }), link.reason ? ` ${link.reason}` : ""),
      h("dt", { text: "ICE" }),
      h("dd", { class: "small", text: link.ice ? `${link.ice.local || "?"} ⇄ ${link.ice.remote || "?"}` : "—" }),
      h("dt", { text: "Path" }),
      h("dd", { class: "small", text: `${link.path || "?"}, signaled over ${link.signaling === "mesh" ? "the mesh (a relay)" : "HTTP"}` }),
    ),
  );
}

function renderCharts() {
  const sel = state.selection;
  const box = $("detail-charts");
  if (!sel || !box || !sel.samples) return;
  box.replaceChildren(
    historyCharts(sel.samples),
    h("p", { class: "muted small", text: `${sel.samples.length} sample${sel.samples.length === 1 ? "" : "s"} stored by this node, local time.` }),
  );
}

// -- gossip, audit, trust, state ----------------------------------------------------------------

async function refreshMessages() {
  const topic = messages.topic;
  const { messages: list } = await api(`/api/gossip/messages?limit=200${topic ? `&topic=${encodeURIComponent(topic)}` : ""}`);
  if (topic === messages.topic) messages.set(list);
}

async function refreshAudit() {
  const event = $("audit-event").value;
  const { entries } = await api(`/api/audit?limit=100${event ? `&event=${encodeURIComponent(event)}` : ""}`);
  if (event === $("audit-event").value) renderAudit($("audit-body"), entries);
}

async function refreshMesh() {
  renderMesh($("mesh-body"), await api("/api/gossip/mesh"));
}

async function refreshTrust() {
  state.trust = await api("/api/trust");
  renderTrust($("trust-body"), state.trust, state.selfId);
  drawTopology();
}

// The state API may be missing on older nodes: the page asks the OpenAPI schema instead of probing
// (a probe's 404 would be a console error) and says so in the panel.
const STATE_LIST_PATH = "/api/state";
const CONFLICTS_PATH = "/api/state/{name}/conflicts";

async function setupConflicts() {
  const status = $("state-status");
  let paths = {};
  try {
    paths = (await api("/openapi.json")).paths || {};
  } catch {
    paths = {};
  }
  state.stateList = Boolean(paths[STATE_LIST_PATH]?.get);
  const available = Boolean(paths[CONFLICTS_PATH]?.get);
  for (const el of $("state-form").elements) el.disabled = !available;
  if (!available) {
    setStatus(status, "This node does not serve replicated-state conflicts yet (no GET /api/state/{name}/conflicts).", "");
    status.classList.add("muted");
  }
  if (state.stateList) refreshStateDocs().catch(report);
}

async function refreshStateDocs() {
  if (!state.stateList) return;
  const { documents } = await api(STATE_LIST_PATH);
  renderDocuments($("state-docs"), documents, (name) => {
    $("state-name").value = name;
    onConflicts();
  });
}

async function onConflicts(ev) {
  if (ev) ev.preventDefault();
  const name = $("state-name").value.trim();
  const status = $("state-status");
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    setStatus(status, "Enter a document name: 1 to 64 letters, digits, _ . or -.", "error");
    return;
  }
  setStatus(status, `Loading conflicts of “${name}”…`, "busy");
  try {
    const data = await api(`/api/state/${encodeURIComponent(name)}/conflicts`);
    const count = Array.isArray(data?.conflicts) ? data.conflicts.length : null;
    setStatus(status, count === null ? `Conflicts of “${name}”:` : `${count} concurrent write${count === 1 ? "" : "s"} resolved in “${name}”.`, "");
    renderConflicts($("state-body"), data);
  } catch (err) {
    $("state-body").replaceChildren();
    setStatus(status, err instanceof ApiError && err.status === 404 ? `No replicated document named “${name}” on this node.` : `Could not load conflicts: ${words(err)}`, "error");
  }
}

// -- node facts ---------------------------------------------------------------------------------

async function refreshHealth() {
  const health = await api("/healthz");
  state.selfId = health.peer_id;
  setName(health.peer_id, health.name);
  const id = $("self-id");
  id.textContent = peerLabel(health.peer_id);
  id.title = health.peer_id;
  $("self-links").textContent = String(health.links);
  $("self-version").textContent = health.version;
  document.title = `f0mesh · ${peerLabel(health.peer_id)}`;
}

// -- live updates: server-sent events, polling as the fallback ----------------------------------

function setLive(mode) {
  state.sse = mode;
  const pill = $("live-status");
  const text = { live: "live", polling: "polling", offline: "node unreachable", connecting: "connecting…" }[mode];
  pill.textContent = text;
  pill.className = `pill ${mode}`;
  pill.title = mode === "live" ? "Live updates over server-sent events" : "Server-sent events unavailable: refreshing every 2 s";
}

const soon = {
  links: debounce(() => refreshLinks().catch(report), 250),
  peers: debounce(() => refreshPeers().catch(report), 500),
  topology: debounce(() => refreshTopology().catch(report), 1500),
  trust: debounce(() => refreshTrust().catch(report), 1000),
  audit: debounce(() => refreshAudit().catch(report), 2000),
};

function startEvents() {
  let source;
  try {
    source = new EventSource("/api/events");
  } catch {
    setLive("polling");
    return;
  }
  source.addEventListener("open", () => {
    if (state.sse === "offline") refreshAll();
    setLive("live");
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      setLive("polling");
      setTimeout(startEvents, 10000); // e.g. too many subscribers (429): try again later
    } else {
      setLive("polling");
    }
  });
  // The node dropped events this page was too slow to take: the views may be stale, so reload them.
  source.addEventListener("dropped", () => refreshAll());
  source.addEventListener("link", (ev) => {
    const event = parse(ev);
    if (!event) return;
    links.applyState(event.data);
    soon.links();
    soon.peers();
    soon.topology();
  });
  source.addEventListener("qos", (ev) => {
    const event = parse(ev);
    if (!event) return;
    state.lastQos = Date.now();
    const sample = event.data;
    links.applySample(sample);
    const sel = state.selection;
    const at = sample.updated_at ?? sample.at ?? event.at;
    const last = sel && sel.samples && sel.samples[sel.samples.length - 1];
    if (sel && sel.samples && sel.peerId === sample.peer_id && !(last && last.at >= at)) {
      sel.samples.push({ ...sample, at });
      if (sel.samples.length > MAX_HISTORY) sel.samples.splice(0, sel.samples.length - MAX_HISTORY);
      renderCharts();
      renderSelectionFacts();
    }
  });
  source.addEventListener("message", (ev) => {
    const event = parse(ev);
    if (!event) return;
    const m = event.data;
    messages.add({ ...m, received_at: m.received_at ?? event.at });
    globe.pulse(m.origin, state.selfId);
    if (m.topic === "telemetry") soon.topology();
    if (m.topic === "trust") soon.trust();
    soon.audit();
  });
}

function parse(ev) {
  try {
    return JSON.parse(ev.data);
  } catch {
    return null;
  }
}

function report(err) {
  if (err instanceof ApiError && err.status === 0) {
    setLive("offline");
    return;
  }
  if (err instanceof ApiError && err.status === 401 && !state.askedForViewLogin && !loggedIn()) {
    state.askedForViewLogin = true;
    showLogin("This node requires the admin token even for viewing.");
    return;
  }
  if (err instanceof ApiError) {
    setStatus($("links-status"), `Refresh failed: ${err.words}`, "error");
    return;
  }
  // A programming error: let it reach the console so tests catch it.
  setTimeout(() => {
    throw err;
  });
}

/** Every resource with its refresh period; links and history poll fast only while SSE is quiet. */
const schedule = [
  { run: refreshHealth, every: () => 10000 },
  { run: refreshLinks, every: () => (qosFlowing() ? 10000 : 2000) },
  { run: refreshPeers, every: () => 10000 },
  { run: refreshTopology, every: () => 5000 },
  { run: refreshTrust, every: () => 10000 },
  { run: refreshMesh, every: () => 5000 },
  { run: refreshAudit, every: () => 10000 },
  { run: refreshMessages, every: () => (state.sse === "live" ? 30000 : 5000) },
  { run: loadHistory, every: () => (qosFlowing() ? 60000 : 5000) },
  { run: refreshStateDocs, every: () => 10000 },
].map((job) => ({ ...job, due: 0, busy: false }));

function qosFlowing() {
  return state.sse === "live" && Date.now() - state.lastQos < 20000;
}

function tick() {
  links.tick();
  if (document.hidden) return;
  const now = Date.now();
  for (const job of schedule) {
    if (job.busy || now < job.due) continue;
    job.busy = true;
    // While the node does not answer, every resource waits 10 s instead of hammering it.
    job.due = now + (state.sse === "offline" ? Math.max(10000, job.every()) : job.every());
    job
      .run()
      .catch(report)
      .finally(() => {
        job.busy = false;
      });
  }
  $("foot-updated").textContent = `Page updated ${clock(now / 1000)}`;
}

function refreshAll() {
  for (const job of schedule) job.due = 0;
  tick();
}

// -- start --------------------------------------------------------------------------------------

async function main() {
  $("login-form").addEventListener("submit", onLogin);
  $("login-dismiss").addEventListener("click", () => {
    sessionStorage.setItem(READONLY_KEY, "1");
    $("login").hidden = true;
    $("login-open").focus();
  });
  $("login-open").addEventListener("click", () => showLogin());
  $("logout").addEventListener("click", onLogout);
  $("connect-form").addEventListener("submit", onConnect);
  $("connect-peer").addEventListener("change", () => {
    if ($("connect-peer").value) $("connect-url").value = "";
  });
  $("connect-url").addEventListener("input", () => {
    if ($("connect-url").value) $("connect-peer").value = "";
  });
  $("links-show-closed").addEventListener("change", (ev) => {
    links.setShowClosed(ev.target.checked);
    $("links-empty").hidden = links.visibleCount() > 0;
  });
  $("layout-select").addEventListener("change", (ev) => topology.setMode(ev.target.value));
  $("messages-topic").addEventListener(
    "input",
    debounce(() => {
      messages.topic = $("messages-topic").value.trim();
      refreshMessages().catch(report);
    }, 400),
  );
  $("messages-show-system").addEventListener("change", (ev) => messages.setShowSystem(ev.target.checked));
  $("heatmap-metric").addEventListener("change", drawHeatmap);
  $("audit-event").addEventListener("change", () => refreshAudit().catch(report));
  $("state-form").addEventListener("submit", onConflicts);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshAll();
  });

  peerToggle($("peer-join"), $("peer-status"));
  updateAuth();
  if (!loggedIn() && !sessionStorage.getItem(READONLY_KEY)) showLogin();
  setLive("connecting");
  try {
    await refreshHealth();
  } catch (err) {
    report(err);
  }
  startEvents();
  setupConflicts();
  refreshAll();
  setInterval(tick, 1000);
}

main();
