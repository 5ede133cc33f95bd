// f0peer.js: a browser page as a full peer of an f0mesh mesh, over the page's own WebRTC.
//
// The page speaks the nodes' wire, so nothing on a node is special-cased beyond a "browser" flag in
// the hello (the node keeps a page out of the replicated registry and never relays through it):
//   identity   Ed25519 by WebCrypto, the private key non-extractable in IndexedDB; PeerId as
//              f0mesh/identity.py (base58 of the libp2p multihash of the public key)
//   signaling  signed offer/answer as f0mesh/rtc/signaling.py, over the serving node's HTTP /offer,
//              or as "sig" frames over ctl through a node both pages are linked to (rtc/relay.py)
//   channels   "ctl" (reliable, ordered, framed as rtc/framing.py) and "probe" (unordered,
//              maxRetransmits 0, qos/probe.py), both negotiated with ids 0 and 1 as rtc/link.py
//   gossip     envelopes of gossip/envelope.py, signed and verified here; "msgs"/"ack"/"ihave"/
//              "iwant" of gossip/transport.py; every decision is counted and kept in a bounded audit
//   topics     the page announces the topics it subscribes to as nodes do (gossip/topics.py: "subs"
//              on an "ihave" without ids), so its links send it those topics only: no node's own
//              telemetry, trust or state unless it asks; it takes, relays and sends only what each
//              side subscribes to
//   documents  read-only replicas of named documents (f0peer/documents.js): the page asks its nodes
//              with a "state" "versions" frame, the node answers with the deltas (state/sync.py
//              pages) and pushes each later change; every op's signature is verified here. A page
//              sends no delta: it leaves no state on the mesh.
//
// Usage: const peer = await F0Peer.join(nodeUrl, {topics: ["chat"]});
//        peer.subscribe("chat", (payload, msg) => ...); await peer.publish("chat", {text: "hi"});

import { encode } from "./f0peer/vendor/msgpack/encode.mjs";
import { decode } from "./f0peer/vendor/msgpack/decode.mjs";
import { KINDS, MAX_DOCUMENT_BYTES, NAME_RE, Refused, Replica } from "./f0peer/documents.js";

const WIRE_VERSION = [1, 1]; // 1.1: signed replicated state, which the page verifies (f0mesh/wire.py)
const ENVELOPE_VERSION = 1;
const DOMAIN = { offer: "f0mesh-offer-v1", answer: "f0mesh-answer-v1" };
const CLOCK_WINDOW_S = 60;
const TTL = 16;
const MAX_TTL = 255;
const REPLAY_WINDOW_MS = 300_000;
const MAX_SKEW_MS = 60_000;
const MAX_TOPIC_BYTES = 256;
// a subscription (gossip/topics.py): a name a node accepts in an announcement, or * for every topic
const TOPIC_RE = /^[A-Za-z0-9_.:\/-]{1,128}$/;
const WILDCARD = "*";
const MAX_TOPICS = 256;
// the nodes' own topics (node.py RESERVED_TOPICS): a page reads them, never publishes nor relays them
const RESERVED_TOPICS = new Set(["state", "telemetry", "trust"]);
const MAX_PAYLOAD_DEPTH = 32;
const MAX_ENVELOPES_PER_MESSAGE = 1024;
const MAX_IDS_PER_MESSAGE = 5000;
const SEEN_MAX = 20_000;
const HELD_MAX = 2_000; // raw envelopes kept to answer IWANT
const AUDIT_MAX = 1_000;
const KEY_CACHE_MAX = 1_024;
const MAX_LINKS = 32; // live links of one page: each is a peer connection of the browser's
const MAX_ANSWERING = 4; // relayed offers being answered at once
const MAX_INBOUND_PENDING = 256; // gossip frames waiting to be verified, all links together
const MAX_DOCUMENTS = 16; // as a node serves one page (f0mesh/state/readers.py)
const MAX_DELTAS_JOINING = 4; // paged deltas being joined at once, all links together
const MAX_MERGES_PENDING = 64; // whole deltas waiting to be verified, all links together
// framing (rtc/framing.py)
const CHUNK_SIZE = 16 * 1024;
const TYPE_BATCH = 1, TYPE_START = 2, TYPE_MORE = 3;
const CHUNK_HEADER = 9;
const HIGH_WATER = 128 * 1024;
const LOW_WATER = 32 * 1024;
const MAX_MESSAGE_SIZE = 4 * 1024 * 1024;
const REASSEMBLY_LIMIT = 2 * MAX_MESSAGE_SIZE;
const MAX_PARTIALS = 64;
const STALL_MS = 10_000;
// probes (qos/probe.py)
const MAX_PROBE_BYTES = 64;
const PROBE_TIMEOUT_MS = 2_000;
const PING = 0, PONG = 1;

const te = new TextEncoder();
const subtle = globalThis.crypto.subtle;

// ---- encodings ------------------------------------------------------------------------------

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const KEY_PREFIX = Uint8Array.of(0x00, 0x24, 0x08, 0x01, 0x12, 0x20);

function b58encode(bytes) {
  let n = 0n;
  for (const b of bytes) n = n * 256n + BigInt(b);
  let out = "";
  while (n > 0n) { out = B58[Number(n % 58n)] + out; n /= 58n; }
  for (const b of bytes) { if (b !== 0) break; out = "1" + out; }
  return out;
}

function b58decode(text) {
  let n = 0n;
  for (const c of text) {
    const v = B58.indexOf(c);
    if (v < 0) throw new Error("not base58");
    n = n * 58n + BigInt(v);
  }
  const out = [];
  while (n > 0n) { out.unshift(Number(n % 256n)); n /= 256n; }
  for (const c of text) { if (c !== "1") break; out.unshift(0); }
  return Uint8Array.from(out);
}

/** The 32-byte Ed25519 key inside a PeerId, or null for anything that is not one. */
export function publicKeyOf(peerId) {
  if (typeof peerId !== "string" || peerId.length < 40 || peerId.length > 60) return null;
  let data;
  try { data = b58decode(peerId); } catch { return null; }
  if (data.length !== KEY_PREFIX.length + 32) return null;
  for (let i = 0; i < KEY_PREFIX.length; i++) if (data[i] !== KEY_PREFIX[i]) return null;
  return data.slice(KEY_PREFIX.length);
}

export function peerIdOf(rawPublicKey) {
  const bytes = new Uint8Array(KEY_PREFIX.length + 32);
  bytes.set(KEY_PREFIX);
  bytes.set(rawPublicKey, KEY_PREFIX.length);
  return b58encode(bytes);
}

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_");
}

function unb64url(text) {
  const s = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

const B32 = "abcdefghijklmnopqrstuvwxyz234567";

/** Message id: lower-case base32 of the first 160 bits of sha256 of the signed bytes. */
async function messageId(signed) {
  const digest = new Uint8Array(await subtle.digest("SHA-256", signed));
  let out = "", bits = 0, value = 0;
  for (let i = 0; i < 20; i++) {
    value = (value << 8) | digest[i];
    bits += 8;
    while (bits >= 5) { out += B32[(value >>> (bits - 5)) & 31]; bits -= 5; }
    value &= (1 << bits) - 1;
  }
  return out;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function float64(value) {
  const out = new Uint8Array(9);
  out[0] = 0xcb;
  new DataView(out.buffer).setFloat64(1, value);
  return out;
}

/** The bytes a signed offer/answer signs: Python packs ``ts`` as a float64 even when it is whole,
 * which a JS number would not be, so the array is assembled here item by item. */
function signalingBytes(kind, sdp, from, fromUrl, to, ts, nonce, offerNonce) {
  return concat([
    Uint8Array.of(0x98),
    encode(DOMAIN[kind]), encode(sdp), encode(from), encode(fromUrl ?? null), encode(to),
    float64(ts), encode(nonce), encode(offerNonce ?? null),
  ]);
}

function codePointLess(a, b) {
  if (!/[\uD800-\uDFFF]/.test(a + b)) return a < b ? -1 : a > b ? 1 : 0;
  const x = Array.from(a, (c) => c.codePointAt(0)), y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** A JSON value with sorted keys, as gossip/envelope.py canonical_payload: one payload, one encoding. */
function canonical(value, depth = 0) {
  if (depth === 0 && value instanceof Uint8Array) return value;
  if (depth > MAX_PAYLOAD_DEPTH) throw new TypeError(`payload nests deeper than ${MAX_PAYLOAD_DEPTH}`);
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("payload numbers must be finite");
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) throw new TypeError("payload integer too large");
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => canonical(v, depth + 1));
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const out = {};
    for (const key of Object.keys(value).sort(codePointLess)) out[key] = canonical(value[key], depth + 1);
    return out;
  }
  throw new TypeError(`payload holds a ${typeof value}, which is not a JSON value`);
}

// ---- identity -------------------------------------------------------------------------------

function idb(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function keyStore() {
  const open = indexedDB.open("f0peer", 1);
  open.onupgradeneeded = () => open.result.createObjectStore("keys");
  return idb(open);
}

/** The page's key pair: made once per key name, kept in IndexedDB; the private key cannot be exported. */
async function loadIdentity(name, persist) {
  let pair = null;
  const db = persist ? await keyStore() : null;
  if (db) pair = await idb(db.transaction("keys").objectStore("keys").get(name));
  if (!pair) {
    pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    if (db) await idb(db.transaction("keys", "readwrite").objectStore("keys").put(pair, name));
  }
  db?.close();
  const raw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
  return { peerId: peerIdOf(raw), sign: async (data) => new Uint8Array(await subtle.sign("Ed25519", pair.privateKey, data)) };
}

const keyCache = new Map();

async function verifyKey(peerId) {
  let key = keyCache.get(peerId);
  if (key === undefined) {
    const raw = publicKeyOf(peerId);
    key = raw ? await subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]) : null;
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value);
    keyCache.set(peerId, key);
  }
  return key;
}

async function verifySignature(peerId, data, signature) {
  const key = await verifyKey(peerId);
  return key !== null && subtle.verify("Ed25519", key, signature, data);
}

function randomToken(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n))).replace(/=+$/, "");
}

async function signDescription(identity, kind, sdp, to, offerNonce = null) {
  // whole seconds would still be packed as float64 (signalingBytes), the JSON just says 12.0 as 12
  const ts = Math.round(Date.now()) / 1000;
  const nonce = randomToken(16);
  const sig = await identity.sign(signalingBytes(kind, sdp, identity.peerId, null, to, ts, nonce, offerNonce));
  return { type: kind, sdp, from: identity.peerId, from_url: null, to, ts, nonce, offer_nonce: offerNonce, sig: b64url(sig) };
}

/** Signature, target, freshness; throws with the reason. The nonce check is the caller's. */
async function checkDescription(desc, kind, me) {
  const fields = ["sdp", "from", "to", "nonce", "sig"];
  if (!desc || desc.type !== kind || fields.some((f) => typeof desc[f] !== "string") || typeof desc.ts !== "number") {
    throw new Error(`not a signed ${kind}`);
  }
  if (desc.sdp.length > 64 * 1024 || desc.sig.length > 200 || desc.nonce.length > 64) throw new Error(`signed ${kind} too large`);
  const bytes = signalingBytes(kind, desc.sdp, desc.from, desc.from_url, desc.to, desc.ts, desc.nonce, desc.offer_nonce);
  if (!(await verifySignature(desc.from, bytes, unb64url(desc.sig)))) throw new Error(`the ${kind}'s signature does not verify`);
  if (desc.to !== me) throw new Error(`the ${kind} is signed for ${desc.to}, not for this page`);
  if (Math.abs(Date.now() / 1000 - desc.ts) > CLOCK_WINDOW_S) throw new Error(`the ${kind} is stale or the clocks disagree`);
}

// ---- framing --------------------------------------------------------------------------------

/** Chunking, batching and backpressure on the ctl channel, the same frames as rtc/framing.py. */
class Framed {
  constructor(channel, onMessage, onViolation) {
    this.channel = channel;
    this.onMessage = onMessage;
    this.onViolation = onViolation;
    this.queue = [];
    this.writing = false;
    this.nextId = 0;
    this.partials = new Map();
    this.reserved = 0;
    this.bytesIn = 0;
    this.bytesOut = 0;
    channel.bufferedAmountLowThreshold = LOW_WATER;
    channel.addEventListener("message", (e) => this.frame(e.data));
  }

  send(bytes) {
    if (bytes.length > MAX_MESSAGE_SIZE) return Promise.reject(new Error(`message of ${bytes.length} bytes exceeds ${MAX_MESSAGE_SIZE}`));
    return new Promise((resolve, reject) => {
      this.queue.push({ bytes, resolve, reject });
      if (!this.writing) this.write();
    });
  }

  async writable() {
    while (this.channel.readyState === "open" && this.channel.bufferedAmount > HIGH_WATER) {
      await new Promise((resolve) => {
        const done = () => { this.channel.removeEventListener("bufferedamountlow", done); this.channel.removeEventListener("close", done); resolve(); };
        this.channel.addEventListener("bufferedamountlow", done);
        this.channel.addEventListener("close", done);
      });
    }
    if (this.channel.readyState !== "open") throw new Error("channel closed");
  }

  async write() {
    this.writing = true;
    try {
      while (this.queue.length) {
        await this.writable();
        const head = this.queue[0];
        if (head.bytes.length <= CHUNK_SIZE - 3) {
          const parts = [Uint8Array.of(TYPE_BATCH)], done = [];
          let room = CHUNK_SIZE - 1;
          while (this.queue.length && this.queue[0].bytes.length + 2 <= room) {
            const item = this.queue.shift();
            parts.push(Uint8Array.of(item.bytes.length >> 8, item.bytes.length & 255), item.bytes);
            room -= item.bytes.length + 2;
            done.push(item);
          }
          this.channel.send(concat(parts));
          for (const item of done) { this.bytesOut += item.bytes.length; item.resolve(); }
        } else {
          this.queue.shift();
          const id = this.nextId, total = head.bytes.length;
          this.nextId = (id + 1) >>> 0;
          for (let offset = 0; offset < total;) {
            if (offset) await this.writable();
            const end = Math.min(offset + CHUNK_SIZE - CHUNK_HEADER, total);
            const header = new Uint8Array(CHUNK_HEADER);
            const view = new DataView(header.buffer);
            header[0] = offset ? TYPE_MORE : TYPE_START;
            view.setUint32(1, id);
            view.setUint32(5, offset || total);
            this.channel.send(concat([header, head.bytes.subarray(offset, end)]));
            offset = end;
          }
          this.bytesOut += total;
          head.resolve();
        }
      }
    } catch (err) {
      for (const item of this.queue.splice(0)) item.reject(err);
    } finally {
      this.writing = false;
    }
  }

  frame(data) {
    if (!(data instanceof ArrayBuffer) || data.byteLength === 0) return this.onViolation("garbage");
    const frame = new Uint8Array(data);
    const view = new DataView(data);
    if (frame[0] === TYPE_BATCH) {
      const spans = [];
      for (let pos = 1; pos < frame.length;) {
        if (pos + 2 > frame.length) return this.onViolation("garbage");
        const length = view.getUint16(pos);
        pos += 2;
        if (pos + length > frame.length) return this.onViolation("garbage");
        spans.push(frame.subarray(pos, pos + length));
        pos += length;
      }
      if (!spans.length) return this.onViolation("garbage");
      for (const span of spans) this.deliver(span);
    } else if ((frame[0] === TYPE_START || frame[0] === TYPE_MORE) && frame.length >= CHUNK_HEADER) {
      const id = view.getUint32(1), value = view.getUint32(5), body = frame.subarray(CHUNK_HEADER);
      if (frame[0] === TYPE_START) this.start(id, value, body);
      else this.more(id, value, body);
    } else {
      this.onViolation("garbage");
    }
  }

  start(id, total, body) {
    if (this.partials.has(id)) { this.drop(id); return this.onViolation("garbage"); }
    if (total > MAX_MESSAGE_SIZE || body.length > total) return this.onViolation("oversize");
    if (body.length === total) return this.deliver(body);
    if (this.reserved + total > REASSEMBLY_LIMIT || this.partials.size >= MAX_PARTIALS) return;
    const buffer = new Uint8Array(total);
    buffer.set(body);
    const timer = setTimeout(() => this.drop(id), STALL_MS);
    this.partials.set(id, { buffer, received: body.length, timer });
    this.reserved += total;
  }

  more(id, offset, body) {
    const partial = this.partials.get(id);
    if (!partial) return; // the rest of a message refused or freed before
    if (offset !== partial.received || !body.length || offset + body.length > partial.buffer.length) {
      this.drop(id);
      return this.onViolation("garbage");
    }
    partial.buffer.set(body, offset);
    partial.received += body.length;
    clearTimeout(partial.timer);
    partial.timer = setTimeout(() => this.drop(id), STALL_MS);
    if (partial.received === partial.buffer.length) {
      this.drop(id);
      this.deliver(partial.buffer);
    }
  }

  drop(id) {
    const partial = this.partials.get(id);
    if (!partial) return;
    clearTimeout(partial.timer);
    this.partials.delete(id);
    this.reserved -= partial.buffer.length;
  }

  deliver(bytes) {
    this.bytesIn += bytes.length;
    let message;
    try { message = decode(bytes); } catch { return this.onViolation("undecodable"); }
    if (!message || typeof message !== "object" || typeof message.t !== "string") return this.onViolation("undecodable");
    this.onMessage(message);
  }

  close() {
    for (const id of [...this.partials.keys()]) this.drop(id);
    for (const item of this.queue.splice(0)) item.reject(new Error("link closed"));
  }
}

// ---- QoS ------------------------------------------------------------------------------------

/** Pings on the probe channel and the figures they give (qos/probe.py, RFC 3550 jitter). */
class Prober {
  constructor() {
    this.next = 0;
    this.outstanding = new Map();
    this.sent = 0;
    this.lost = 0;
    this.answered = 0;
    this.rtt = null;
    this.jitter = null;
    this.transit = null;
  }

  ping() {
    this.expire();
    const seq = this.next++, tSend = performance.now();
    this.outstanding.set(seq, tSend);
    this.sent++;
    return encode([PING, seq, tSend]);
  }

  expire() {
    const now = performance.now();
    for (const [seq, t] of this.outstanding) {
      if (now - t < PROBE_TIMEOUT_MS) break;
      this.outstanding.delete(seq);
      this.lost++;
    }
  }

  pong(seq, tSend, tRecvPeer) {
    this.expire();
    if (this.outstanding.get(seq) !== tSend) return;
    this.outstanding.delete(seq);
    this.answered++;
    const rtt = performance.now() - tSend;
    this.rtt = this.rtt === null ? rtt : this.rtt + (rtt - this.rtt) / 8;
    const transit = tRecvPeer - tSend;
    if (this.transit !== null) {
      const d = Math.abs(transit - this.transit);
      this.jitter = (this.jitter ?? 0) + (d - (this.jitter ?? 0)) / 16;
    }
    this.transit = transit;
  }

  figures() {
    const settled = this.answered + this.lost;
    return {
      rtt_ms: this.rtt,
      jitter_ms: this.jitter,
      loss_pct: settled ? (100 * this.lost) / settled : null,
      probes_sent: this.sent,
      probes_lost: this.lost,
    };
  }
}

// ---- links ----------------------------------------------------------------------------------

/** One WebRTC link of the page: connecting -> open -> failed | closed. */
export class Link {
  constructor(owner, peerId, direction, signaling) {
    this.owner = owner;
    this.peerId = peerId;
    this.direction = direction;
    this.signaling = signaling; // "http" or "mesh"
    this.state = "connecting";
    this.reason = null;
    this.remoteUrl = null;
    this.remoteBrowser = false;
    this.subs = null; // the topics the peer announced; null: none yet, so everything (as a node)
    this.openedAt = null;
    this.prober = new Prober();
    this.pc = new RTCPeerConnection({ iceServers: owner.iceServers });
    this.ctl = this.pc.createDataChannel("ctl", { negotiated: true, id: 0, ordered: true });
    this.probe = this.pc.createDataChannel("probe", { negotiated: true, id: 1, ordered: false, maxRetransmits: 0 });
    this.ctl.binaryType = this.probe.binaryType = "arraybuffer";
    this.framed = new Framed(this.ctl, (m) => this.onCtl(m), (what) => owner._violation(this, what));
    this.lastRx = performance.now();
    this.lastTx = -Infinity;
    this.opened = new Promise((resolve) => { this._settle = resolve; });
    const channelOpen = () => {
      if (this.ctl.readyState === "open" && this.probe.readyState === "open") {
        this.lastRx = performance.now();
        this.send({ t: "hello", v: WIRE_VERSION, peer_id: owner.peerId, url: null, browser: true }).catch(() => {});
        this.timer = setInterval(() => this.tick(), owner.heartbeatIntervalMs);
      }
    };
    this.ctl.addEventListener("open", channelOpen);
    this.probe.addEventListener("open", channelOpen);
    this.ctl.addEventListener("close", () => this.close("control channel closed", "failed"));
    this.probe.addEventListener("message", (e) => this.onProbe(e.data));
    this.pc.addEventListener("connectionstatechange", () => {
      if (["failed", "closed"].includes(this.pc.connectionState)) this.close(`peer connection ${this.pc.connectionState}`, "failed");
    });
    this.connectTimer = setTimeout(() => this.close("not open within the connect timeout", "failed"), owner.connectTimeoutMs);
  }

  /** Whether the peer takes ``topic``: it subscribes to it, or has not announced yet. */
  wants(topic) {
    return this.subs === null || this.subs.has(WILDCARD) || this.subs.has(topic);
  }

  /** Send one ctl message (a map with a string ``t``); resolves once handed to the channel. */
  send(message) {
    this.lastTx = performance.now();
    return this.framed.send(encode(message));
  }

  tick() {
    const now = performance.now();
    if (now - this.lastRx > this.owner.heartbeatTimeoutMs) {
      return this.close(`no frame from the peer for ${((now - this.lastRx) / 1000).toFixed(1)} s (heartbeat)`, "failed");
    }
    if (this.state === "open" && this.probe.readyState === "open") {
      this.probe.send(this.prober.ping());
      this.lastTx = now;
    }
    if (now - this.lastTx >= this.owner.heartbeatIntervalMs) this.send({ t: "hb" }).catch(() => {});
  }

  onProbe(data) {
    if (!(data instanceof ArrayBuffer) || data.byteLength > MAX_PROBE_BYTES) return;
    this.lastRx = performance.now();
    let fields;
    try { fields = decode(new Uint8Array(data)); } catch { return; }
    if (!Array.isArray(fields) || !fields.slice(1).every((x) => typeof x === "number" && Number.isFinite(x))) return;
    if (fields[0] === PING && fields.length === 3 && this.probe.readyState === "open") {
      this.probe.send(encode([PONG, fields[1], fields[2], performance.now()]));
    } else if (fields[0] === PONG && fields.length === 4) {
      this.prober.pong(fields[1], fields[2], fields[3]);
    }
  }

  onCtl(message) {
    this.lastRx = performance.now();
    switch (message.t) {
      case "hb":
        return;
      case "hello":
        if (!Array.isArray(message.v) || message.v[0] !== WIRE_VERSION[0]) return this.close(`incompatible wire version ${message.v}`, "failed");
        if (message.peer_id !== this.peerId) return this.close("hello from an unexpected PeerId", "failed");
        this.remoteUrl = typeof message.url === "string" && message.url.length < 512 ? message.url : null;
        this.remoteBrowser = message.browser === true;
        if (this.state === "connecting") {
          this.state = "open";
          this.openedAt = Date.now();
          clearTimeout(this.connectTimer);
          this._settle(true);
          this.owner._linkChanged(this);
        }
        return;
      case "bye":
        return this.close(`peer left: ${String(message.reason ?? "").slice(0, 200)}`, "closed");
      default:
        if (this.state === "open") this.owner._onCtl(this, message);
    }
  }

  /** Close the link; ``bye`` tells the peer first (closing the page does not: that is a failure). */
  async close(reason, state = "closed", { bye = false } = {}) {
    if (this.state === "failed" || this.state === "closed") return;
    if (bye && this.state === "open") {
      try {
        await Promise.race([this.send({ t: "bye", reason, final: false }), new Promise((r) => setTimeout(r, 500))]);
      } catch { /* the channel went first */ }
    }
    if (this.state === "failed" || this.state === "closed") return;
    this.state = state;
    this.reason = reason;
    clearInterval(this.timer);
    clearTimeout(this.connectTimer);
    this._settle(false);
    this.framed.close();
    this.pc.close();
    this.owner._linkChanged(this);
  }

  describe() {
    return {
      peer_id: this.peerId, state: this.state, direction: this.direction, signaling: this.signaling,
      browser: this.remoteBrowser, url: this.remoteUrl, reason: this.reason,
      subs: this.subs && [...this.subs].sort(),
      bytes_in: this.framed.bytesIn, bytes_out: this.framed.bytesOut, ...this.prober.figures(),
    };
  }
}

async function gathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
    });
  });
}

/** A node checks every candidate against its --dial-allow and does not resolve the mDNS names a
 * browser hides its addresses behind; without them (even with none left) the node learns the
 * page's address peer-reflexively from the checks the page sends to the node's candidates. */
function withoutMdns(sdp) {
  return sdp.split("\r\n").filter((line) => !/^a=candidate:\S+ \d+ \S+ \d+ \S+\.local /.test(line)).join("\r\n");
}

// ---- the peer -------------------------------------------------------------------------------

class Ring extends Map {
  constructor(limit) { super(); this.limit = limit; }
  set(key, value) {
    super.delete(key);
    super.set(key, value);
    if (this.size > this.limit) this.delete(this.keys().next().value);
    return this;
  }
}

export class F0Peer {
  /** Join the mesh through the node at ``nodeUrl``; resolves once one link is open.
   * Options: topics (subscribed with no handler: messages still arrive as "message" events),
   * key (IndexedDB key name, default "default"; pages that share an origin and run at once each
   * need their own), persist (false: a fresh identity per page), iceServers, timeoutMs. */
  static async join(nodeUrl, options = {}) {
    const peer = await F0Peer.create(options);
    try {
      await peer.connectNode(nodeUrl);
    } catch (err) {
      peer.close();
      throw err;
    }
    return peer;
  }

  /** A peer with its identity and no link yet (join = create + connectNode). */
  static async create(options = {}) {
    const peer = new F0Peer(await loadIdentity(options.key ?? "default", options.persist ?? true), options);
    for (const topic of options.topics ?? []) peer.subscribe(topic);
    return peer;
  }

  constructor(identity, options = {}) {
    this.identity = identity;
    this.peerId = identity.peerId;
    this.iceServers = options.iceServers ?? [];
    this.connectTimeoutMs = options.timeoutMs ?? 15_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 8_000;
    this.links = new Map(); // peerId -> Link
    this.stats = { received: 0, duplicate: 0, published: 0, forwarded: 0, verified: 0, not_subscribed: 0, rejected: {} };
    this.audit = [];
    this.events = new EventTarget();
    this._handlers = new Map(); // topic -> Set(handler); its keys are the topics announced
    this._announcing = false;
    this._seen = new Ring(SEEN_MAX);
    this._held = new Ring(HELD_MAX); // id -> wire bytes, to answer IWANT
    this._pendingOffers = new Map(); // nonce -> {link, resolve, reject}
    this._nonces = new Ring(4096);
    this._acks = new Map();
    this._seq = 0;
    this._hlc = { wall: 0, logical: 0 };
    this._inbound = Promise.resolve();
    this._inboundPending = 0;
    this._answering = 0;
    this._documents = new Map(); // name -> Replica
    this._deltas = new Map(); // "peerId xfer" -> a paged delta being joined, all links together
    this._mergesPending = 0;
    this._asking = null; // documents named in this turn, asked for at its end
    this._merging = Promise.resolve();
    this._closed = false;
  }

  /** Link to a node over HTTP signaling (its /healthz names it, its /offer answers). */
  async connectNode(nodeUrl) {
    const base = nodeUrl.replace(/\/+$/, "");
    const health = await (await fetch(`${base}/healthz`)).json();
    const nodeId = health.peer_id;
    if (!publicKeyOf(nodeId)) throw new Error(`${base}/healthz names no valid PeerId`);
    const live = this.links.get(nodeId);
    if (live && (live.state === "open" || live.state === "connecting")) return live;
    const link = this._newLink(nodeId, "out", "http");
    const offer = await this._offer(link, true);
    const response = await fetch(`${base}/offer`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(offer),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      link.close(`offer refused: ${body.error ?? response.status}`, "failed");
      throw new Error(`${base}/offer refused: ${body.error ?? response.status}: ${body.detail ?? ""}`);
    }
    await this._applyAnswer(link, offer, body);
    if (!(await link.opened)) throw new Error(`link to ${nodeId} ${link.state}: ${link.reason}`);
    return link;
  }

  /** Link directly to another peer (a page too) whose signaling goes through a linked node. */
  async connect(peerId, { via } = {}) {
    if (!publicKeyOf(peerId) || peerId === this.peerId) throw new Error(`not a PeerId to link to: ${peerId}`);
    const live = this.links.get(peerId);
    if (live && (live.state === "open" || live.state === "connecting")) return live;
    const relays = via ? [via] : [...this.links.values()].filter((l) => l.state === "open" && !l.remoteBrowser).map((l) => l.peerId);
    if (!relays.length) throw new Error("no open link to a node that could relay the offer");
    const link = this._newLink(peerId, "out", "mesh");
    const offer = await this._offer(link, false);
    if (this._liveLinks() >= MAX_LINKS) throw new Error(`this page already holds ${MAX_LINKS} links`);
    const relay = this.links.get(relays[0]);
    const reply = new Promise((resolve, reject) => {
      this._pendingOffers.set(offer.nonce, { resolve, reject });
      setTimeout(() => reject(new Error("no answer through the mesh in time")), this.connectTimeoutMs);
    });
    try {
      await relay.send({ t: "sig", to: peerId, from: this.peerId, desc: offer });
      await this._applyAnswer(link, offer, await reply);
    } catch (err) {
      link.close(String(err.message ?? err), "failed");
      throw err;
    } finally {
      this._pendingOffers.delete(offer.nonce);
    }
    if (!(await link.opened)) throw new Error(`link to ${peerId} ${link.state}: ${link.reason}`);
    return link;
  }

  _newLink(peerId, direction, signaling) {
    const old = this.links.get(peerId);
    if (old) old.close("replaced by a new link", "closed");
    const link = new Link(this, peerId, direction, signaling);
    this.links.set(peerId, link);
    return link;
  }

  async _offer(link, stripMdns) {
    await link.pc.setLocalDescription(await link.pc.createOffer());
    await gathered(link.pc, 3_000);
    const sdp = stripMdns ? withoutMdns(link.pc.localDescription.sdp) : link.pc.localDescription.sdp;
    return signDescription(this.identity, "offer", sdp, link.peerId);
  }

  async _applyAnswer(link, offer, answer) {
    await checkDescription(answer, "answer", this.peerId);
    if (answer.from !== link.peerId || answer.offer_nonce !== offer.nonce) throw new Error("the answer is not for this offer");
    await link.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  async _answerOffer(relay, desc) {
    this._answering++;
    try {
      if (this._answering > MAX_ANSWERING) throw new Error("this page is answering too many offers");
      if (this._liveLinks() >= MAX_LINKS) throw new Error(`this page already holds ${MAX_LINKS} links`);
      await checkDescription(desc, "offer", this.peerId);
      if (this._nonces.has(desc.nonce)) throw new Error("replayed offer");
      this._nonces.set(desc.nonce, true);
      const existing = this.links.get(desc.from);
      if (existing && existing.state !== "failed" && existing.state !== "closed") {
        if (existing.direction === "out" && this.peerId < desc.from) throw new Error("glare: the smaller PeerId's offer wins");
      }
      const link = this._newLink(desc.from, "in", "mesh");
      await link.pc.setRemoteDescription({ type: "offer", sdp: desc.sdp });
      await link.pc.setLocalDescription(await link.pc.createAnswer());
      await gathered(link.pc, 3_000);
      const answer = await signDescription(this.identity, "answer", link.pc.localDescription.sdp, desc.from, desc.nonce);
      await relay.send({ t: "sig", to: desc.from, from: this.peerId, desc: answer });
    } catch (err) {
      const detail = String(err.message ?? err).slice(0, 300);
      relay.send({ t: "sig", to: desc.from, from: this.peerId, re: String(desc.nonce).slice(0, 64), error: "refused", detail }).catch(() => {});
    } finally {
      this._answering--;
    }
  }

  _liveLinks() {
    return [...this.links.values()].filter((l) => l.state === "open" || l.state === "connecting").length;
  }

  _onSig(link, message) {
    if (message.to !== this.peerId) return this._refuse(link.peerId, null, "not_a_relay"); // pages never relay
    if (message.desc?.type === "offer" && message.desc.from === message.from) return this._answerOffer(link, message.desc);
    const nonce = message.desc?.type === "answer" ? message.desc.offer_nonce : message.re;
    const pending = this._pendingOffers.get(nonce);
    if (!pending) return this._refuse(link.peerId, null, "unsolicited");
    if (message.error) pending.reject(new Error(`offer refused: ${message.error}: ${message.detail ?? ""}`));
    else pending.resolve(message.desc);
  }

  // -- gossip ---------------------------------------------------------------------------------

  /** Call ``handler(payload, message)`` for every verified message of ``topic`` (``*``: every topic);
   * returns the unsubscriber. A new topic is announced to every link: only subscribed topics arrive. */
  subscribe(topic, handler = null) {
    if (typeof topic !== "string" || !(topic === WILDCARD || TOPIC_RE.test(topic))) {
      throw new TypeError("a topic is 1-128 characters of A-Z a-z 0-9 _ . : / - (or * for every topic)");
    }
    if (!this._handlers.has(topic)) {
      if (this._handlers.size >= MAX_TOPICS) throw new RangeError(`at most ${MAX_TOPICS} topics`);
      this._handlers.set(topic, new Set());
      this._announceSoon();
    }
    if (handler) this._handlers.get(topic).add(handler);
    return () => this._handlers.get(topic)?.delete(handler);
  }

  /** Stop taking ``topic``: its handlers go and the links are told. */
  unsubscribe(topic) {
    if (this._handlers.delete(topic)) this._announceSoon();
  }

  /** The topics this page subscribes to, as announced. */
  topics() {
    return [...this._handlers.keys()].sort();
  }

  _wants(topic) {
    return this._handlers.has(topic) || this._handlers.has(WILDCARD);
  }

  _announce(link) {
    link.send({ t: "gossip", m: { type: "ihave", ids: [], subs: this.topics() } }).catch(() => {});
  }

  /** One announcement per turn, however many topics changed in it. */
  _announceSoon() {
    if (this._announcing) return;
    this._announcing = true;
    queueMicrotask(() => {
      this._announcing = false;
      for (const link of this.links.values()) if (link.state === "open") this._announce(link);
    });
  }

  _now() {
    const wall = Date.now();
    if (wall > this._hlc.wall) this._hlc = { wall, logical: 0 };
    else this._hlc.logical++;
    return this._hlc;
  }

  /** Sign a message and send it to every open link; resolves with its id. */
  async publish(topic, payload) {
    if (typeof topic !== "string" || !topic || te.encode(topic).length > MAX_TOPIC_BYTES) throw new TypeError("bad topic");
    if (RESERVED_TOPICS.has(topic)) throw new TypeError(`topic ${topic} is the nodes' own`);
    const body = canonical(payload);
    // seq only has to grow per origin: the clock keeps it growing across reloads without storage
    this._seq = Math.max(this._seq + 1, Date.now());
    const { wall, logical } = this._now();
    const signed = encode([ENVELOPE_VERSION, this.peerId, this._seq, wall, logical, topic, TTL, body]);
    const signature = await this.identity.sign(signed);
    const id = await messageId(signed);
    this._seen.set(id, true);
    const wire = encode([signed, signature, 0]);
    this._held.set(id, wire);
    this.stats.published++;
    this._record("published", id, this.peerId, null);
    const sends = [];
    for (const link of this.links.values()) {
      if (link.state === "open" && link.wants(topic)) sends.push(link.send({ t: "gossip", m: { type: "msgs", msgs: [wire] } }).catch(() => {}));
    }
    await Promise.all(sends);
    this._deliver({ id, origin: this.peerId, seq: this._seq, topic, payload: body, hops: 0, created_at: wall / 1000, from: this.peerId });
    return id;
  }

  _onCtl(link, message) {
    if (message.t === "gossip" && message.m && typeof message.m === "object") {
      // one at a time, in arrival order: a copy must not pass the seen check while the first is
      // still being verified; what a flood queues beyond the bound is dropped and counted
      if (this._inboundPending >= MAX_INBOUND_PENDING) return this._refuse(link.peerId, null, "backlog");
      this._inboundPending++;
      this._inbound = this._inbound
        .then(() => this._onGossip(link, message.m))
        .catch((err) => console.warn("f0peer: gossip handling failed", err))
        .finally(() => { this._inboundPending--; });
      return;
    }
    if (message.t === "sig") return this._onSig(link, message);
    if (message.t === "state") return this._onState(link, message);
    // pex is for nodes: a page keeps no registry
  }

  // -- documents ------------------------------------------------------------------------------

  /** A read-only replica of the named document (kind "map", "set" or "list"), kept up to date by the
   * nodes this page links to; ``onchange({name, changed, document})`` hears of each change. The
   * page holds it until it closes (the nodes push changes while the link lasts). */
  document(name, { kind = "map", onchange = null } = {}) {
    if (typeof name !== "string" || !NAME_RE.test(name)) throw new TypeError(`bad document name ${String(name).slice(0, 80)}`);
    if (!KINDS.includes(kind)) throw new TypeError(`a page reads documents of kind ${KINDS.join(" or ")}, not ${kind}`);
    let doc = this._documents.get(name);
    if (doc) {
      if (doc.kind !== kind) throw new TypeError(`${name} is read here as a ${doc.kind}`);
      if (onchange) doc.onchange = onchange;
      return doc;
    }
    if (this._documents.size >= MAX_DOCUMENTS) throw new Error(`a page reads at most ${MAX_DOCUMENTS} documents`);
    doc = new Replica(name, kind, onchange);
    this._documents.set(name, doc);
    // one request for every document named in this turn: a node serves a page a few requests a second
    if (!this._asking) {
      this._asking = [];
      queueMicrotask(() => {
        const docs = this._asking;
        this._asking = null;
        for (const link of this.links.values()) if (link.state === "open" && !link.remoteBrowser) this._ask(link, docs);
      });
    }
    this._asking.push(doc);
    return doc;
  }

  _ask(link, docs) {
    const message = { t: "state", op: "versions", reply: false, docs: docs.map((d) => [d.name, d.kind, d.version()]) };
    link.send(message).catch(() => {});
  }

  /** A delta page from a node: joined (state/sync.py Reassembler), then verified and merged in order. */
  _onState(link, m) {
    const doc = this._documents.get(m.name);
    if (link.remoteBrowser || m.op !== "delta" || !doc || doc.kind !== m.kind) return this._refuse(link.peerId, null, "unsolicited_state");
    const { xfer, page, pages, data } = m;
    if (![xfer, page, pages].every(Number.isSafeInteger) || !(data instanceof Uint8Array) || page < 0 || page >= pages) {
      return this._refuse(link.peerId, null, "malformed");
    }
    const slot = `${link.peerId} ${xfer}`;
    let held = this._deltas.get(slot);
    this._deltas.delete(slot);
    if (page === 0) held = { name: m.name, pages, parts: [], size: 0 };
    else if (!held || held.name !== m.name || held.pages !== pages || held.parts.length !== page) return this._refuse(link.peerId, null, "malformed");
    held.parts.push(data);
    held.size += data.length;
    if (held.size > MAX_DOCUMENT_BYTES) return this._refuse(link.peerId, null, "too_large");
    if (page < pages - 1) {
      this._deltas.set(slot, held);
      if (this._deltas.size > MAX_DELTAS_JOINING) this._deltas.delete(this._deltas.keys().next().value);
      return;
    }
    if (this._mergesPending >= MAX_MERGES_PENDING) return this._refuse(link.peerId, null, "backlog");
    this._mergesPending++;
    const bytes = held.parts.length === 1 ? data : concat(held.parts);
    this._merging = this._merging.then(() => this._merge(link, doc, bytes)).finally(() => { this._mergesPending--; });
  }

  async _merge(link, doc, bytes) {
    try {
      await doc.apply(bytes, verifySignature);
      this._record("merged", null, link.peerId, null, doc.name);
    } catch (err) {
      const refused = err instanceof Refused;
      if (!refused) console.warn("f0peer: a delta did not merge", err);
      this._refuse(link.peerId, null, refused ? err.reason : "malformed", `${doc.name}: ${String(err.message).slice(0, 300)}`);
    }
  }

  async _onGossip(link, m) {
    const ids = (list) => Array.isArray(list) && list.length <= MAX_IDS_PER_MESSAGE && list.every((i) => typeof i === "string" && i.length === 32);
    if (m.type === "msgs" && Array.isArray(m.msgs) && m.msgs.length <= MAX_ENVELOPES_PER_MESSAGE) {
      for (const raw of m.msgs) await this._accept(link, raw);
    } else if (m.type === "ihave" && ids(m.ids)) {
      if ("subs" in m) {
        const subs = m.subs;
        if (!Array.isArray(subs) || subs.length > MAX_TOPICS || !subs.every((t) => typeof t === "string" && (t === WILDCARD || TOPIC_RE.test(t)))) {
          return this._refuse(link.peerId, null, "malformed");
        }
        link.subs = new Set(subs);
      }
      const want = m.ids.filter((i) => !this._seen.has(i));
      if (want.length) link.send({ t: "gossip", m: { type: "iwant", ids: want } }).catch(() => {});
    } else if (m.type === "iwant" && ids(m.ids)) {
      const msgs = m.ids.map((i) => this._held.get(i)).filter(Boolean).slice(0, MAX_ENVELOPES_PER_MESSAGE);
      if (msgs.length) link.send({ t: "gossip", m: { type: "msgs", msgs } }).catch(() => {});
    } else if (m.type !== "ack") {
      this._refuse(link.peerId, null, "malformed");
    }
  }

  async _accept(link, raw) {
    let signed, signature, hops, fields;
    try {
      if (!(raw instanceof Uint8Array)) throw new Error("envelope must be bytes");
      [signed, signature, hops] = decode(raw);
      if (!(signed instanceof Uint8Array) || !(signature instanceof Uint8Array) || signature.length !== 64) throw new Error("bad parts");
      fields = decode(signed);
      if (!Array.isArray(fields) || fields.length !== 8 || fields[0] !== ENVELOPE_VERSION) throw new Error("bad fields");
      const [, origin, seq, wall, logical, topic, ttl] = fields;
      if (!publicKeyOf(origin) || !Number.isSafeInteger(seq) || seq < 1 || !Number.isSafeInteger(wall) || !Number.isInteger(logical)) throw new Error("bad header");
      if (typeof topic !== "string" || !topic || !Number.isInteger(ttl) || ttl > MAX_TTL || !Number.isInteger(hops) || hops < 0 || hops > ttl) throw new Error("bad topic or hops");
    } catch {
      return this._refuse(link.peerId, null, "malformed");
    }
    if (!this._wants(fields[5])) {
      // as a node: not taken, not acknowledged, not relayed; the sender did not heed the announcement
      this.stats.not_subscribed++;
      return this._record("dropped", null, link.peerId, "not_subscribed", fields[5].slice(0, 128));
    }
    const id = await messageId(signed);
    if (this._seen.has(id)) {
      this.stats.duplicate++;
      this._record("duplicate", id, link.peerId, null);
      return this._ack(link, id);
    }
    const [, origin, seq, wall, , topic, ttl, payload] = fields;
    if (!(await verifySignature(origin, signed, signature))) return this._refuse(link.peerId, id, "bad_signature");
    this.stats.verified++;
    const age = Date.now() - wall;
    if (age > REPLAY_WINDOW_MS) return this._refuse(link.peerId, id, "replay");
    if (-age > MAX_SKEW_MS) return this._refuse(link.peerId, id, "clock_skew");
    this._seen.set(id, true);
    this._held.set(id, raw);
    this.stats.received++;
    this._record("received", id, link.peerId, null);
    this._ack(link, id);
    if (hops < ttl && !RESERVED_TOPICS.has(topic)) {
      const wire = encode([signed, signature, hops + 1]);
      for (const other of this.links.values()) {
        if (other !== link && other.state === "open" && other.peerId !== origin && other.wants(topic)) {
          other.send({ t: "gossip", m: { type: "msgs", msgs: [wire] } }).then(() => { this.stats.forwarded++; }, () => {});
        }
      }
    }
    this._deliver({ id, origin, seq, topic, payload, hops, created_at: wall / 1000, from: link.peerId });
  }

  /** To the "message" event and the topic's subscribers: every verified message, own ones included. */
  _deliver(message) {
    this.events.dispatchEvent(new CustomEvent("message", { detail: message }));
    const handlers = [...(this._handlers.get(message.topic) ?? []), ...(this._handlers.get(WILDCARD) ?? [])];
    for (const handler of handlers) {
      try { handler(message.payload, message); } catch (err) { console.warn("f0peer: a subscriber failed", err); }
    }
  }

  _ack(link, id) {
    if (!this._acks.size) queueMicrotask(() => this._flushAcks());
    if (!this._acks.has(link)) this._acks.set(link, []);
    this._acks.get(link).push(id);
  }

  _flushAcks() {
    const acks = this._acks;
    this._acks = new Map();
    for (const [link, ids] of acks) {
      if (link.state === "open") link.send({ t: "gossip", m: { type: "ack", ids: ids.slice(0, MAX_IDS_PER_MESSAGE) } }).catch(() => {});
    }
  }

  _refuse(peerId, id, reason, detail = null) {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
    this._record("rejected", id, peerId, reason, detail);
  }

  _record(event, messageId, peerId, reason, detail = null) {
    this.audit.push({ at: Date.now() / 1000, event, message_id: messageId, peer_id: peerId, reason, detail });
    if (this.audit.length > AUDIT_MAX) this.audit.splice(0, this.audit.length - AUDIT_MAX);
  }

  _violation(link, what) {
    this._refuse(link.peerId, null, what);
  }

  _linkChanged(link) {
    if (link.state === "open") this._announce(link);
    if (link.state === "open" && !link.remoteBrowser && this._documents.size) this._ask(link, [...this._documents.values()]);
    if (link.state === "failed" || link.state === "closed") {
      const ended = [...this.links.values()].filter((l) => l.state === "failed" || l.state === "closed");
      for (const old of ended.slice(0, Math.max(0, ended.length - MAX_LINKS))) this.links.delete(old.peerId);
    }
    this.events.dispatchEvent(new CustomEvent("link", { detail: link.describe() }));
  }

  /** The links as rows like /api/mesh-rtc/links (the QoS figures are this page's own probes). */
  linkViews() {
    return [...this.links.values()].map((l) => l.describe());
  }

  /** Leave: every link is told (bye) and closed. */
  async close() {
    this._closed = true;
    await Promise.all([...this.links.values()].map((l) => l.close("page left", "closed", { bye: true })));
  }
}

export default F0Peer;
