// f0peer/documents.js: read-only replicas of named documents in the page (f0peer.js's peer.document).
//
// The wire is the nodes' (f0mesh/crdt): a delta is msgpack [FORMAT, kind, op spans, context, records,
// signatures], timestamps are msgpack extension 1 holding [wall_ms, logical, node] (list ops have
// none: their ids (counter, replica) order them, crdt/rga.py). Every op carries
// its author's Ed25519 signature over msgpack [context, origin, seq, ...content] (crdt/replicated.py
// op_bytes), the context being "<kind>/<name>" so an op cannot be replayed into another document.
// A delta merges only once every op in it verifies and is stamped by its author's own clock; else it
// is refused whole, as f0mesh/state/manager.py does. The page never writes: no op is made here.

import { encode } from "./vendor/msgpack/encode.mjs";
import { decode } from "./vendor/msgpack/decode.mjs";
import { ExtData } from "./vendor/msgpack/ExtData.mjs";

const FORMAT = 1;
const HLC_EXT = 1;
const SIGNATURE_BYTES = 64;
const MAX_SEQ = 2 ** 48;
export const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_DOCUMENT_BYTES = 4 << 20;
const CRDT_KIND = { map: "lww-map", set: "lww-set", list: "rga" };
export const KINDS = Object.keys(CRDT_KIND);

/** A delta refused: ``reason`` is the audit reason (forged, malformed), ``detail`` says which op. */
export class Refused extends Error {
  constructor(reason, detail) {
    super(detail);
    this.reason = reason;
  }
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** Python's order of bytes: unsigned, byte by byte, a prefix first. */
function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** HLCTimestamp order: wall, logical, node. */
function compareTs(a, b) {
  return a.wall - b.wall || a.logical - b.logical || cmp(a.node, b.node);
}

function isElement(value, depth = 0) {
  if (typeof value === "string" || value instanceof Uint8Array) return true;
  if (typeof value === "number") return Number.isSafeInteger(value);
  return Array.isArray(value) && depth < 8 && value.every((v) => isElement(v, depth + 1));
}

function checkSeq(seq) {
  if (!Number.isSafeInteger(seq) || seq < 1 || seq > MAX_SEQ) throw new Refused("malformed", `bad seq ${seq}`);
  return seq;
}

function readTs(ext) {
  if (!(ext instanceof ExtData) || ext.type !== HLC_EXT) throw new Refused("malformed", "timestamps must be HLC timestamps");
  let fields;
  try { fields = decode(ext.data); } catch { throw new Refused("malformed", "undecodable HLC timestamp"); }
  if (!Array.isArray(fields) || fields.length !== 3) throw new Refused("malformed", "bad HLC timestamp");
  const [wall, logical, node] = fields;
  if (!Number.isSafeInteger(wall) || wall < 0 || !Number.isSafeInteger(logical) || logical < 0 || typeof node !== "string") {
    throw new Refused("malformed", "bad HLC timestamp");
  }
  return { wall, logical, node, ext };
}

/** Which ops a replica holds, per origin, as disjoint spans (lo, hi] (crdt/replicated.py OpSet). */
class OpSet {
  constructor() { this.spans = new Map(); }

  static fromWire(wire) {
    const out = new OpSet();
    if (!wire || typeof wire !== "object" || Array.isArray(wire)) throw new Refused("malformed", "op spans must be a map");
    for (const [origin, flat] of Object.entries(wire)) {
      if (!Array.isArray(flat) || !flat.length || flat.length % 2) throw new Refused("malformed", `bad op spans of ${origin.slice(0, 60)}`);
      const spans = [];
      for (let i = 0; i < flat.length; i += 2) {
        const [lo, hi] = [flat[i], flat[i + 1]];
        if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo < 0 || lo >= hi || hi > MAX_SEQ) throw new Refused("malformed", "bad op span");
        if (spans.length && lo <= spans[spans.length - 1][1]) throw new Refused("malformed", "op spans are not sorted and disjoint");
        spans.push([lo, hi]);
      }
      out.spans.set(origin, spans);
    }
    return out;
  }

  covers(origin, seq) {
    return (this.spans.get(origin) ?? []).some(([lo, hi]) => lo < seq && seq <= hi);
  }

  union(other) {
    for (const [origin, theirs] of other.spans) {
      const merged = [];
      for (const [lo, hi] of [...(this.spans.get(origin) ?? []), ...theirs].sort((a, b) => a[0] - b[0])) {
        const last = merged[merged.length - 1];
        if (last && lo <= last[1]) last[1] = Math.max(last[1], hi);
        else merged.push([lo, hi]);
      }
      this.spans.set(origin, merged);
    }
  }

  /** Per origin, the seq up to which every op is held: what the node is told the page has. */
  version() {
    const out = {};
    for (const [origin, spans] of [...this.spans].sort((a, b) => cmp(a[0], b[0]))) {
      if (spans.length && spans[0][0] === 0) out[origin] = spans[0][1];
    }
    return out;
  }
}

/** The records of a delta of one kind, each with what its author signed; throws Refused. */
const RECORDS = {
  map(records) {
    return records.map((item) => {
      if (!Array.isArray(item) || item.length !== 2 || !Array.isArray(item[1]) || item[1].length !== 5) throw new Refused("malformed", "bad map record");
      const [key, [tsExt, live, data, origin, seq]] = item;
      if (!isElement(key) || typeof live !== "boolean" || !(data instanceof Uint8Array) || typeof origin !== "string") throw new Refused("malformed", "bad map record");
      if (!live && data.length) throw new Refused("malformed", "a tombstone carries no value");
      const ts = readTs(tsExt);
      return { key, ts, live, data, origin, seq: checkSeq(seq), content: ["map", key, tsExt, live, data] };
    });
  },
  set(records) {
    const out = [];
    for (const item of records) {
      if (!Array.isArray(item) || item.length !== 3 || !isElement(item[0])) throw new Refused("malformed", "bad set record");
      for (const [op, raw] of [["add", item[1]], ["remove", item[2]]]) {
        if (raw === null) continue;
        if (!Array.isArray(raw) || raw.length !== 3 || typeof raw[1] !== "string") throw new Refused("malformed", "bad set record");
        const [tsExt, origin, seq] = raw;
        out.push({ key: item[0], op, ts: readTs(tsExt), origin, seq: checkSeq(seq), content: [op, item[0], tsExt] });
      }
    }
    return out;
  },
  list(records) {
    if (!Array.isArray(records) || records.length !== 2 || !records.every(Array.isArray)) throw new Refused("malformed", "a list delta is [inserts, deletes]");
    const [inserts, deletes] = records;
    const out = [];
    for (const item of inserts) {
      if (!Array.isArray(item) || item.length !== 4 || !(item[3] instanceof Uint8Array)) throw new Refused("malformed", "bad list insert");
      const [counter, replica, anchor, data] = item;
      const id = listId([counter, replica]);
      const at = anchor === null ? null : listId(anchor);
      if (at && at[0] >= id[0]) throw new Refused("malformed", `element ${id} is not newer than its anchor`);
      out.push({ op: "insert", id, anchor: at, data, origin: replica, seq: counter, content: ["insert", anchor, data] });
    }
    for (const item of deletes) {
      if (!Array.isArray(item) || item.length !== 4) throw new Refused("malformed", "bad list delete");
      const target = listId(item.slice(0, 2)), id = listId(item.slice(2));
      out.push({ op: "delete", target, id, origin: id[1], seq: id[0], content: ["delete", target] });
    }
    return out;
  },
};

function listId(raw) {
  if (!Array.isArray(raw) || raw.length !== 2 || typeof raw[1] !== "string") throw new Refused("malformed", "not a list element id");
  return [checkSeq(raw[0]), raw[1]];
}

/** List ids in Python's tuple order: counter, then replica. */
const compareId = (a, b) => a[0] - b[0] || cmp(a[1], b[1]);
const idKey = (id) => `${id[0]}@${id[1]}`;

/** LWW order of two map registers (crdt/lww_map.py): ts, then a write beats a delete, then value bytes, origin, seq. */
function compareRegister(a, b) {
  return compareTs(a.ts, b.ts) || Number(a.live) - Number(b.live) || compareBytes(a.data, b.data) || cmp(a.origin, b.origin) || a.seq - b.seq;
}

/** A set op's LWW order among its own kind (crdt/lww_set.py: ts, origin, seq). */
function compareSetOp(a, b) {
  return compareTs(a.ts, b.ts) || cmp(a.origin, b.origin) || a.seq - b.seq;
}

/** A read-only replica of a named document as its nodes hold it. ``onchange({name, changed, document})``
 * and the "change" event hear of each merge that changed something: the keys (map), elements (set) or
 * element ids (list) that appeared, changed or went. */
export class Replica {
  constructor(name, kind, onchange = null) {
    this.name = name;
    this.kind = kind;
    this.onchange = onchange;
    this.ops = new OpSet();
    this._entries = new Map(); // hex of the encoded key -> map register, or set {add, remove}
    this.merges = 0;
    this.events = new EventTarget();
  }

  /** The version sent with a request: the node answers with what lies above it. */
  version() {
    return this.ops.version();
  }

  /** Verify a delta's every op with ``verify(peerId, bytes, signature)``, then merge it; the keys it
   * changed. Throws Refused (nothing merged) for a delta with one bad op. */
  async apply(bytes, verify) {
    let fields;
    try { fields = decode(bytes); } catch { throw new Refused("malformed", "undecodable delta"); }
    if (!Array.isArray(fields) || fields.length < 5 || fields.length > 6) throw new Refused("malformed", "a delta is [format, kind, ops, context, records, sigs]");
    const [format, crdtKind, opsWire, , records, sigsWire = {}] = fields;
    if (format !== FORMAT || crdtKind !== CRDT_KIND[this.kind]) throw new Refused("malformed", `not a ${this.kind} delta of format ${FORMAT}`);
    if (!Array.isArray(records) || !sigsWire || typeof sigsWire !== "object") throw new Refused("malformed", "bad records or signatures");
    const ops = OpSet.fromWire(opsWire);
    const recs = RECORDS[this.kind](records);
    const sigs = new Map();
    for (const [origin, flat] of Object.entries(sigsWire)) {
      if (!Array.isArray(flat) || flat.length % 2) throw new Refused("malformed", "bad signatures");
      for (let i = 0; i < flat.length; i += 2) sigs.set(`${origin} ${flat[i]}`, flat[i + 1]);
    }
    const context = `${this.kind}/${this.name}`;
    for (const rec of recs) {
      const what = `op (${rec.origin}, ${rec.seq}) of ${this.name}`;
      if (!ops.covers(rec.origin, rec.seq)) throw new Refused("malformed", `${what} lies outside its op spans`);
      if (rec.ts && rec.ts.node !== rec.origin) throw new Refused("forged", `${what} is stamped by another clock`);
      const sig = sigs.get(`${rec.origin} ${rec.seq}`);
      if (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_BYTES) throw new Refused("forged", `${what} is unsigned`);
      const signed = encode([context, rec.origin, rec.seq, ...rec.content]);
      if (!(await verify(rec.origin, signed, sig))) throw new Refused("forged", `${what} is not signed by its origin`);
    }
    const changed = { map: () => this._mergeMap(recs), set: () => this._mergeSet(recs), list: () => this._mergeList(recs) }[this.kind]();
    this.ops.union(ops);
    this.merges++;
    if (changed.length) {
      const detail = { name: this.name, changed, document: this };
      this.events.dispatchEvent(new CustomEvent("change", { detail }));
      try { this.onchange?.(detail); } catch (err) { console.warn("f0peer: an onchange callback failed", err); }
    }
    return changed;
  }

  _mergeMap(recs) {
    const changed = [];
    for (const rec of recs) {
      const id = hex(encode(rec.key));
      const mine = this._entries.get(id);
      if (mine && compareRegister(rec, mine) <= 0) continue;
      const before = mine?.live ? hex(mine.data) : null;
      this._entries.set(id, rec);
      if ((rec.live ? hex(rec.data) : null) !== before) changed.push(rec.key);
    }
    return changed;
  }

  _mergeSet(recs) {
    const changed = [];
    for (const rec of recs) {
      const id = hex(encode(rec.key));
      const entry = this._entries.get(id) ?? { key: rec.key, add: null, remove: null };
      const wasIn = present(entry);
      if (!entry[rec.op] || compareSetOp(rec, entry[rec.op]) > 0) entry[rec.op] = rec;
      this._entries.set(id, entry);
      if (present(entry) !== wasIn) changed.push(rec.key);
    }
    return changed;
  }

  /** Inserts and deletes; ``changed`` lists the "counter@replica" ids of elements that appeared or went. */
  _mergeList(recs) {
    this._rga ??= { nodes: new Map(), children: new Map(), deleted: new Map() };
    const { nodes, children, deleted } = this._rga;
    const changed = [];
    for (const rec of recs.filter((r) => r.op === "insert")) {
      const key = idKey(rec.id);
      if (nodes.has(key)) continue;
      nodes.set(key, rec);
      const parent = rec.anchor ? idKey(rec.anchor) : null;
      children.set(parent, [...(children.get(parent) ?? []), rec.id].sort(compareId));
      if (!deleted.has(key)) changed.push(key);
    }
    for (const rec of recs.filter((r) => r.op === "delete")) {
      const key = idKey(rec.target), current = deleted.get(key);
      if (!current || compareId(rec.id, current) > 0) deleted.set(key, rec.id);
      if (!current && nodes.has(key)) changed.push(key);
    }
    return changed;
  }

  /** The visible list elements in order: a depth-first walk, the greatest sibling first (crdt/rga.py). */
  _listNodes() {
    if (!this._rga) return [];
    const { nodes, children, deleted } = this._rga;
    const out = [], stack = [...(children.get(null) ?? [])];
    while (stack.length) {
      const id = stack.pop(), key = idKey(id);
      if (!deleted.has(key)) out.push(nodes.get(key));
      stack.push(...(children.get(key) ?? []));
    }
    return out;
  }

  /** Map: the key's value (undefined when absent or deleted). Set: whether the element is in. List:
   * the value at that index. */
  get(key) {
    if (this.kind === "list") {
      const node = this._listNodes()[key];
      return node ? decode(node.data) : undefined;
    }
    const entry = this._entries.get(hex(encode(key)));
    if (this.kind === "set") return entry !== undefined && present(entry);
    return entry?.live ? decode(entry.data) : undefined;
  }

  has(key) {
    return this.kind === "set" ? this.get(key) : this.get(key) !== undefined;
  }

  /** Map: [key, value] pairs of the live keys. Set: the elements in it. In the nodes' key order.
   * List: [id, value] pairs in list order, ids as the node's API writes them ("counter@replica"). */
  entries() {
    if (this.kind === "list") return this._listNodes().map((n) => [idKey(n.id), decode(n.data)]);
    const live = [...this._entries].filter(([, e]) => (this.kind === "set" ? present(e) : e.live)).sort((a, b) => cmp(a[0], b[0]));
    return live.map(([, e]) => (this.kind === "set" ? e.key : [e.key, decode(e.data)]));
  }

  /** The map's live text keys as a plain object, the set's elements or the list's values as an array. */
  value() {
    if (this.kind === "list") return this._listNodes().map((n) => decode(n.data));
    if (this.kind === "set") return this.entries();
    return Object.fromEntries(this.entries().filter(([key]) => typeof key === "string"));
  }
}

/** An element is in the set when its latest add is no older than its latest remove (add wins a tie). */
function present(entry) {
  return entry.add !== null && (entry.remove === null || compareTs(entry.add.ts, entry.remove.ts) >= 0);
}
